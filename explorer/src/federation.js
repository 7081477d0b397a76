/**
 * The Federation view: this node's identity, network and readiness; its peers and the registry
 * entries (wallet, active, online, last seen) as tables and as an SVG network map; the
 * registry's staleness. Data from `GET /federation/peers` and `GET /federation/registry`.
 */

import { getJson } from './api.js';
import { h, s, fill, short, time, table, badge } from './dom.js';

/** Most nodes drawn on the map (the tables list everything the relay returns). */
const MAP_NODES = 60;

function map(peers, registry) {
  const nodes = new Map();
  for (const e of registry.entries ?? []) {
    if (e.self) continue;
    nodes.set(e.wallet, { wallet: e.wallet, active: e.active, connected: e.connected });
  }
  for (const p of peers.peers ?? []) {
    if (!p.wallet) continue;
    const n = nodes.get(p.wallet) ?? { wallet: p.wallet, active: p.registry === 'active' };
    n.connected = p.online;
    nodes.set(p.wallet, n);
  }
  const list = [...nodes.values()].slice(0, MAP_NODES);
  const W = 360;
  const H = 320;
  const cx = W / 2;
  const cy = H / 2;
  const r = 110;
  const items = list.map((n, i) => {
    const a = (2 * Math.PI * i) / Math.max(1, list.length) - Math.PI / 2;
    // Labels sit outside the circle, away from the edge to the centre.
    return { ...n, x: cx + r * Math.cos(a), y: cy + r * Math.sin(a), lx: cx + (r + 24) * Math.cos(a), ly: cy + (r + 24) * Math.sin(a) + 4 };
  });
  const state = (n) => (n.connected ? 'online' : n.active ? 'offline' : 'inactive');
  const desc = `This node and ${list.length} other node${list.length === 1 ? '' : 's'}: ` +
    (items.map((n) => `${n.wallet.slice(0, 6)} ${state(n)}`).join(', ') || 'none');
  return s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': desc, class: 'netmap' },
    items.map((n) => s('line', { x1: cx, y1: cy, x2: n.x, y2: n.y, class: `edge ${state(n)}` })),
    s('circle', { cx, cy, r: 16, class: 'node self' }, s('title', {}, `this node ${peers.node?.wallet ?? ''}`)),
    s('text', { x: cx, y: cy + 30, 'text-anchor': 'middle', class: 'lbl' }, 'this node'),
    items.map((n) => s('g', { 'data-wallet': n.wallet },
      s('circle', { cx: n.x, cy: n.y, r: 11, class: `node ${state(n)}` }, s('title', {}, `${n.wallet} (${state(n)})`)),
      s('text', { x: n.lx, y: n.ly, 'text-anchor': 'middle', class: 'lbl' }, n.wallet.slice(0, 6)))));
}

async function refresh() {
  let peers;
  let registry;
  try {
    [peers, registry] = await Promise.all([getJson('/federation/peers'), getJson('/federation/registry')]);
  } catch (e) {
    fill(document.getElementById('fed-node'), h('h3', {}, 'This node'), h('p', {}, e.message));
    return;
  }
  if (!peers.enabled) {
    fill(document.getElementById('fed-node'), h('h3', {}, 'This node'),
      h('p', { id: 'fed-off' }, 'Federation is off on this relay (no [bridge] section in its configuration).'));
    for (const id of ['fed-registry', 'fed-map', 'fed-peers', 'fed-entries']) fill(document.getElementById(id));
    return;
  }
  const n = peers.node;
  fill(document.getElementById('fed-node'), h('h3', {}, 'This node'),
    h('dl', {},
      h('dt', {}, 'Network'), h('dd', { id: 'fed-network' }, n.network),
      h('dt', {}, 'Wallet'), h('dd', {}, short(n.wallet)),
      h('dt', {}, 'Peer id'), h('dd', {}, short(n.peer_id)),
      h('dt', {}, 'Ready'), h('dd', {}, n.ready ? badge('ready', 'ok') : badge('not ready: no peer connected', 'bad'))));
  const st = registry.status;
  fill(document.getElementById('fed-registry'), h('h3', {}, 'Registry'),
    h('dl', {},
      h('dt', {}, 'Backend'), h('dd', {}, st.backend),
      h('dt', {}, 'Authorized nodes'), h('dd', {}, String(st.authorized_nodes)),
      h('dt', {}, 'Last refresh'), h('dd', {}, time(st.last_refresh)),
      h('dt', {}, 'Staleness'), h('dd', { id: 'fed-stale' }, st.stale ? badge(`stale: ${st.stale_reason}`, 'bad') : badge('fresh', 'ok'))));
  fill(document.getElementById('fed-map'), map(peers, registry),
    h('p', { class: 'legend' }, badge('online', 'online'), ' ', badge('registered, not connected', 'offline'), ' ', badge('inactive', 'inactive')));
  fill(document.getElementById('fed-peers'), peers.peers.length
    ? table('Peers seen since the relay started', ['Wallet', 'Peer id', 'Online', 'Last seen', 'Registry'],
      peers.peers.map((p) => h('tr', { 'data-wallet': p.wallet ?? '' }, h('td', {}, short(p.wallet)), h('td', {}, short(p.peer_id)),
        h('td', {}, p.online ? badge('online', 'online') : badge('offline', 'offline')), h('td', {}, time(p.last_seen)), h('td', {}, p.registry ?? '—'))))
    : h('p', { class: 'empty' }, 'No peer seen yet.'));
  fill(document.getElementById('fed-entries'), registry.entries.length
    ? table('Registry entries as this node holds them', ['Wallet', 'Active', 'Online (registry)', 'Connected', 'Last seen'],
      registry.entries.map((e) => h('tr', { 'data-wallet': e.wallet }, h('td', {}, short(e.wallet), e.self ? ' (this node)' : ''),
        h('td', {}, e.active ? badge('active', 'ok') : badge('inactive', 'inactive')), h('td', {}, String(e.online)),
        h('td', {}, e.self ? '—' : e.connected ? badge('yes', 'online') : badge('no', 'offline')), h('td', {}, e.self ? '—' : time(e.last_seen)))))
    : h('p', { class: 'empty' }, 'No registry entries.'));
}

export function startFederation(isVisible) {
  refresh();
  setInterval(() => isVisible() && refresh(), 5000);
  return refresh;
}
