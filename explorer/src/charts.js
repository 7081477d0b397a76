/**
 * Small SVG charts (no library): a line chart of `[x, y]` points with its latest value, and
 * the scale in text for screen readers.
 */

import { h, s, iso } from './dom.js';

const W = 320;
const H = 110;
const PAD = { l: 44, r: 8, t: 8, b: 20 };

function fmt(v) {
  if (!Number.isFinite(v)) return '—';
  if (Math.abs(v) >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (Math.abs(v) >= 1e3) return `${(v / 1e3).toFixed(1)}k`;
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}

/** A line chart; `opts.label` names it, `opts.unit` its values, `opts.time` x as unix seconds. */
export function lineChart(points, opts = {}) {
  const label = opts.label ?? 'chart';
  if (!points.length) return h('p', { class: 'empty' }, `${label}: no data yet`);
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs, x0 + 1);
  const y1 = Math.max(...ys, 1);
  const y0 = Math.min(0, ...ys);
  const px = (x) => PAD.l + ((x - x0) / (x1 - x0)) * (W - PAD.l - PAD.r);
  const py = (y) => H - PAD.b - ((y - y0) / (y1 - y0 || 1)) * (H - PAD.t - PAD.b);
  const d = points.map((p, i) => `${i ? 'L' : 'M'}${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join('');
  const last = ys[ys.length - 1];
  const summary = `${label}: latest ${fmt(last)} ${opts.unit ?? ''}, range ${fmt(Math.min(...ys))} to ${fmt(Math.max(...ys))}`;
  return h('figure', { class: 'linechart' },
    s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': summary, preserveAspectRatio: 'none' },
      s('line', { x1: PAD.l, y1: H - PAD.b, x2: W - PAD.r, y2: H - PAD.b, class: 'axis' }),
      s('line', { x1: PAD.l, y1: PAD.t, x2: PAD.l, y2: H - PAD.b, class: 'axis' }),
      s('text', { x: PAD.l - 4, y: PAD.t + 8, class: 'tick', 'text-anchor': 'end' }, fmt(y1)),
      s('text', { x: PAD.l - 4, y: H - PAD.b, class: 'tick', 'text-anchor': 'end' }, fmt(y0)),
      opts.time ? s('text', { x: W - PAD.r, y: H - 4, class: 'tick', 'text-anchor': 'end' }, iso(x1).slice(11, 19)) : null,
      s('path', { d, class: 'line' }),
      s('circle', { cx: px(xs[xs.length - 1]), cy: py(last), r: 3, class: 'dot' })),
    h('figcaption', {}, h('span', { class: 'value' }, fmt(last)), ` ${opts.unit ?? ''}`));
}
