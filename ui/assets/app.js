// The visualizer: loads the flow, draws it, keeps it live over SSE, and
// drives the side panel (details, YAML source, provenance).

import { h, replace, fmtDuration } from './dom.js';
import * as api from './api.js';
import { drawGraph } from './graph.js';
import { processorPanel, connectionPanel, sourceView, provenanceView } from './panel.js';

const $ = (id) => document.getElementById(id);

const state = {
  flow: null,
  graph: null,
  processors: new Map(),
  connections: new Map(),
  selected: null, // { kind, id }
  listing: null,
  uptimeMs: 0,
};

// ---------------------------------------------------------------- token

function askToken(reason) {
  const dialog = $('token-dialog');
  $('token-reason').textContent = reason || 'Changing the flow needs the token printed when sluice started.';
  $('token-input').value = api.token() || '';
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      const t = dialog.returnValue === 'save' ? $('token-input').value.trim() : '';
      if (t) api.setToken(t);
      showToken();
      resolve(t || null);
    }, { once: true });
  });
}

function showToken() {
  $('token-button').textContent = api.token() ? 'Token ✓' : 'Set token';
}

// ---------------------------------------------------------------- messages

function banner(message, kind = 'error') {
  const b = $('banner');
  b.className = 'banner ' + kind;
  b.hidden = !message;
  b.textContent = message || '';
}

// ---------------------------------------------------------------- tabs

function showTab(name) {
  for (const b of document.querySelectorAll('[data-tab]')) b.classList.toggle('active', b.dataset.tab === name);
  for (const t of document.querySelectorAll('.tab')) t.hidden = t.id !== 'tab-' + name;
}

// ---------------------------------------------------------------- panel

function renderPanel() {
  const box = $('tab-details');
  const sel = state.selected;
  if (!sel) {
    replace(box, h('div', { class: 'hint' },
      h('h2', {}, 'Select a processor or a connection'),
      h('p', {}, 'Click a box to see its properties, counters and bulletins, and to stop or start it. '
        + 'Click a connection label to see the FlowFiles queued in it.')));
    return;
  }
  const scroll = box.scrollTop;
  if (sel.kind === 'processor') {
    const def = state.flow.processors.find((p) => p.id === sel.id);
    replace(box, processorPanel(def, state.processors.get(sel.id), state.flow, {
      stop: (id) => setRunning(id, false),
      start: (id) => setRunning(id, true),
      connection: (id) => select('connection', id),
    }));
  } else {
    const def = state.flow.connections.find((c) => c.id === sel.id);
    replace(box, connectionPanel(def, state.connections.get(sel.id), state.listing, {
      refresh: (id) => loadListing(id),
      trace: (id) => { showTab('provenance'); $('prov-id').value = id; traceFlowFile(id); },
    }));
  }
  box.scrollTop = scroll;
}

function select(kind, id) {
  state.selected = { kind, id };
  state.listing = null;
  state.graph.select(kind, id);
  showTab('details');
  renderPanel();
  if (kind === 'connection') loadListing(id);
}

let listingBusy = false;
async function loadListing(id) {
  if (listingBusy) return;
  listingBusy = true;
  try {
    const listing = await api.getJSON(`/api/connections/${api.pathId(id)}/queue?limit=50`);
    if (state.selected && state.selected.kind === 'connection' && state.selected.id === id) {
      state.listing = listing;
      renderPanel();
    }
  } catch (e) {
    banner('Queue listing failed: ' + e.message);
  } finally {
    listingBusy = false;
  }
}

async function setRunning(id, running) {
  try {
    const r = await api.post(`/api/processors/${api.pathId(id)}/${running ? 'start' : 'stop'}`);
    const st = state.processors.get(id);
    if (st) {
      st.state = r.state;
      state.graph.update({ processors: [st] });
    }
    banner('');
    renderPanel();
  } catch (e) {
    banner(`Could not ${running ? 'start' : 'stop'} ${id}: ${e.message}`);
  }
}

// ---------------------------------------------------------------- live status

function header() {
  const f = state.flow;
  $('flow-name').textContent = f.name;
  $('flow-meta').textContent = `${f.processors.length} processors · ${f.connections.length} connections · up ${fmtDuration(state.uptimeMs)}`;
}

function apply(update, whole) {
  if (whole) {
    state.processors.clear();
    state.connections.clear();
  }
  for (const p of update.processors || []) state.processors.set(p.id, p);
  for (const c of update.connections || []) state.connections.set(c.id, c);
  if (update.uptime_ms !== undefined) state.uptimeMs = update.uptime_ms;
  state.graph.update(update);
  header();
  const sel = state.selected;
  if (!sel) return;
  if (sel.kind === 'processor' && (update.processors || []).some((p) => p.id === sel.id)) renderPanel();
  if (sel.kind === 'connection' && (update.connections || []).some((c) => c.id === sel.id)) {
    renderPanel();
    loadListing(sel.id);
  }
}

function onBulletin(b) {
  const st = state.processors.get(b.processor);
  if (st) {
    st.bulletins = [...(st.bulletins || []), b].slice(-50);
    state.graph.update({ processors: [st] });
  }
  const node = document.querySelector(`[data-processor="${CSS.escape(b.processor)}"]`);
  if (node && b.level !== 'info') {
    node.classList.remove('flash');
    void node.getBoundingClientRect();
    node.classList.add('flash');
  }
  if (state.selected && state.selected.kind === 'processor' && state.selected.id === b.processor) renderPanel();
}

function live(on) {
  const el = $('live');
  el.textContent = on ? 'live' : 'reconnecting…';
  el.className = 'live ' + (on ? 'on' : 'off');
  el.dataset.live = on ? 'true' : 'false';
}

// ---------------------------------------------------------------- provenance

async function runProvenance(query, label) {
  const out = $('prov-results');
  replace(out, h('p', { class: 'muted' }, 'Looking up ', label, '…'));
  try {
    const r = await api.getJSON('/api/provenance?' + query);
    replace(out, provenanceView(r));
  } catch (e) {
    replace(out, h('p', { class: 'error' }, e.message));
  }
}

function traceFlowFile(id) {
  runProvenance('flowfile=' + encodeURIComponent(id), 'FlowFile #' + id);
}

function wireProvenance() {
  $('prov-by-id').addEventListener('submit', (e) => {
    e.preventDefault();
    const id = $('prov-id').value.trim();
    if (id) traceFlowFile(id);
  });
  $('prov-by-attr').addEventListener('submit', (e) => {
    e.preventDefault();
    const k = $('prov-key').value.trim();
    const v = $('prov-value').value;
    if (k) runProvenance(`attribute=${encodeURIComponent(k)}&value=${encodeURIComponent(v)}`, `${k} = ${v}`);
  });
}

// ---------------------------------------------------------------- start

async function loadFlow() {
  state.flow = await api.getJSON('/api/flow');
  document.title = state.flow.name + ' · Sluice';
  replace($('source'), sourceView(state.flow.source));
  $('source-file').textContent = state.flow.file;
  state.graph = drawGraph($('graph'), state.flow, {
    processor: (id) => select('processor', id),
    connection: (id) => select('connection', id),
  });
  const sel = state.selected;
  const still = sel && (sel.kind === 'processor' ? state.flow.processors : state.flow.connections).some((x) => x.id === sel.id);
  if (still) state.graph.select(sel.kind, sel.id);
  else state.selected = null;
  // Whatever status arrived while the graph was being drawn.
  state.graph.update({ processors: [...state.processors.values()], connections: [...state.connections.values()] });
  header();
  renderPanel();
}

async function main() {
  api.setTokenPrompt(askToken);
  showToken();
  $('token-button').addEventListener('click', () => askToken('The token is printed when sluice starts. It is kept for this tab only.'));
  for (const b of document.querySelectorAll('[data-tab]')) b.addEventListener('click', () => showTab(b.dataset.tab));
  wireProvenance();
  window.addEventListener('resize', () => state.graph && state.graph.fit());
  try {
    await loadFlow();
  } catch (e) {
    banner('Cannot load the flow: ' + e.message);
    return;
  }
  try {
    apply(await api.getJSON('/api/status'), true);
  } catch (e) {
    banner('Cannot load the status: ' + e.message);
  }
  api.openEvents({
    // The flow was reloaded: redraw it; a whole status follows.
    flow: () => loadFlow().catch((e) => banner('Cannot load the new flow: ' + e.message)),
    status: (s) => apply(s, true),
    delta: (d) => apply(d, false),
    bulletin: onBulletin,
  }, live);
  document.body.dataset.ready = 'true';
}

main();
