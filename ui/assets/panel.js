// The side panel: a processor's configuration and counters, a connection's
// queue, the flow's YAML source, provenance results. Render functions only:
// they take data and callbacks and return elements built with dom.js.

import { h, fmtCount, fmtBytes, fmtRate, fmtDuration, fmtTime } from './dom.js';
import { fillLevel } from './graph.js';

function kv(rows, attrs) {
  return h('table', { class: 'kv', ...attrs },
    h('tbody', {}, rows.filter(Boolean).map(([k, v, field]) =>
      h('tr', field ? { dataset: { counter: field } } : {}, h('th', {}, k), h('td', {}, v)))));
}

function propertyValue(prop) {
  if (prop.value === null || prop.value === undefined) {
    return prop.default !== null && prop.default !== undefined
      ? h('span', { class: 'muted' }, prop.default, h('span', { class: 'tag' }, 'default'))
      : h('span', { class: 'muted' }, '—');
  }
  const tags = [];
  if (prop.sensitive) tags.push(h('span', { class: 'tag secret' }, 'secret'));
  if (prop.from_env) tags.push(h('span', { class: 'tag env' }, 'env'));
  const v = prop.value;
  let shown;
  if (Array.isArray(v)) {
    shown = h('ul', { class: 'plain' }, v.map((x) => h('li', {}, h('code', {}, x))));
  } else if (typeof v === 'object') {
    shown = h('table', { class: 'map' }, h('tbody', {},
      Object.entries(v).map(([k, x]) => h('tr', {}, h('th', {}, k), h('td', {}, h('code', {}, x))))));
  } else {
    shown = h('code', { class: 'value' }, v);
  }
  return h('div', { class: 'prop-value' }, shown, tags);
}

function bulletinList(bulletins) {
  if (!bulletins.length) return h('p', { class: 'muted' }, 'No bulletins.');
  return h('ul', { class: 'bulletins' }, [...bulletins].reverse().slice(0, 20).map((b) =>
    h('li', { class: 'lvl-' + b.level },
      h('span', { class: 'lvl' }, b.level),
      h('span', { class: 'when' }, fmtTime(b.time)),
      h('div', { class: 'msg' }, b.message))));
}

/** A processor: `def` from /api/flow, `st` its status, `flow` the whole flow. */
export function processorPanel(def, st, flow, on) {
  const running = st ? st.state === 'running' : true;
  const counters = st ? [
    ['FlowFiles in', `${fmtCount(st.flowfiles_in)} (${fmtRate(st.rates.flowfiles_in)})`, 'flowfiles_in'],
    ['Bytes in', fmtBytes(st.bytes_in), 'bytes_in'],
    ['FlowFiles out', `${fmtCount(st.flowfiles_out)} (${fmtRate(st.rates.flowfiles_out)})`, 'flowfiles_out'],
    ['Bytes out', fmtBytes(st.bytes_out), 'bytes_out'],
    ['Created', fmtCount(st.flowfiles_created), 'flowfiles_created'],
    ['Dropped', fmtCount(st.flowfiles_dropped), 'flowfiles_dropped'],
    ['Invocations', fmtCount(st.invocations), 'invocations'],
    ['Errors', fmtCount(st.errors), 'errors'],
    ['Rollbacks', fmtCount(st.rollbacks), 'rollbacks'],
    ['Active tasks', fmtCount(st.active_tasks), 'active_tasks'],
    st.back_pressured ? ['Held back', 'an outgoing connection is full', 'back_pressured'] : null,
    ...Object.entries(st.counters || {}).map(([k, v]) => [k, fmtCount(v), 'counter:' + k]),
  ] : [];
  const outgoing = (rel) => flow.connections.filter((c) => c.from === def.id && c.relationships.includes(rel));
  return h('div', { class: 'panel', dataset: { panel: 'processor', id: def.id } },
    h('div', { class: 'panel-head' },
      h('div', {},
        h('h2', { dataset: { field: 'title' } }, def.id),
        h('div', { class: 'sub' }, def.type, ' · line ', String(def.line))),
      h('span', { class: 'state ' + (running ? 'running' : 'stopped'), dataset: { field: 'state' } },
        running ? 'running' : 'stopped')),
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'stop', dataset: { action: 'stop' }, disabled: !running, onclick: () => on.stop(def.id) }, '■ Stop'),
      h('button', { type: 'button', class: 'start', dataset: { action: 'start' }, disabled: running, onclick: () => on.start(def.id) }, '▶ Start'),
      h('span', { class: 'muted small' }, 'needs the token')),
    h('p', { class: 'desc' }, def.type_description),
    h('h3', {}, 'Counters'),
    kv(counters, { dataset: { section: 'counters' } }),
    h('h3', {}, 'Bulletins'),
    bulletinList(st ? st.bulletins || [] : []),
    h('h3', {}, 'Properties'),
    h('table', { class: 'props', dataset: { section: 'properties' } }, h('tbody', {},
      def.properties.map((p) => h('tr', { dataset: { property: p.name } },
        h('th', { title: p.description },
          p.name, p.required ? h('span', { class: 'req', title: 'required' }, ' *') : null,
          h('div', { class: 'kind' }, p.kind)),
        h('td', {}, propertyValue(p)))))),
    h('h3', {}, 'Relationships'),
    h('ul', { class: 'rels' }, def.relationships.map((r) => h('li', {},
      h('code', {}, r.name), ' → ',
      r.auto_terminated ? h('span', { class: 'muted' }, 'auto-terminated')
        : outgoing(r.name).map((c) => h('a', { href: '#', onclick: (e) => { e.preventDefault(); on.connection(c.id); } }, c.to)),
      h('div', { class: 'muted small' }, r.description)))),
    h('h3', {}, 'Scheduling'),
    kv([
      ['Concurrent tasks', String(def.scheduling.concurrent_tasks)],
      ['Batch size', fmtCount(def.scheduling.batch_size)],
      ['Run schedule', def.scheduling.run_schedule_ms ? fmtDuration(def.scheduling.run_schedule_ms) : 'when there is work'],
      ['Penalty', fmtDuration(def.scheduling.penalty_ms)],
      ['Yield', fmtDuration(def.scheduling.yield_ms)],
    ]));
}

function fillBar(st) {
  const level = st ? fillLevel(st) : 'ok';
  const pct = st ? Math.min(100, st.fill * 100) : 0;
  const bar = h('div', { class: 'bigbar level-' + level, dataset: { level } }, h('div', { class: 'fill' }));
  bar.firstChild.style.width = pct.toFixed(1) + '%';
  return bar;
}

/** A connection and, when loaded, its queue listing. */
export function connectionPanel(def, st, listing, on) {
  const rows = listing ? listing.flowfiles : [];
  const now = Date.now();
  return h('div', { class: 'panel', dataset: { panel: 'connection', id: def.id } },
    h('div', { class: 'panel-head' },
      h('div', {},
        h('h2', {}, def.from, ' → ', def.to),
        h('div', { class: 'sub' }, def.relationships.join(', '), ' · ', def.id))),
    fillBar(st),
    kv([
      ['Queued', st ? `${fmtCount(st.queued_count)} of ${fmtCount(def.max_count)} (${fmtBytes(st.queued_bytes)} of ${fmtBytes(def.max_bytes)})` : '—', 'queued'],
      ['Fill', st ? `${(st.fill * 100).toFixed(1)} %${st.back_pressured ? ' · back-pressured' : ''}` : '—', 'fill'],
      ['When full', def.when_full + (def.shed ? ` (shed ${def.shed.attribute} > ${def.shed.above})` : '')],
      ['Order', def.prioritizer],
      ['Expiration', def.expiration_ms ? fmtDuration(def.expiration_ms) : 'none'],
      st ? ['Enqueued / dequeued', `${fmtCount(st.enqueued)} / ${fmtCount(st.dequeued)}`] : null,
      st ? ['Dropped', `${fmtCount(st.dropped_overflow)} overflow · ${fmtCount(st.dropped_expired)} expired`] : null,
    ]),
    h('div', { class: 'section-head' },
      h('h3', {}, 'Queued FlowFiles'),
      h('button', { type: 'button', class: 'small', onclick: () => on.refresh(def.id) }, 'Refresh')),
    !listing ? h('p', { class: 'muted' }, 'Loading…')
      : rows.length === 0 ? h('p', { class: 'muted' }, 'The queue is empty.')
        : h('div', {},
          h('p', { class: 'muted small' }, `First ${rows.length} of ${fmtCount(listing.queued_count)}, in hand-out order.`),
          h('table', { class: 'queue', dataset: { section: 'queue' } },
            h('thead', {}, h('tr', {}, h('th', {}, 'FlowFile'), h('th', {}, 'Size'), h('th', {}, 'Age'), h('th', {}, 'Attributes'))),
            h('tbody', {}, rows.map((f) => h('tr', { dataset: { flowfile: f.id } },
              h('td', {}, h('a', { href: '#', title: 'Where did it go?', onclick: (e) => { e.preventDefault(); on.trace(f.id); } }, '#' + f.id),
                f.penalized_until > now ? h('div', { class: 'tag' }, 'penalised') : null),
              h('td', {}, fmtBytes(f.size)),
              h('td', {}, fmtDuration(Math.max(0, now - f.entry_date))),
              h('td', {}, h('dl', { class: 'attrs' }, Object.entries(f.attributes).map(([k, v]) =>
                [h('dt', {}, k), h('dd', {}, v)])))))))));
}

/** The flow file's text with line numbers. */
export function sourceView(source) {
  const lines = source.split('\n');
  if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop();
  return h('pre', { class: 'source' }, lines.map((line) => h('span', { class: 'line' }, line, '\n')));
}

const KIND_CLASS = { CREATE: 'k-create', RECEIVE: 'k-create', FORK: 'k-fork', ROUTE: 'k-route', SEND: 'k-send', DROP: 'k-drop' };

function describe(e) {
  switch (e.kind) {
    case 'CREATE': return ['created by ', h('b', {}, e.component)];
    case 'RECEIVE': return ['received by ', h('b', {}, e.component), e.details ? ' from ' + e.details : ''];
    case 'FORK': return ['derived by ', h('b', {}, e.component), ' from #', e.parents.join(', #'), e.details ? ' (' + e.details + ')' : ''];
    case 'ROUTE': return [h('b', {}, e.component), ' → ', h('code', {}, e.details)];
    case 'SEND': return ['sent by ', h('b', {}, e.component), ' to ', h('code', {}, e.details)];
    case 'DROP': return ['dropped at ', h('b', {}, e.component), e.details ? ' (' + e.details + ')' : ''];
    default: return [e.component, ' ', e.details];
  }
}

/** Provenance results grouped by FlowFile, oldest event first. */
export function provenanceView(result) {
  if (!result.events.length) {
    return h('p', { class: 'muted', dataset: { provenance: 'empty' } },
      'No events kept for this query (provenance keeps the most recent events only).');
  }
  return h('div', { dataset: { provenance: 'results' } }, result.flowfiles.map((id) => {
    const evs = result.events.filter((e) => e.flowfile === id);
    const last = evs[evs.length - 1];
    return h('div', { class: 'trace', dataset: { flowfile: id } },
      h('h4', {}, 'FlowFile #' + id),
      h('ol', { class: 'steps' }, evs.map((e) => h('li', { class: KIND_CLASS[e.kind] || '' },
        h('span', { class: 'when' }, fmtTime(e.time)),
        h('span', { class: 'kind' }, e.kind),
        h('span', { class: 'what' }, describe(e))))),
      last ? h('details', {}, h('summary', {}, 'Attributes at the last event'),
        h('dl', { class: 'attrs' }, Object.entries(last.attributes).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]))) : null);
  }));
}
