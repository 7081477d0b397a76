/**
 * DOM helpers: build elements from text only (never HTML strings: event content and peer data
 * are untrusted), format times and keys.
 */

/** `h('td', {class: 'x'}, 'text', child)`: an element with attributes and children. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** An SVG element with attributes and children. */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces the children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** `abcd…wxyz` for a long hex or base58 string, full text in the title. */
export function short(text, keep = 8) {
  const t = String(text ?? '');
  if (t.length <= keep * 2 + 1) return h('code', {}, t);
  return h('code', { title: t }, `${t.slice(0, keep)}…${t.slice(-keep)}`);
}

/** ISO time (UTC) of unix seconds. */
export function iso(secs) {
  if (secs === null || secs === undefined) return '—';
  return new Date(secs * 1000).toISOString().replace('.000Z', 'Z');
}

/** "12 s ago" for unix seconds. */
export function ago(secs, now = Date.now() / 1000) {
  if (secs === null || secs === undefined) return 'never';
  const d = Math.max(0, Math.round(now - secs));
  if (d < 60) return `${d} s ago`;
  if (d < 3600) return `${Math.floor(d / 60)} min ago`;
  if (d < 86400) return `${Math.floor(d / 3600)} h ago`;
  return `${Math.floor(d / 86400)} d ago`;
}

/** A `<time>` element for unix seconds, relative text, ISO in the title. */
export function time(secs) {
  if (secs === null || secs === undefined) return h('span', {}, 'never');
  return h('time', { datetime: iso(secs), title: iso(secs) }, ago(secs));
}

/** A table with a caption (for screen readers), header row and rows of cells. */
export function table(caption, headers, rows) {
  return h('table', {},
    h('caption', { class: 'sr-only' }, caption),
    h('thead', {}, h('tr', {}, headers.map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows));
}

/** A yes/no badge. */
export function badge(text, kind) {
  return h('span', { class: `badge ${kind}` }, text);
}
