/**
 * The explorer's entry point: tabs (one view visible at a time, chosen by the URL hash
 * `#fleet`, `#log`, `#federation`, `#relay`; arrow keys move between tabs), the relay's name in
 * the header, and the views.
 */

import { relayInfo } from './api.js';
import { RelaySocket } from './socket.js';
import { startFleet } from './fleet.js';
import { startLog, verifyId } from './log.js';
import { startFederation } from './federation.js';
import { startRelay } from './relay.js';

const VIEWS = ['fleet', 'log', 'federation', 'relay'];
const refreshers = {};
let current = 'fleet';

function show(view, focus = false) {
  if (!VIEWS.includes(view)) view = 'fleet';
  current = view;
  for (const v of VIEWS) {
    const tab = document.getElementById(`tab-${v}`);
    const panel = document.getElementById(`view-${v}`);
    const on = v === view;
    tab.setAttribute('aria-selected', String(on));
    tab.tabIndex = on ? 0 : -1;
    panel.hidden = !on;
  }
  if (focus) document.getElementById(`tab-${view}`).focus();
  refreshers[view]?.();
  if (location.hash !== `#${view}`) history.replaceState(null, '', `#${view}`);
}

function setupTabs() {
  for (const v of VIEWS) {
    const tab = document.getElementById(`tab-${v}`);
    tab.addEventListener('click', () => show(v));
    tab.addEventListener('keydown', (e) => {
      const i = VIEWS.indexOf(v);
      const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: VIEWS.length - 1 }[e.key];
      if (next === undefined) return;
      e.preventDefault();
      show(VIEWS[(next + VIEWS.length) % VIEWS.length], true);
    });
  }
  window.addEventListener('hashchange', () => show(location.hash.slice(1)));
}

function main() {
  setupTabs();
  const state = document.getElementById('conn-state');
  const note = document.getElementById('auth-note');
  const socket = new RelaySocket(
    (text, kind) => {
      state.textContent = `WebSocket ${text}`;
      state.className = kind;
    },
    (problem) => {
      note.textContent = problem;
      note.hidden = false;
    },
  );
  relayInfo()
    .then((info) => {
      document.getElementById('relay-name').textContent = info.name || 'this relay';
    })
    .catch(() => {});
  const visible = (v) => () => current === v && !document.hidden;
  startFleet(socket, (id) => {
    show('log');
    verifyId(id);
  });
  refreshers.log = startLog(visible('log'));
  refreshers.federation = startFederation(visible('federation'));
  refreshers.relay = startRelay(visible('relay'));
  socket.connect();
  show(location.hash.slice(1) || 'fleet');
}

main();
