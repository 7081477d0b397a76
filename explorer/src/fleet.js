/**
 * The Fleet view: machines by session from kind-1573 Status events (live subscription), each
 * with its current state, the time of its last change and a timeline; filter by session and
 * machine. Events are parsed (id and signature checked) with the JavaScript client's DePHY parser;
 * anything else is ignored.
 */

import { h, s, fill, short, time, iso, table, badge } from './dom.js';
import { parseStatus } from './client.js';

/** Most machines kept, most Status events kept per machine. */
const MAX_MACHINES = 2000;
const MAX_EVENTS_PER_MACHINE = 200;
/** Stored events asked for when subscribing. */
const BACKLOG = 1000;
/** Event ids remembered for deduplication (after a reconnect the backlog comes again). */
const MAX_SEEN = 100000;

export function startFleet(socket, onVerify) {
  const machines = new Map();
  const seen = new Set();
  const out = document.getElementById('fleet');
  const status = document.getElementById('fleet-status');
  const fSession = document.getElementById('filter-session');
  const fMachine = document.getElementById('filter-machine');
  const sessionsList = document.getElementById('sessions');
  let pending = false;
  let loaded = false;
  let lastArrival = null;
  const openDetails = new Set();

  const schedule = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      render();
    });
  };

  async function add(event) {
    if (typeof event?.id !== 'string' || seen.has(event.id)) return;
    if (seen.size >= MAX_SEEN) seen.clear();
    seen.add(event.id);
    const parsed = await parseStatus(event);
    if (!parsed) return;
    const key = `${parsed.session}\u0000${parsed.machine}`;
    let m = machines.get(key);
    if (!m) {
      if (machines.size >= MAX_MACHINES) return;
      m = { session: parsed.session, machine: parsed.machine, events: [] };
      machines.set(key, m);
    }
    m.events.push({ id: event.id, at: event.created_at, status: parsed.status, reason: parsed.reason });
    m.events.sort((a, b) => a.at - b.at || (a.id < b.id ? -1 : 1));
    if (m.events.length > MAX_EVENTS_PER_MACHINE) m.events.splice(0, m.events.length - MAX_EVENTS_PER_MACHINE);
    // The newest Status (the backlog arrives newest first, live events after it).
    if (!lastArrival || event.created_at >= lastArrival.at) {
      lastArrival = { machine: parsed.machine, status: parsed.status, at: event.created_at };
    }
    schedule();
  }

  function lastChange(events) {
    let i = events.length - 1;
    while (i > 0 && events[i - 1].status === events[i].status) i--;
    return events[i].at;
  }

  function timeline(key, events) {
    const w = 220;
    const hgt = 18;
    const from = events[0].at;
    const to = Math.max(Date.now() / 1000, events[events.length - 1].at + 1);
    const x = (t) => ((t - from) / (to - from || 1)) * w;
    const segs = events.map((e, i) => {
      const end = i + 1 < events.length ? events[i + 1].at : to;
      return s('rect', { x: x(e.at).toFixed(1), y: 0, width: Math.max(1, x(end) - x(e.at)).toFixed(1), height: hgt, class: `seg ${e.status}` },
        s('title', {}, `${e.status} from ${iso(e.at)}`));
    });
    const svg = s('svg', { viewBox: `0 0 ${w} ${hgt}`, width: w, height: hgt, class: 'timeline', role: 'img',
      'aria-label': `timeline: ${events.map((e) => e.status).join(', ')}` }, segs);
    const list = h('ol', { class: 'changes' },
      events.slice(-20).reverse().map((e) => h('li', {}, h('time', { datetime: iso(e.at) }, iso(e.at)), ' ',
        badge(e.status, e.status), ` ${e.reason} `,
        h('button', { type: 'button', class: 'link', 'aria-label': `verify event ${e.id} in the log`, onclick: () => onVerify(e.id) }, 'verify'))));
    const details = h('details', { open: openDetails.has(key) }, h('summary', {}, `${events.length} status event${events.length === 1 ? '' : 's'}`), list);
    details.addEventListener('toggle', () => (details.open ? openDetails.add(key) : openDetails.delete(key)));
    return h('div', {}, svg, details);
  }

  function render() {
    const fs = fSession.value.trim();
    const fm = fMachine.value.trim().toLowerCase();
    const bySession = new Map();
    for (const m of machines.values()) {
      if (fs && !m.session.includes(fs)) continue;
      if (fm && !m.machine.startsWith(fm)) continue;
      if (!bySession.has(m.session)) bySession.set(m.session, []);
      bySession.get(m.session).push(m);
    }
    const allSessions = [...new Set([...machines.values()].map((m) => m.session))].sort();
    fill(sessionsList, allSessions.slice(0, 200).map((x) => h('option', { value: x })));
    const groups = [...bySession.keys()].sort().map((session) => {
      const rows = bySession.get(session)
        .sort((a, b) => (a.machine < b.machine ? -1 : 1))
        .map((m) => {
          const cur = m.events[m.events.length - 1];
          return h('tr', { 'data-machine': m.machine, 'data-session': m.session, 'data-state': cur.status },
            h('th', { scope: 'row' }, short(m.machine)),
            h('td', { class: 'state' }, badge(cur.status, cur.status)),
            h('td', {}, time(lastChange(m.events))),
            h('td', {}, timeline(`${m.session}\u0000${m.machine}`, m.events)));
        });
      return h('section', { class: 'session', 'aria-label': `session ${session}` },
        h('h3', {}, 'Session ', h('code', {}, session), ` · ${rows.length} machine${rows.length === 1 ? '' : 's'}`),
        h('div', { class: 'scroll' }, table(`Machines of session ${session}`, ['Machine', 'State', 'Last change', 'Timeline'], rows)));
    });
    fill(out, groups.length ? groups : h('p', { class: 'empty' }, loaded ? 'No Status events match.' : 'Loading…'));
    const shown = [...bySession.values()].reduce((n, l) => n + l.length, 0);
    const tail = lastArrival ? `; latest: ${lastArrival.machine.slice(0, 8)}… is ${lastArrival.status}` : '';
    status.textContent = `${shown} of ${machines.size} machines in ${bySession.size} session${bySession.size === 1 ? '' : 's'}${tail}`;
  }

  for (const input of [fSession, fMachine]) input.addEventListener('input', schedule);
  document.getElementById('fleet-filter').addEventListener('submit', (e) => e.preventDefault());
  socket.subscribe('fleet', [{ kinds: [1573], limit: BACKLOG }], add, () => {
    loaded = true;
    schedule();
  });
  // Relative times ("12 s ago") move on.
  setInterval(() => {
    if (!out.contains(document.activeElement)) schedule();
  }, 5000);
  schedule();
}
