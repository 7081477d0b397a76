/**
 * The Relay view: open connections and ingest, delivery and query rates from `/metrics`
 * (Prometheus text, sampled every 2 s while the view is open) as small live charts; `/health`.
 */

import { getJson, getText } from './api.js';
import { h, fill } from './dom.js';
import { lineChart } from './charts.js';

const SAMPLES = 90;

/** Sums every sample of `name` (all label sets) in Prometheus text. */
export function metric(text, name) {
  let sum = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || line.startsWith('#')) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(v)) {
      sum += v;
      found = true;
    }
  }
  return found ? sum : null;
}

const SERIES = [
  { id: 'connections', label: 'Open connections', unit: 'connections', metric: 'relay_connections', rate: false },
  { id: 'ingest', label: 'Events received', unit: 'events/s', metric: 'relay_events_received_total', rate: true },
  { id: 'stored', label: 'Events stored', unit: 'events/s', metric: 'relay_events_stored_total', rate: true },
  { id: 'queries', label: 'Queries', unit: 'queries/s', metric: 'relay_query_seconds_count', rate: true },
  { id: 'delivered', label: 'Events delivered', unit: 'events/s', metric: 'relay_events_delivered_total', rate: true },
];

export function startRelay(isVisible) {
  const history = new Map(SERIES.map((s) => [s.id, []]));
  let prev = null;
  const box = document.getElementById('relay-charts');
  fill(box, SERIES.map((s) => h('div', { class: 'card', id: `chart-${s.id}` }, h('h3', {}, s.label), h('p', { class: 'empty' }, 'sampling…'))));

  async function sample() {
    // Rates over less than a second are noise (a view switch samples at once).
    if (prev && Date.now() / 1000 - prev.at < 1) return;
    let text;
    try {
      text = await getText('/metrics');
    } catch (e) {
      fill(box, h('p', {}, e.message));
      return;
    }
    const now = Date.now() / 1000;
    const values = Object.fromEntries(SERIES.map((s) => [s.id, metric(text, s.metric)]));
    for (const s of SERIES) {
      const hist = history.get(s.id);
      let y = values[s.id];
      if (s.rate) {
        if (!prev || prev.values[s.id] === null || y === null) continue;
        y = Math.max(0, (y - prev.values[s.id]) / (now - prev.at));
      }
      if (y === null) continue;
      hist.push([now, y]);
      if (hist.length > SAMPLES) hist.shift();
    }
    prev = { at: now, values };
    for (const s of SERIES) {
      fill(document.getElementById(`chart-${s.id}`), h('h3', {}, s.label), lineChart(history.get(s.id), { label: s.label, unit: s.unit, time: true }));
    }
    try {
      const health = await getJson('/health');
      fill(document.getElementById('relay-health'), h('h3', {}, 'Health'),
        h('dl', {}, h('dt', {}, 'Status'), h('dd', {}, health.status), h('dt', {}, 'Database'), h('dd', {}, health.db),
          h('dt', {}, 'Connections'), h('dd', {}, String(health.connections))));
    } catch (e) {
      fill(document.getElementById('relay-health'), h('h3', {}, 'Health'), h('p', {}, e.message));
    }
  }
  setInterval(() => isVisible() && sample(), 2000);
  return sample;
}
