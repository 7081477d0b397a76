/**
 * The Log view: signed checkpoints over time (tree size, anchoring transactions), the latest
 * log entries, and in-browser verification with the JavaScript client: an event's inclusion
 * proof against the latest signed checkpoint (each step shown; optionally tampered to show a
 * failure) and the consistency of two chosen checkpoints.
 */

import { getJson, relayInfo } from './api.js';
import { h, fill, short, time, iso, table, badge } from './dom.js';
import { lineChart } from './charts.js';
import { checkpointSteps, checkpointConsistencySteps, eventLeafHash, inclusionSteps, toHex } from './client.js';

/** Checkpoint pages fetched at most (1000 each), checkpoints listed, entries listed. */
const MAX_PAGES = 10;
const LISTED = 50;
const ENTRIES = 20;

let checkpoints = [];

async function loadCheckpoints() {
  let all = [];
  let from = 0;
  for (let page = 0; page < MAX_PAGES; page++) {
    const body = await getJson(`/log/checkpoints?from=${from}&limit=1000`);
    all = all.concat(body.checkpoints);
    if (body.checkpoints.length < 1000) break;
    from = body.checkpoints[body.checkpoints.length - 1].tree_size + 1;
  }
  return all.filter((c) => c && typeof c.tree_size === 'number' && c.event);
}

function stepList(items) {
  return h('ol', { class: 'steps' }, items.map((it) =>
    h('li', { class: it.ok ? 'pass' : 'fail', 'data-ok': String(it.ok) },
      h('span', { class: 'mark', 'aria-hidden': 'true' }, it.ok ? '✓' : '✗'),
      h('span', { class: 'sr-only' }, it.ok ? 'passed: ' : 'failed: '),
      h('strong', {}, it.title), ' ', it.detail ?? '')));
}

function verdict(ok, text) {
  return h('p', { id: 'verify-result', class: `verdict ${ok ? 'pass' : 'fail'}`, 'data-ok': String(ok), role: 'status' }, ok ? '✓ ' : '✗ ', text);
}

/** Verifies event `id` against the latest signed checkpoint, showing each step. */
async function verify(id, tamper) {
  const out = document.getElementById('verify-out');
  const steps = [];
  const show = (final) => fill(out, stepList(steps), final ?? h('p', { class: 'status' }, 'checking…'));
  show();
  try {
    const info = await relayInfo();
    steps.push({ ok: true, title: "Relay's key", detail: h('span', {}, 'from its NIP-11 document: ', short(info.pubkey)) });
    const cpEvent = (await getJson('/log/checkpoint')).event;
    const cp = await checkpointSteps(cpEvent, info.pubkey);
    for (const st of cp.steps) steps.push({ ok: st.ok, title: `Checkpoint ${st.check}`, detail: st.detail });
    show();
    if (!cp.ok) return show(verdict(false, `The latest checkpoint does not verify: ${cp.error.message}`));
    const size = cp.checkpoint.tree_size;
    let proof;
    try {
      proof = await getJson(`/log/proof/inclusion?id=${id}&tree_size=${size}`);
    } catch (e) {
      steps.push({ ok: false, title: 'Inclusion proof', detail: e.message });
      const later = /not|beyond|after/i.test(e.message) ? ' If the event is newer than the latest checkpoint, try again after the next one.' : '';
      return show(verdict(false, `No inclusion proof at tree size ${size}.${later}`));
    }
    steps.push({ ok: true, title: 'Inclusion proof fetched', detail: `leaf ${proof.leaf_index} of ${proof.tree_size}, ${proof.audit_path.length} hashes, received ${iso(Math.floor(proof.received_ms / 1000))}` });
    let path = proof.audit_path.slice();
    let leafHex = toHex(await eventLeafHash(id, proof.received_ms));
    if (tamper) {
      // Flip the lowest bit of the first audit-path hash (or of the leaf hash for a one-leaf tree).
      const flip = (hex) => hex.slice(0, 63) + (parseInt(hex[63], 16) ^ 1).toString(16);
      if (path.length) path[0] = flip(path[0]);
      else leafHex = flip(leafHex);
      steps.push({ ok: true, title: 'Tampered', detail: path.length ? 'flipped one bit of the first audit-path hash' : 'flipped one bit of the leaf hash' });
    }
    const leafOk = tamper && !path.length ? false : leafHex === proof.leaf_hash;
    steps.push({ ok: leafOk, title: 'Leaf hash', detail: h('span', {}, 'SHA-256(0x00 ‖ event id ‖ received_ms) = ', short(leafHex), leafOk ? ' matches the proof' : ' differs from the proof') });
    const inc = await inclusionSteps(leafHex, proof.leaf_index, size, path, cp.checkpoint.root_hash);
    for (const st of inc.steps) {
      steps.push({ ok: true, title: `Step ${st.i + 1}`, detail: h('span', {}, `sibling on the ${st.side}: `, short(st.sibling), ' → ', short(st.after)) });
    }
    const rootDetail = inc.ok
      ? h('span', {}, 'computed root equals the signed root ', short(cp.checkpoint.root_hash))
      : h('span', {}, `${inc.error.message}; computed `, short(inc.computedRoot ?? '—'), ', signed ', short(cp.checkpoint.root_hash));
    steps.push({ ok: inc.ok, title: 'Root', detail: rootDetail });
    const ok = inc.ok && leafOk;
    show(verdict(ok, ok
      ? `Event ${id.slice(0, 12)}… is in the log at position ${proof.leaf_index}, under the checkpoint of tree size ${size} signed by the relay.`
      : 'The proof does NOT verify: this event is not shown to be in the signed log.'));
  } catch (e) {
    steps.push({ ok: false, title: 'Error', detail: e.message });
    show(verdict(false, `Verification could not finish: ${e.message}`));
  }
}

async function consistency() {
  const out = document.getElementById('cons-out');
  const a = checkpoints[Number(document.getElementById('cons-first').value)];
  const b = checkpoints[Number(document.getElementById('cons-second').value)];
  if (!a || !b) return fill(out, h('p', {}, 'Choose two checkpoints.'));
  const [older, newer] = a.tree_size <= b.tree_size ? [a, b] : [b, a];
  const steps = [];
  try {
    const info = await relayInfo();
    for (const c of [older, newer]) {
      const r = await checkpointSteps(c.event, info.pubkey);
      steps.push({ ok: r.ok, title: `Checkpoint ${c.tree_size}`, detail: r.ok ? 'signed by the relay' : r.error.message });
    }
    const proof = await getJson(`/log/proof/consistency?first=${older.tree_size}&second=${newer.tree_size}`);
    steps.push({ ok: true, title: 'Consistency proof fetched', detail: `${proof.proof.length} hashes` });
    const res = await checkpointConsistencySteps(older, newer, proof.proof);
    for (const st of res.steps) {
      steps.push({ ok: true, title: st.seed ? 'Seed' : `Step ${st.i + 1}`, detail: h('span', {}, short(st.hash ?? st.old ?? ''), ` (${st.updates ?? 'seed'})`) });
    }
    steps.push({ ok: res.ok, title: 'Roots', detail: res.ok ? 'both signed roots are reproduced' : res.error.message });
    const ok = res.ok && steps.every((s) => s.ok);
    fill(out, stepList(steps), h('p', { id: 'cons-result', class: `verdict ${ok ? 'pass' : 'fail'}`, 'data-ok': String(ok), role: 'status' },
      ok ? `✓ The log of size ${newer.tree_size} extends the log of size ${older.tree_size}.` : '✗ Not consistent.'));
  } catch (e) {
    steps.push({ ok: false, title: 'Error', detail: e.message });
    fill(out, stepList(steps), h('p', { id: 'cons-result', class: 'verdict fail', 'data-ok': 'false', role: 'status' }, `✗ ${e.message}`));
  }
}

async function refresh() {
  try {
    checkpoints = await loadCheckpoints();
  } catch (e) {
    fill(document.getElementById('log-latest'), h('h3', {}, 'Latest checkpoint'), h('p', {}, e.message));
    return;
  }
  const latest = checkpoints[checkpoints.length - 1];
  const chart = document.getElementById('log-chart');
  fill(chart, lineChart(checkpoints.map((c) => [c.timestamp, c.tree_size]), { label: 'tree size over time', unit: 'leaves', time: true }));
  if (!latest) {
    fill(document.getElementById('log-latest'), h('h3', {}, 'Latest checkpoint'), h('p', {}, 'No checkpoint has been signed yet.'));
    return;
  }
  fill(document.getElementById('log-latest'), h('h3', {}, 'Latest checkpoint'),
    h('dl', {},
      h('dt', {}, 'Tree size'), h('dd', { id: 'latest-size' }, String(latest.tree_size)),
      h('dt', {}, 'Signed'), h('dd', {}, time(latest.timestamp)),
      h('dt', {}, 'Root'), h('dd', {}, short(latest.root_hash)),
      h('dt', {}, 'Anchor'), h('dd', {}, latest.anchor ? short(latest.anchor, 10) : 'not anchored')));
  const recent = checkpoints.slice(-LISTED).reverse();
  fill(document.getElementById('log-checkpoints'), table('Signed checkpoints, newest first', ['Signed', 'Tree size', 'Root', 'Anchoring transaction'],
    recent.map((c) => h('tr', {}, h('td', {}, time(c.timestamp)), h('td', {}, String(c.tree_size)), h('td', {}, short(c.root_hash)),
      h('td', {}, c.anchor ? short(c.anchor, 10) : '—')))));
  const options = () => checkpoints.map((c, i) => [i, c]).slice(-200).reverse()
    .map(([i, c]) => h('option', { value: String(i) }, `size ${c.tree_size} · ${iso(c.timestamp)}`));
  const first = document.getElementById('cons-first');
  const second = document.getElementById('cons-second');
  const keep = [first.value, second.value];
  fill(first, options());
  fill(second, options());
  first.value = keep[0] || String(Math.max(0, checkpoints.length - 2));
  second.value = keep[1] || String(checkpoints.length - 1);
  try {
    const start = Math.max(0, latest.tree_size - ENTRIES);
    const body = await getJson(`/log/entries?start=${start}&end=${latest.tree_size}`);
    const waiting = body.tree_size - latest.tree_size;
    fill(document.getElementById('log-entries'),
      table('Latest log entries under the latest checkpoint, newest first', ['Position', 'Event', 'Received', ''],
        body.entries.slice().reverse().map((e) => h('tr', { 'data-event': e.event_id },
          h('td', {}, String(e.index)), h('td', {}, short(e.event_id)), h('td', {}, time(Math.floor(e.received_ms / 1000))),
          h('td', {}, h('button', { type: 'button', 'aria-label': `verify event ${e.event_id}`, onclick: () => verifyId(e.event_id) }, 'Verify'))))),
      waiting > 0 ? h('p', { class: 'help' }, `${waiting} newer entr${waiting === 1 ? 'y awaits' : 'ies await'} the next checkpoint.`) : null);
  } catch (e) {
    fill(document.getElementById('log-entries'), h('p', {}, e.message));
  }
}

/** Puts `id` in the form and verifies it. */
export function verifyId(id) {
  document.getElementById('verify-id').value = id;
  document.getElementById('verify-btn').focus();
  return verify(id, document.getElementById('verify-tamper').checked);
}

export function startLog(isVisible) {
  document.getElementById('verify-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const id = document.getElementById('verify-id').value.trim().toLowerCase();
    if (!/^[0-9a-f]{64}$/.test(id)) {
      fill(document.getElementById('verify-out'), verdict(false, 'An event id is 64 hex digits.'));
      return;
    }
    verify(id, document.getElementById('verify-tamper').checked);
  });
  document.getElementById('cons-form').addEventListener('submit', (e) => {
    e.preventDefault();
    consistency();
  });
  refresh();
  setInterval(() => isVisible() && refresh(), 10000);
  return refresh;
}
