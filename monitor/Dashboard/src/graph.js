import cytoscape from 'cytoscape';
import dagre from 'cytoscape-dagre';

cytoscape.use(dagre);

// A graph of thousands of nodes is first drawn as the causing subgraph and its neighbourhood, so it stays readable
// and the page stays responsive; "Show all nodes" draws the rest.
export const FIRST_VIEW_LIMIT = 300;
// dagre is the readable layout but grows superlinearly; past this many nodes a breadth-first layout draws in time.
const LAYERED_LAYOUT_LIMIT = 600;
const NEIGHBOURHOOD_DEPTH = 2;

/** The nodes and edges the verdict names as the cause: its top nodes, every rule hit's nodes, its top edges. */
export function causingSubgraph(verdict) {
  const nodes = new Set();
  const edges = new Set();
  if (!verdict) return { nodes, edges };
  for (const node of verdict.topNodes ?? []) nodes.add(Number(node.nodeId));
  for (const hit of verdict.ruleHits ?? []) for (const id of hit.nodeIds ?? []) nodes.add(Number(id));
  for (const edge of verdict.topEdges ?? []) edges.add(edgeKey(edge.source, edge.target, edge.kind));
  return { nodes, edges };
}

function edgeKey(source, target, kind) {
  // The verdict names an edge kind by its name; a number (an enum written without names) matches any kind.
  return typeof kind === 'string' ? `${Number(source)}>${Number(target)}:${kind}` : `${Number(source)}>${Number(target)}`;
}

function isCausingEdge(causing, edge) {
  return causing.edges.has(edgeKey(edge.source, edge.target, edge.kind)) || causing.edges.has(edgeKey(edge.source, edge.target));
}

/** The node ids to draw first: everything when small, else the causing nodes and their neighbourhood. */
export function firstView(graph, causing, limit = FIRST_VIEW_LIMIT) {
  const ids = new Set(graph.nodes.map((n) => n.id));
  if (graph.nodes.length <= limit) return ids;
  const adjacency = new Map();
  const link = (a, b) => {
    if (!adjacency.has(a)) adjacency.set(a, []);
    adjacency.get(a).push(b);
  };
  for (const edge of graph.edges) {
    link(edge.source, edge.target);
    link(edge.target, edge.source);
  }
  const keep = new Set([...causing.nodes].filter((id) => ids.has(id)));
  if (keep.size === 0) {
    const self = graph.nodes.find((n) => n.kind === 'Invocation' && n.attributes?.role === 'self') ?? graph.nodes[0];
    keep.add(self.id);
  }
  let frontier = [...keep];
  for (let depth = 0; depth < NEIGHBOURHOOD_DEPTH && keep.size < limit; depth++) {
    const next = [];
    for (const id of frontier) {
      for (const other of adjacency.get(id) ?? []) {
        if (keep.size >= limit) break;
        if (!keep.has(other)) {
          keep.add(other);
          next.push(other);
        }
      }
    }
    frontier = next;
  }
  return keep;
}

function shortLabel(node) {
  const label = String(node.label ?? '');
  return label.length > 40 ? `${label.slice(0, 39)}…` : label;
}

const style = [
  { selector: 'node', style: {
    label: 'data(label)', 'font-size': 9, color: '#1d2430', 'text-valign': 'bottom', 'text-margin-y': 3,
    'text-wrap': 'ellipsis', 'text-max-width': 140, width: 18, height: 18, 'background-color': '#8894a8',
    'border-width': 1, 'border-color': '#4b5567', 'min-zoomed-font-size': 6,
  } },
  { selector: 'node.Process', style: { shape: 'round-rectangle', 'background-color': '#5b8def' } },
  { selector: 'node.File', style: { shape: 'rectangle', 'background-color': '#c9ced8' } },
  { selector: 'node.Socket', style: { shape: 'diamond', 'background-color': '#5fb58a' } },
  { selector: 'node.Invocation', style: { shape: 'hexagon', 'background-color': '#9b6fd6', width: 24, height: 24 } },
  { selector: 'node.Function', style: { shape: 'ellipse', 'background-color': '#e0a84a' } },
  { selector: 'edge', style: {
    width: 1, 'line-color': '#9aa3b2', 'target-arrow-color': '#9aa3b2', 'target-arrow-shape': 'triangle',
    'curve-style': 'bezier', 'arrow-scale': 0.7, label: 'data(kind)', 'font-size': 7, color: '#6b7382',
    'min-zoomed-font-size': 7, 'text-rotation': 'autorotate',
  } },
  { selector: 'node.hl', style: { 'background-color': '#d7263d', 'border-color': '#7a0012', 'border-width': 3, color: '#7a0012', 'font-weight': 'bold', 'z-index': 10 } },
  { selector: 'edge.hl', style: { width: 3, 'line-color': '#d7263d', 'target-arrow-color': '#d7263d', color: '#7a0012', 'z-index': 10 } },
  { selector: '.dim', style: { opacity: 0.25 } },
  { selector: 'node:selected', style: { 'border-color': '#111', 'border-width': 4 } },
];

/**
 * Draws the graph into container; the causing subgraph highlighted (class hl), the rest dimmed when there is a cause.
 * Marks the container with data-rendered, data-highlighted (the highlighted node ids) and data-drawn/data-total.
 */
export function renderGraph(container, graph, verdict, { showAll = false, onNode } = {}) {
  const causing = causingSubgraph(verdict);
  const drawn = showAll ? new Set(graph.nodes.map((n) => n.id)) : firstView(graph, causing);
  const hasCause = causing.nodes.size > 0 || causing.edges.size > 0;
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  const elements = [];
  for (const node of graph.nodes) {
    if (!drawn.has(node.id)) continue;
    const hl = causing.nodes.has(node.id);
    elements.push({
      group: 'nodes',
      data: { id: `n${node.id}`, nodeId: node.id, label: shortLabel(node) },
      classes: [kindClass(node.kind), hl ? 'hl' : '', hasCause && !hl ? 'dim' : ''].filter(Boolean),
    });
  }
  graph.edges.forEach((edge, index) => {
    if (!drawn.has(edge.source) || !drawn.has(edge.target)) return;
    const hl = isCausingEdge(causing, edge);
    elements.push({
      group: 'edges',
      data: { id: `e${index}`, source: `n${edge.source}`, target: `n${edge.target}`, kind: String(edge.kind ?? ''), index },
      classes: [hl ? 'hl' : '', hasCause && !hl ? 'dim' : ''].filter(Boolean),
    });
  });

  const large = drawn.size > LAYERED_LAYOUT_LIMIT;
  const cy = cytoscape({
    container,
    elements,
    style,
    layout: large
      ? { name: 'breadthfirst', directed: true, spacingFactor: 0.8, animate: false }
      : { name: 'dagre', rankDir: 'LR', nodeSep: 12, rankSep: 50, edgeSep: 6, animate: false },
    minZoom: 0.05,
    maxZoom: 4,
    wheelSensitivity: 0.3,
    textureOnViewport: large,
    hideEdgesOnViewport: large,
    pixelRatio: large ? 1 : 'auto',
  });
  if (large) cy.edges().style('label', '');
  // A handful of nodes fitted to the panel would be drawn huge.
  if (cy.zoom() > 1.3) {
    cy.zoom(1.3);
    cy.center();
  }
  cy.on('tap', 'node', (event) => onNode?.(byId.get(event.target.data('nodeId'))));
  cy.on('tap', 'edge', (event) => onNode?.(null, graph.edges[event.target.data('index')]));

  const highlighted = cy.nodes('.hl').map((n) => n.data('nodeId')).sort((a, b) => a - b);
  container.dataset.rendered = 'true';
  container.dataset.highlighted = highlighted.join(',');
  container.dataset.drawn = String(drawn.size);
  container.dataset.total = String(graph.nodes.length);
  return { cy, drawn: drawn.size, total: graph.nodes.length, highlighted, missing: [...causing.nodes].filter((id) => !byId.has(id)) };
}

function kindClass(kind) {
  return ['Process', 'File', 'Socket', 'Invocation', 'Function'].includes(kind) ? kind : 'Other';
}
