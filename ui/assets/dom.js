// DOM helpers. Everything the page displays goes through these: strings
// become text nodes and attribute values, never markup, so a processor id or
// an attribute like `<script>` shows as text.

const SVG_NS = 'http://www.w3.org/2000/svg';

function build(node, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'dataset') {
      for (const [dk, dv] of Object.entries(v)) node.dataset[dk] = String(dv);
    } else if (k.startsWith('on') && typeof v === 'function') {
      node.addEventListener(k.slice(2), v);
    } else {
      node.setAttribute(k, v === true ? '' : String(v));
    }
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** An HTML element: h('td', {class: 'x'}, 'text', child) */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** Replaces the children of `node`. */
export function replace(node, ...children) {
  node.replaceChildren();
  return build(node, {}, children);
}

export function truncate(text, max) {
  const t = String(text);
  return t.length > max ? t.slice(0, max - 1) + '…' : t;
}

export function fmtCount(n) {
  return Number(n || 0).toLocaleString('en-US');
}

/** 950, 10k, 1.5M: for thresholds shown in little room. */
export function fmtCompact(n) {
  const v = Number(n || 0);
  if (v < 1000) return String(v);
  if (v < 1e6) return +(v / 1e3).toFixed(v < 1e4 ? 1 : 0) + 'k';
  if (v < 1e9) return +(v / 1e6).toFixed(v < 1e7 ? 1 : 0) + 'M';
  return +(v / 1e9).toFixed(1) + 'G';
}

export function fmtRate(r) {
  const v = Number(r || 0);
  if (v === 0) return '0/s';
  if (v < 10) return v.toFixed(1) + '/s';
  if (v < 10000) return Math.round(v).toLocaleString('en-US') + '/s';
  return (v / 1000).toFixed(1) + 'k/s';
}

export function fmtBytes(n) {
  let v = Number(n || 0);
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i += 1;
  }
  return (i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)) + ' ' + units[i];
}

export function fmtDuration(ms) {
  const v = Number(ms || 0);
  if (v < 1000) return v + ' ms';
  const s = v / 1000;
  if (s < 60) return (Number.isInteger(s) ? s : s.toFixed(1)) + ' s';
  const m = Math.floor(s / 60);
  if (m < 60) return m + ' min ' + Math.round(s % 60) + ' s';
  return Math.floor(m / 60) + ' h ' + (m % 60) + ' min';
}

export function fmtTime(ms) {
  const d = new Date(Number(ms));
  return d.toLocaleTimeString('en-GB', { hour12: false }) + '.' + String(d.getMilliseconds()).padStart(3, '0');
}
