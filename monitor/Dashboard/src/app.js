import { api } from './api.js';
import { el, clear, formatTime, formatScore } from './dom.js';
import { renderGraph } from './graph.js';
import { renderTrace } from './trace.js';
import { verdictClass } from './verdicts.js';

const POLL_MS = 2000;
const $ = (id) => document.getElementById(id);

const state = {
  functions: new Set(),
  selected: null,
  listAbort: null,
  detailAbort: null,
  cy: null,
  lastRows: null,
};

function safeFileName(value) {
  return String(value).replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 100) || 'invocation';
}

// ---- the live list ----

async function refreshList() {
  state.listAbort?.abort();
  const abort = new AbortController();
  state.listAbort = abort;
  try {
    const page = await api.invocations({ fn: $('filter-function').value, verdict: $('filter-verdict').value }, abort.signal);
    renderRows(page.items ?? []);
    $('status').textContent = `updated ${new Date().toLocaleTimeString()}`;
    $('status').className = '';
  } catch (error) {
    if (error.name === 'AbortError') return;
    $('status').textContent = `cannot load invocations: ${error.message}`;
    $('status').className = 'error';
  }
}

function renderRows(items) {
  // Redraw only what changed: a row replaced under the pointer every two seconds would eat clicks.
  const fingerprint = JSON.stringify(items);
  if (fingerprint === state.lastRows) return;
  state.lastRows = fingerprint;
  let grew = false;
  for (const item of items) {
    if (typeof item.function === 'string' && !state.functions.has(item.function)) {
      state.functions.add(item.function);
      grew = true;
    }
  }
  if (grew) renderFunctionOptions();
  const body = $('invocations').tBodies[0];
  clear(body);
  for (const item of items) {
    const verdict = verdictClass(item.verdict);
    const flags = [item.ambiguous ? 'ambiguous' : null, item.truncated ? 'truncated' : null].filter(Boolean).join(', ');
    body.append(el('tr', {
      class: `verdict-${verdict}${item.id === state.selected ? ' selected' : ''}`,
      dataset: { id: item.id },
      tabindex: 0,
      onclick: () => openDetail(item.id),
      onkeydown: (event) => { if (event.key === 'Enter') openDetail(item.id); },
    },
    el('td', { text: formatTime(item.startedAt) }),
    el('td', { class: 'function', text: item.function ?? '' }),
    el('td', {}, el('span', { class: `badge verdict-${verdict}`, text: item.verdict ?? 'unknown' }), flags ? el('small', { text: ` ${flags}` }) : null),
    el('td', { class: 'num', text: formatScore(item.score) }),
    el('td', { class: 'rules', text: (item.rules ?? []).join(', ') }),
    el('td', { class: 'num', text: item.status ?? '' }),
    el('td', { class: 'num', text: typeof item.durationMs === 'number' ? item.durationMs.toFixed(1) : '' }),
    el('td', { class: 'request', text: `${item.method ?? ''} ${item.path ?? ''}` })));
  }
  if (items.length === 0) body.append(el('tr', { class: 'empty' }, el('td', { colspan: 8, text: 'No invocations match.' })));
}

function renderFunctionOptions() {
  const select = $('filter-function');
  const current = select.value;
  clear(select).append(el('option', { value: '', text: 'all' }));
  for (const name of [...state.functions].sort()) select.append(el('option', { value: name, text: name }));
  select.value = current;
}

// ---- one invocation ----

async function openDetail(id) {
  state.selected = id;
  for (const row of $('invocations').tBodies[0].rows) row.classList.toggle('selected', row.dataset.id === id);
  history.replaceState(null, '', `#inv=${encodeURIComponent(id)}`);
  state.detailAbort?.abort();
  const abort = new AbortController();
  state.detailAbort = abort;
  const section = $('detail');
  section.hidden = false;
  $('detail-title').textContent = id;
  clear($('detail-summary')).append('loading…');
  clear($('downloads'));
  clear($('rule-hits'));
  clear($('top-nodes'));
  clear($('trace'));
  clear($('node-info'));
  resetGraph('loading the graph…');

  let detail;
  try {
    detail = await api.invocation(id, abort.signal);
  } catch (error) {
    if (error.name !== 'AbortError') clear($('detail-summary')).append(el('span', { class: 'error', text: `cannot load ${id}: ${error.message}` }));
    return;
  }
  const invocation = detail.invocation ?? {};
  const verdict = detail.verdict;
  renderSummary(invocation, verdict);
  renderDownloads(invocation, detail.links ?? {});
  if (invocation.verdict === 'intrusion') loadSnapshots(id, abort.signal);
  renderRuleHits(verdict);
  renderTopNodes(verdict);
  if (invocation.traceId) loadTrace(invocation.traceId, id, abort.signal);
  else $('trace').append(el('p', { text: 'No trace context.' }));

  try {
    const graph = await api.graph(id, abort.signal);
    drawGraph(graph, verdict, false);
  } catch (error) {
    if (error.name !== 'AbortError') resetGraph(`cannot load the graph: ${error.message}`);
  }
}

function renderSummary(invocation, verdict) {
  const v = verdictClass(invocation.verdict);
  $('detail-title').textContent = `${invocation.function ?? ''} · ${invocation.id ?? ''}`;
  const facts = [
    ['verdict', el('span', { class: `badge verdict-${v}`, text: invocation.verdict ?? 'unknown' })],
    ['score', formatScore(verdict?.score ?? invocation.score)],
    ['model', verdict?.modelName ?? invocation.model ?? (verdict?.modelUnavailable ? `none (${verdict.modelUnavailable})` : '')],
    ['request', `${invocation.method ?? ''} ${invocation.path ?? ''} → ${invocation.status ?? ''}`],
    ['started', formatTime(invocation.startedAt)],
    ['duration', typeof invocation.durationMs === 'number' ? `${invocation.durationMs.toFixed(1)} ms` : ''],
    ['instance', invocation.instance ?? ''],
    ['call id', invocation.callId ?? ''],
    ['flags', [invocation.ambiguous ? 'ambiguous attribution' : '', invocation.truncated ? 'graph truncated' : ''].filter(Boolean).join(', ')],
  ].filter(([, value]) => value !== '' && value !== undefined);
  clear($('detail-summary')).append(el('dl', {}, facts.map(([key, value]) => [el('dt', { text: key }), el('dd', {}, value)])));
  if (!verdict) $('detail-summary').append(el('p', { class: 'note', text: 'Pending: the graph is not classified yet.' }));
}

function renderDownloads(invocation, links) {
  const id = invocation.id;
  const file = safeFileName(id);
  const anchors = [
    el('a', { href: api.graphUrl(id, 'json'), download: `${file}.json`, text: 'graph (JSON)' }),
    el('a', { href: api.graphUrl(id, 'graphml'), download: `${file}.graphml`, text: 'graph (GraphML)' }),
    el('a', { href: api.graphUrl(id, 'dot'), download: `${file}.dot`, text: 'graph (DOT)' }),
  ];
  if (links.pcap) anchors.push(el('a', { href: api.pcapUrl(id), download: `${file}.pcap`, class: 'pcap', text: 'packets (pcap)' }));
  clear($('downloads')).append(...anchors);
}

// The snapshots taken of the instances on an intrusion's causal path: one line per instance, its files as downloads.
async function loadSnapshots(id, signal) {
  let listing;
  try {
    listing = await api.snapshots(id, signal);
  } catch {
    return; // none kept, or snapshots are off: the downloads above still stand
  }
  if (!Array.isArray(listing) || listing.length === 0) return;
  const lines = listing.map((snapshot) => {
    const files = (Array.isArray(snapshot.files) ? snapshot.files : [])
      // only links the API made: a URL from anywhere else never becomes an href
      .filter((f) => typeof f.url === 'string' && f.url.startsWith('/api/snapshots/'))
      .map((f) => el('a', { href: f.url, download: safeFileName(`${snapshot.instance}-${f.name}`), text: `${f.name} (${formatBytes(f.bytes)})` }));
    return el('li', { class: 'snapshot', dataset: { instance: String(snapshot.instance ?? '') } },
      el('strong', { text: `${snapshot.instance ?? ''} (${snapshot.function ?? ''}): ${snapshot.status ?? ''}` }),
      snapshot.error ? el('span', { class: 'error', text: ` ${snapshot.error}` }) : null,
      ' ', files);
  });
  $('downloads').append(el('div', { id: 'snapshots' }, el('h4', { text: 'Snapshots of the instances on the causal path' }), el('ul', {}, lines)));
}

function formatBytes(bytes) {
  if (typeof bytes !== 'number') return '';
  return bytes >= 1 << 20 ? `${(bytes / (1 << 20)).toFixed(1)} MiB` : bytes >= 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${bytes} B`;
}

function renderRuleHits(verdict) {
  const list = clear($('rule-hits'));
  const hits = verdict?.ruleHits ?? [];
  if (hits.length === 0) list.append(el('li', { class: 'none', text: 'No rule fired.' }));
  for (const hit of hits) {
    list.append(el('li', { class: 'rule-hit', dataset: { rule: hit.ruleId } },
      el('code', { text: hit.ruleId }),
      el('p', { class: 'explanation', text: hit.explanation ?? '' }),
      (hit.nodeIds ?? []).length ? el('small', { text: `nodes ${(hit.nodeIds ?? []).join(', ')}` }) : null));
  }
}

function renderTopNodes(verdict) {
  const list = clear($('top-nodes'));
  const nodes = verdict?.topNodes ?? [];
  if (nodes.length === 0) list.append(el('li', { class: 'none', text: verdict?.score === undefined ? 'No model ran.' : 'None.' }));
  for (const node of nodes) {
    list.append(el('li', {}, el('span', { class: 'weight', text: typeof node.weight === 'number' ? node.weight.toFixed(2) : '' }),
      ` ${node.label ?? ''} `, el('small', { text: `${node.kind ?? ''} #${node.nodeId}` })));
  }
}

async function loadTrace(traceId, id, signal) {
  try {
    const trace = await api.trace(traceId, signal);
    renderTrace($('trace'), trace, id, openDetail);
  } catch (error) {
    if (error.name !== 'AbortError') clear($('trace')).append(el('p', { class: 'error', text: `cannot load the trace: ${error.message}` }));
  }
}

function resetGraph(note) {
  state.cy?.destroy();
  state.cy = null;
  const container = $('graph');
  delete container.dataset.rendered;
  delete container.dataset.highlighted;
  clear(container);
  $('graph-note').textContent = note;
  $('graph-all').hidden = true;
}

function drawGraph(graph, verdict, showAll) {
  resetGraph('');
  const result = renderGraph($('graph'), graph, verdict, {
    showAll,
    onNode: (node, edge) => showNodeInfo(node, edge),
  });
  state.cy = result.cy;
  const parts = [`${result.drawn} of ${result.total} nodes`, `${result.highlighted.length} highlighted`];
  if (graph.truncated) parts.push('graph truncated by the grapher');
  if (result.missing.length) parts.push(`verdict names nodes not in the graph: ${result.missing.join(', ')}`);
  $('graph-note').textContent = parts.join(' · ');
  const button = $('graph-all');
  button.hidden = result.drawn >= result.total;
  button.textContent = `Show all ${result.total} nodes`;
  button.onclick = () => drawGraph(graph, verdict, true);
}

function showNodeInfo(node, edge) {
  const info = $('node-info');
  if (node) {
    const lines = [`#${node.id} ${node.kind} ${node.label}`];
    for (const [key, value] of Object.entries(node.attributes ?? {})) lines.push(`  ${key}: ${value}`);
    info.textContent = lines.join('\n');
  } else if (edge) {
    info.textContent = `${edge.source} → ${edge.target} ${edge.kind} (${edge.syscall ?? ''}) ×${edge.count ?? 1}`;
  }
}

// ---- start ----

function start() {
  $('filters').addEventListener('submit', (event) => event.preventDefault());
  $('filter-function').addEventListener('change', refreshList);
  $('filter-verdict').addEventListener('change', refreshList);
  $('graph-fit').addEventListener('click', () => state.cy?.fit(undefined, 20));
  refreshList();
  setInterval(refreshList, POLL_MS);
  // #inv=ID opens that invocation: a link to one invocation can be shared.
  const openFromHash = () => {
    const match = /^#inv=(.+)$/.exec(location.hash);
    if (!match) return;
    let id;
    try {
      id = decodeURIComponent(match[1]);
    } catch {
      return;
    }
    if (id !== state.selected) openDetail(id);
  };
  window.addEventListener('hashchange', openFromHash);
  openFromHash();
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
