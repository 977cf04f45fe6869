import { el, clear, formatScore } from './dom.js';
import { verdictClass } from './verdicts.js';

/**
 * The trace's chain of functions: each hop in call order, a callee under its caller after an arrow
 * (dashed for a call made without trace context, which is what injected code does), intrusions marked.
 */
export function renderTrace(container, trace, currentId, onOpen) {
  clear(container);
  const hops = trace.invocations ?? [];
  const byId = new Map(hops.map((hop) => [hop.id, hop]));
  const children = new Map();
  const called = new Set();
  for (const call of trace.calls ?? []) {
    if (!byId.has(call.from) || !byId.has(call.to) || call.from === call.to) continue;
    if (!children.has(call.from)) children.set(call.from, []);
    children.get(call.from).push(call);
    called.add(call.to);
  }
  const shown = new Set();
  const item = (hop, call) => {
    shown.add(hop.id);
    const verdict = verdictClass(hop.verdict);
    const li = el('li', { class: `hop verdict-${verdict}${hop.id === currentId ? ' current' : ''}`, dataset: { id: hop.id } },
      call ? el('span', { class: `arrow${call.untraced ? ' untraced' : ''}`, text: call.untraced ? '⇢ untraced call' : '→', title: call.untraced ? 'called without trace context' : 'call' }) : null,
      el('button', { type: 'button', class: 'hop-open', onclick: () => onOpen(hop.id) },
        el('span', { class: 'hop-function', text: hop.function ?? '?' }),
        el('span', { class: `badge verdict-${verdict}`, text: hop.verdict ?? 'unknown' }),
        typeof hop.score === 'number' ? el('span', { class: 'hop-score', text: formatScore(hop.score) }) : null));
    const calls = (children.get(hop.id) ?? []).filter((c) => !shown.has(c.to));
    if (calls.length > 0) li.append(el('ul', {}, calls.map((c) => item(byId.get(c.to), c))));
    return li;
  };
  const roots = hops.filter((hop) => !called.has(hop.id));
  const list = el('ul', { class: 'chain' }, roots.map((hop) => item(hop, null)));
  // A cycle of calls leaves hops no root reaches; list them rather than lose them.
  for (const hop of hops) if (!shown.has(hop.id)) list.append(item(hop, null));
  container.append(
    el('p', { class: trace.intrusion ? 'trace-intrusion' : 'trace-clean', text: trace.intrusion ? 'This trace carried an intrusion.' : 'No intrusion in this trace.' }),
    list,
    el('p', { class: 'trace-id', text: `trace ${trace.traceId ?? ''}` }));
}
