// The client against a real relay (started by device-sdk/tests/js_client.rs, which sets
// DEPHY_RELAY_URL; the relay there requires NIP-42 auth for reads): publish and OK, AUTH with a
// signer, resumable subscriptions across a cut connection (no gap, no duplicate) and paging,
// NIP-98 reads over HTTP, and log verification (inclusion against the signed checkpoint,
// consistency between checkpoints, tampered proofs failing).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  RelayClient,
  ZERO_ID,
  fetchCheckpoint,
  fetchCheckpoints,
  fetchEventsAfter,
  fetchRelayInfo,
  generateSecretKey,
  parseCheckpointEvent,
  parseDephyEvent,
  secretKeySigner,
  statusEvent,
  verifyCheckpointsConsistent,
  verifyEventInLog,
} from '../src/index.js';
import { Proxy } from '../test-support/proxy.js';

const url = process.env.DEPHY_RELAY_URL;
const skip = url ? false : 'set DEPHY_RELAY_URL to a relay (device-sdk/tests/js_client.rs does) to run these';
const LIMIT_MS = 30000;

/** Waits until `check()` is true, polling; fails (naming `what`) after LIMIT_MS. */
async function until(what, check) {
  const deadline = Date.now() + LIMIT_MS;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function uniqueSession(name) {
  return `${name}-${Date.now()}-${Math.random().toString(16).slice(2)}`;
}

/** Closes `closable` when the test ends, passed or failed (no reconnecting client outlives it). */
function closeAfter(t, closable) {
  t.after(() => closable.close());
  return closable;
}

async function publisher(t) {
  const sk = generateSecretKey();
  const client = closeAfter(t, new RelayClient(url, { signer: secretKeySigner(sk) }));
  await client.connect();
  return { sk, client };
}

let published = 0;

/** Publishes `n` distinct Status events (a counter in the payload keeps their ids apart). */
async function publishStatuses(client, sk, session, n) {
  const ids = [];
  for (let i = 0; i < n; i++) {
    published += 1;
    const event = await statusEvent(sk, { session, status: i % 2 ? 'Available' : 'Working', reason: 'UserRequest', initial_request: ZERO_ID, payload: String(published) });
    const ok = await client.publish(event);
    assert.deepEqual(ok, { accepted: true, message: '' });
    ids.push(event.id);
  }
  return ids;
}

test('reads need NIP-42 auth: refused without a signer, served with one', { skip }, async (t) => {
  const { sk, client } = await publisher(t);
  const session = uniqueSession('auth');
  const [id] = await publishStatuses(client, sk, session, 1);

  const anonymous = closeAfter(t, new RelayClient(url, { reconnect: false }));
  await anonymous.connect();
  const closed = await new Promise((resolve) => anonymous.subscribe([{ '#s': [session] }], { onClosed: resolve }));
  assert.match(closed, /^auth-required:/);
  anonymous.close();

  const got = [];
  let eose = false;
  const reader = closeAfter(t, new RelayClient(url, { signer: secretKeySigner(generateSecretKey()) }));
  await reader.connect();
  reader.subscribe([{ '#s': [session] }], { onEvent: (e) => got.push(e), onEose: () => (eose = true) });
  await until('the authenticated read', () => eose);
  assert.deepEqual(got.map((e) => e.id), [id]);
  assert.ok(reader.authenticated);
  const parsed = await parseDephyEvent(got[0], session);
  assert.equal(parsed.message.type, 'Status');
  reader.close();
  client.close();
});

test('a cursor subscription resumes after the connection is cut: no gap, no duplicate', { skip }, async (t) => {
  const { sk, client } = await publisher(t);
  const session = uniqueSession('resume');
  const before = await publishStatuses(client, sk, session, 5);

  const relayPort = Number(new URL(url).port);
  const proxy = new Proxy(relayPort);
  await proxy.up();
  t.after(() => proxy.down());
  const delivered = [];
  const seqs = [];
  const reader = closeAfter(t, new RelayClient(proxy.url, { signer: secretKeySigner(generateSecretKey()), backoff: { minMs: 50, maxMs: 200 } }));
  await reader.connect();
  const sub = reader.subscribe([{ kinds: [1573], '#s': [session] }], {
    afterSeq: 0,
    pageLimit: 2,
    onEvent: (e, seq) => {
      delivered.push(e.id);
      seqs.push(seq);
    },
  });
  await until('the stored events (three pages of 2)', () => delivered.length === 5);
  const live = await publishStatuses(client, sk, session, 3);
  await until('the live events', () => delivered.length === 8);

  await proxy.down();
  await until('the client to notice the cut', () => reader.status === 'disconnected' || reader.status === 'connecting');
  const whileDown = await publishStatuses(client, sk, session, 4);
  await proxy.up();
  await until('the reconnection', () => reader.connections >= 2);
  const after = await publishStatuses(client, sk, session, 3);
  // A marker published last: once it arrives, everything before it has (delivery is in seq order).
  const [marker] = await publishStatuses(client, sk, session, 1);
  await until('the marker', () => delivered.includes(marker));

  assert.deepEqual(delivered, [...before, ...live, ...whileDown, ...after, marker]);
  assert.equal(new Set(delivered).size, delivered.length);
  for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] > seqs[i - 1], `seq ${seqs[i]} after ${seqs[i - 1]}`);
  assert.equal(sub.position, seqs.at(-1));
});

test('HTTP reads with NIP-98: /events after a seq', { skip }, async (t) => {
  const { sk, client } = await publisher(t);
  const session = uniqueSession('http');
  const ids = await publishStatuses(client, sk, session, 2);
  await assert.rejects(fetchEventsAfter(url, 0, { limit: 1 }), { code: 'Status', status: 401 });
  const signer = secretKeySigner(generateSecretKey());
  const found = [];
  let after = 0;
  for (let page = 0; page < 10000 && found.length < 2; page++) {
    const body = await fetchEventsAfter(url, after, { limit: 1000, signer });
    if (body.events.length === 0) break;
    for (const { event } of body.events) if (ids.includes(event.id)) found.push(event.id);
    after = body.next_after;
  }
  assert.deepEqual(found, ids);
  client.close();
});

test('an event verifies in the log against the signed checkpoint; tampered proofs fail', { skip }, async (t) => {
  const { sk, client } = await publisher(t);
  const session = uniqueSession('log');
  const ids = await publishStatuses(client, sk, session, 3);
  const info = await fetchRelayInfo(url);
  // Wait for a checkpoint that covers the events (the relay signs one every second).
  let result;
  await until('a checkpoint covering the event', async () => {
    result = await verifyEventInLog(url, ids[2]);
    return result.ok || result.error?.code !== 'Status';
  });
  assert.equal(result.ok, true, result.error?.message);
  assert.deepEqual(result.stages.map((s) => s.stage), ['relay key', 'checkpoint', 'proof', 'leaf', 'inclusion']);
  assert.ok(result.checkpoint.tree_size >= 3);
  assert.ok(result.inclusion.steps.length > 0);

  const flip = (hex) => (hex[0] === '0' ? '1' : '0') + hex.slice(1);
  const tampered = await verifyEventInLog(url, ids[2], { relayPubkey: info.pubkey, proofFilter: (p) => ({ ...p, audit_path: [flip(p.audit_path[0]), ...p.audit_path.slice(1)] }) });
  assert.equal(tampered.ok, false);
  assert.equal(tampered.error.code, 'RootMismatch');
  assert.equal(tampered.stages.at(-1).stage, 'inclusion');
  const wrongTime = await verifyEventInLog(url, ids[2], { proofFilter: (p) => ({ ...p, received_ms: p.received_ms + 1, leaf_hash: undefined }) });
  assert.equal(wrongTime.error.code, 'RootMismatch');
  const wrongLeaf = await verifyEventInLog(url, ids[2], { proofFilter: (p) => ({ ...p, received_ms: p.received_ms + 1 }) });
  assert.equal(wrongLeaf.error.code, 'LeafMismatch');
  const otherKey = await verifyEventInLog(url, ids[2], { relayPubkey: '79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798' });
  assert.equal(otherKey.error.code, 'WrongAuthor');

  // Consistency between the oldest and newest checkpoints.
  const { checkpoints } = await fetchCheckpoints(url, { from: 1, limit: 1000 });
  const verified = [await parseCheckpointEvent(checkpoints[0].event, info.pubkey), null];
  await publishStatuses(client, sk, session, 1);
  await until('two checkpoints of different sizes', async () => {
    const latest = await fetchCheckpoint(url);
    verified[1] = await parseCheckpointEvent(latest.event, info.pubkey);
    return verified[1].tree_size > verified[0].tree_size;
  });
  const consistent = await verifyCheckpointsConsistent(url, verified[0], verified[1]);
  assert.equal(consistent.ok, true, consistent.error?.message);
  const broken = await verifyCheckpointsConsistent(url, verified[0], verified[1], { proofFilter: (proof) => proof.map((h, i) => (i === proof.length - 1 ? flip(h) : h)) });
  assert.equal(broken.ok, false);
  client.close();
});

test('an event published while the connection is down is sent once it is back', { skip }, async (t) => {
  const proxy = new Proxy(Number(new URL(url).port));
  await proxy.up();
  t.after(() => proxy.down());
  const sk = generateSecretKey();
  const client = closeAfter(t, new RelayClient(proxy.url, { signer: secretKeySigner(sk), backoff: { minMs: 50, maxMs: 200 } }));
  await client.connect();
  await proxy.down();
  await until('the client to notice the cut', () => client.status === 'disconnected' || client.status === 'connecting');
  const event = await statusEvent(sk, { session: uniqueSession('outbox'), status: 'Working', reason: 'Reset', initial_request: ZERO_ID });
  const answer = client.publish(event);
  await proxy.up();
  assert.deepEqual(await answer, { accepted: true, message: '' });
  assert.ok(client.connections >= 2);
  const { client: reader } = await publisher(t);
  const got = [];
  let eose = false;
  reader.subscribe([{ ids: [event.id] }], { onEvent: (e) => got.push(e.id), onEose: () => (eose = true) });
  await until('the stored copy', () => eose);
  assert.deepEqual(got, [event.id]);
});
