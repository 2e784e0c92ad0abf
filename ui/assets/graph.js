// The flow graph: laid out left to right by dagre (vendor/dagre.min.js),
// drawn as SVG, updated in place from status events.

import { s, fmtCount, fmtCompact, fmtRate, fmtBytes } from './dom.js';

const NODE_W = 212;
const NODE_H = 128;
const LABEL_W = 150;
const LABEL_H = 52;
const BAR_W = LABEL_W - 20;

/** Bulletins older than this no longer mark a box (as in NiFi). */
export const BULLETIN_MAX_AGE_MS = 5 * 60 * 1000;

/** ok, amber (>= 60 % full) or red (>= 90 % full, or back-pressured). */
export function fillLevel(c) {
  if (c.back_pressured || c.fill >= 0.9) return 'red';
  if (c.fill >= 0.6) return 'amber';
  return 'ok';
}

/** The error and warning bulletins of a processor status that still count. */
export function recentProblems(p, now = Date.now()) {
  return (p.bulletins || []).filter((b) => b.level !== 'info' && now - b.time < BULLETIN_MAX_AGE_MS);
}

// A smooth curve through the layout's edge points: a uniform cubic B-spline
// that starts and ends on the first and last points.
function curve(points) {
  const p = points.map((q) => [Math.round(q.x * 10) / 10, Math.round(q.y * 10) / 10]);
  if (p.length < 3) return 'M' + p.map((q) => q.join(',')).join('L');
  let d = `M${p[0]}L${(5 * p[0][0] + p[1][0]) / 6},${(5 * p[0][1] + p[1][1]) / 6}`;
  const bezier = (a, b, c) => {
    d += `C${(2 * a[0] + b[0]) / 3},${(2 * a[1] + b[1]) / 3} ${(a[0] + 2 * b[0]) / 3},${(a[1] + 2 * b[1]) / 3} `
      + `${(a[0] + 4 * b[0] + c[0]) / 6},${(a[1] + 4 * b[1] + c[1]) / 6}`;
  };
  for (let i = 2; i < p.length; i += 1) bezier(p[i - 2], p[i - 1], p[i]);
  const n = p.length - 1;
  bezier(p[n - 1], p[n], p[n]);
  return d + `L${p[n]}`;
}

/** Sets `el`'s text to `value`, shortened with an ellipsis to fit `maxWidth` pixels. */
function fitText(el, value, maxWidth) {
  const full = String(value);
  el.textContent = full;
  if (!el.getComputedTextLength || el.getComputedTextLength() <= maxWidth) return;
  let lo = 0;
  let hi = full.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    el.textContent = full.slice(0, mid) + '…';
    if (el.getComputedTextLength() <= maxWidth) lo = mid;
    else hi = mid - 1;
  }
  el.textContent = full.slice(0, lo) + '…';
}

function marker(id, cls) {
  return s('marker', { id, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
    s('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrow ' + cls }));
}

/**
 * Draws `flow` into `svg`. `on.processor(id)` and `on.connection(id)` are
 * called when a box or a connection is clicked. Returns `{ update, select }`.
 */
export function drawGraph(svg, flow, on) {
  const g = new dagre.graphlib.Graph({ multigraph: true });
  // Edge labels take a rank of their own between the boxes, so ranks sit close.
  g.setGraph({ rankdir: 'LR', nodesep: 36, ranksep: 28, edgesep: 20, marginx: 20, marginy: 20 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const p of flow.processors) g.setNode(p.id, { width: NODE_W, height: NODE_H });
  for (const c of flow.connections) {
    g.setEdge(c.from, c.to, { width: LABEL_W, height: LABEL_H, labelpos: 'c' }, c.id);
  }
  dagre.layout(g);
  const size = g.graph();
  svg.replaceChildren();
  svg.setAttribute('width', Math.ceil(size.width));
  svg.setAttribute('height', Math.ceil(size.height));
  svg.setAttribute('viewBox', `0 0 ${Math.ceil(size.width)} ${Math.ceil(size.height)}`);
  svg.append(s('defs', {}, marker('arrow-ok', 'ok'), marker('arrow-amber', 'amber'), marker('arrow-red', 'red')));

  const edges = new Map();
  const nodes = new Map();
  const edgeLayer = s('g', { class: 'edges' });
  const nodeLayer = s('g', { class: 'nodes' });
  const labelLayer = s('g', { class: 'labels' });
  svg.append(edgeLayer, nodeLayer, labelLayer);

  for (const c of flow.connections) {
    const e = g.edge({ v: c.from, w: c.to, name: c.id });
    const path = s('path', { class: 'edge-line', d: curve(e.points), 'marker-end': 'url(#arrow-ok)' });
    const hit = s('path', { class: 'edge-hit', d: curve(e.points) });
    const lx = e.x - LABEL_W / 2;
    const ly = e.y - LABEL_H / 2;
    const barFill = s('rect', { class: 'bar-fill', x: 10, y: 26, width: 0, height: 7, rx: 3.5 });
    const queued = s('text', { class: 'edge-queued', x: 10, y: 46, dataset: { field: 'queued' } }, '0');
    const limit = s('text', { class: 'edge-limit', x: LABEL_W - 10, y: 46, 'text-anchor': 'end' },
      '/ ' + fmtCompact(c.max_count));
    const title = s('title', {}, `${c.from} → ${c.to}\n${c.relationships.join(', ')}\n${c.id}`);
    const label = s('g', { class: 'edge-label', transform: `translate(${lx},${ly})` },
      title,
      s('rect', { class: 'label-box', width: LABEL_W, height: LABEL_H, rx: 7 }),
      s('text', { class: 'edge-rel', x: 10, y: 17 }, c.relationships.join(', ')),
      s('rect', { class: 'bar-bg', x: 10, y: 26, width: BAR_W, height: 7, rx: 3.5 }),
      barFill, queued, limit);
    const group = s('g', {
      class: 'edge level-ok', role: 'button', tabindex: 0,
      dataset: { connection: c.id, level: 'ok' },
      onclick: () => on.connection(c.id),
      onkeydown: (ev) => { if (ev.key === 'Enter') on.connection(c.id); },
    }, hit, path);
    edgeLayer.append(group);
    label.addEventListener('click', () => on.connection(c.id));
    label.dataset.connectionLabel = c.id;
    labelLayer.append(label);
    fitText(label.querySelector('.edge-rel'), c.relationships.join(', '), LABEL_W - 20);
    edges.set(c.id, { group, label, path, barFill, queued });
  }

  for (const p of flow.processors) {
    const n = g.node(p.id);
    const x = n.x - NODE_W / 2;
    const y = n.y - NODE_H / 2;
    const field = (name, attrs, text) => s('text', { ...attrs, dataset: { field: name } }, text);
    const statePill = s('g', { class: 'pill', transform: `translate(${NODE_W - 80},10)` },
      s('rect', { width: 68, height: 20, rx: 10 }),
      field('state', { x: 34, y: 14, 'text-anchor': 'middle' }, 'running'));
    const badge = s('g', { class: 'badge', transform: `translate(${NODE_W - 4},4)`, visibility: 'hidden' },
      s('circle', { r: 11 }),
      field('problems', { y: 4, 'text-anchor': 'middle' }, '0'));
    const bulletinTitle = s('title', {}, '');
    const group = s('g', {
      class: 'proc running', role: 'button', tabindex: 0,
      transform: `translate(${x},${y})`,
      dataset: { processor: p.id, state: 'running' },
      onclick: () => on.processor(p.id),
      onkeydown: (ev) => { if (ev.key === 'Enter') on.processor(p.id); },
    },
    s('title', {}, `${p.id} (${p.type})`),
    s('rect', { class: 'box', width: NODE_W, height: NODE_H, rx: 10 }),
    s('rect', { class: 'stripe', width: 6, height: NODE_H, rx: 3 }),
    field('id', { class: 'proc-id', x: 18, y: 26 }, p.id),
    field('type', { class: 'proc-type', x: 18, y: 43 }, p.type),
    statePill,
    s('line', { class: 'sep', x1: 18, x2: NODE_W - 12, y1: 54, y2: 54 }),
    s('text', { class: 'col-label', x: 18, y: 70 }, 'IN'),
    s('text', { class: 'col-label', x: 116, y: 70 }, 'OUT'),
    field('in-rate', { class: 'rate', x: 18, y: 88 }, '0/s'),
    field('out-rate', { class: 'rate', x: 116, y: 88 }, '0/s'),
    field('in-count', { class: 'count', x: 18, y: 104 }, '0'),
    field('out-count', { class: 'count', x: 116, y: 104 }, '0'),
    s('g', { class: 'bulletin-line' }, bulletinTitle, field('bulletin', { class: 'bulletin', x: 18, y: 121 }, '')),
    badge);
    nodeLayer.append(group);
    fitText(group.querySelector('[data-field="id"]'), p.id, NODE_W - 104);
    fitText(group.querySelector('[data-field="type"]'), p.type, NODE_W - 104);
    nodes.set(p.id, { group, badge, bulletinTitle, def: p });
  }

  const text = (group, name, value) => {
    const t = group.querySelector(`[data-field="${name}"]`);
    if (t && t.textContent !== value) t.textContent = value;
  };

  function updateProcessor(p) {
    const n = nodes.get(p.id);
    if (!n) return;
    const g0 = n.group;
    g0.dataset.state = p.state;
    g0.classList.toggle('running', p.state === 'running');
    g0.classList.toggle('stopped', p.state !== 'running');
    g0.classList.toggle('held', !!p.back_pressured);
    text(g0, 'state', p.state);
    text(g0, 'in-rate', fmtRate(p.rates.flowfiles_in));
    text(g0, 'out-rate', fmtRate(p.rates.flowfiles_out));
    text(g0, 'in-count', fmtCount(p.flowfiles_in) + ' · ' + fmtBytes(p.bytes_in));
    text(g0, 'out-count', fmtCount(p.flowfiles_out) + ' · ' + fmtBytes(p.bytes_out));
    const problems = recentProblems(p);
    const last = problems[problems.length - 1];
    g0.classList.toggle('has-problems', problems.length > 0);
    g0.dataset.problems = String(problems.length);
    n.badge.setAttribute('visibility', problems.length ? 'visible' : 'hidden');
    text(g0, 'problems', problems.length > 99 ? '99+' : String(problems.length));
    const note = last ? '⚠ ' + last.message : p.back_pressured ? 'held back: output queue full' : '';
    const noteEl = g0.querySelector('[data-field="bulletin"]');
    if (noteEl.dataset.full !== note) {
      noteEl.dataset.full = note;
      fitText(noteEl, note, NODE_W - 30);
    }
    noteEl.classList.toggle('held-note', !last && !!p.back_pressured);
    n.bulletinTitle.textContent = last ? last.message : '';
  }

  function updateConnection(c) {
    const e = edges.get(c.id);
    if (!e) return;
    const level = fillLevel(c);
    for (const el of [e.group, e.label]) {
      el.dataset.level = level;
      el.classList.remove('level-ok', 'level-amber', 'level-red');
      el.classList.add('level-' + level);
    }
    e.path.setAttribute('marker-end', `url(#arrow-${level})`);
    e.barFill.setAttribute('width', Math.max(0, Math.min(1, c.fill)) * BAR_W);
    const q = fmtCount(c.queued_count) + (c.queued_bytes ? ' · ' + fmtBytes(c.queued_bytes) : '');
    if (e.queued.textContent !== q) e.queued.textContent = q;
  }

  function select(kind, id) {
    for (const [pid, n] of nodes) n.group.classList.toggle('selected', kind === 'processor' && pid === id);
    for (const [cid, e] of edges) {
      const on0 = kind === 'connection' && cid === id;
      e.group.classList.toggle('selected', on0);
      e.label.classList.toggle('selected', on0);
    }
  }

  // Shrink a wide graph to the pane, but not below 65 % (then the pane scrolls).
  function fit() {
    const pane = svg.parentElement;
    const room = pane ? pane.clientWidth - 32 : size.width;
    const width = Math.max(Math.min(size.width, room), size.width * 0.65);
    svg.style.width = Math.round(width) + 'px';
    svg.style.height = Math.round(width * size.height / size.width) + 'px';
  }
  fit();

  return {
    fit,
    update(status) {
      for (const p of status.processors || []) updateProcessor(p);
      for (const c of status.connections || []) updateConnection(c);
    },
    select,
  };
}
