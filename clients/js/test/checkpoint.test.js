// Signed checkpoints: layout, round trip, and every rejection the Rust Checkpoint::from_event has.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { checkpointEvent, checkpointSteps, finalizeEvent, generateSecretKey, getPublicKey, parseCheckpointEvent } from '../src/index.js';

const root = '5f'.repeat(32);
const cp = { tree_size: 42, root_hash: root, timestamp: 1700000000 };

test('layout and round trip, with and without an anchor', async () => {
  const sk = generateSecretKey();
  const event = await checkpointEvent(cp, sk);
  assert.equal(event.kind, 1574);
  assert.equal(event.created_at, 1700000000);
  assert.equal(event.content, `{"tree_size":42,"root_hash":"${root}","timestamp":1700000000}`);
  assert.deepEqual(event.tags, [['tree_size', '42'], ['root', root]]);
  assert.deepEqual(await parseCheckpointEvent(event, getPublicKey(sk)), cp);
  const anchored = { ...cp, anchor: 'placeholder-transaction-signature' };
  const e2 = await checkpointEvent(anchored, sk);
  assert.ok(e2.content.endsWith(',"anchor":"placeholder-transaction-signature"}'));
  assert.deepEqual(await parseCheckpointEvent(e2), anchored);
  const { steps } = await checkpointSteps(e2, getPublicKey(sk));
  assert.deepEqual(steps.map((s) => s.check), ['kind', 'author', 'id+signature', 'content', 'timestamp', 'tag tree_size', 'tag root']);
  assert.ok(steps.every((s) => s.ok));
});

test('tampered, misattributed and inconsistent checkpoints are rejected', async () => {
  const sk = generateSecretKey();
  const pk = getPublicKey(sk);
  const event = await checkpointEvent(cp, sk);
  const code = async (e, key = pk) => (await checkpointSteps(e, key)).error?.code;

  assert.equal(await code({ ...event, content: event.content.replace('42', '43') }), 'InvalidEvent');
  assert.equal(await code(event, getPublicKey(generateSecretKey())), 'WrongAuthor');
  const sign = (kind, content, created_at, tags) => finalizeEvent({ kind, content, created_at, tags }, sk);
  const good = [['tree_size', '42'], ['root', root]];
  assert.equal(await code(await sign(1, event.content, cp.timestamp, good)), 'WrongKind');
  assert.equal(await code(await sign(1574, 'not json', cp.timestamp, good)), 'MalformedContent');
  assert.equal(await code(await sign(1574, event.content.replaceAll(',', ', '), cp.timestamp, good)), 'NonCanonicalContent');
  assert.equal(await code(await sign(1574, event.content.replace(root, root.toUpperCase()), cp.timestamp, good)), 'NonCanonicalContent');
  assert.equal(await code(await sign(1574, event.content.replace('}', ',"anchor":null}'), cp.timestamp, good)), 'NonCanonicalContent');
  assert.equal(await code(await sign(1574, event.content, cp.timestamp + 1, good)), 'TimestampMismatch');
  assert.equal(await code(await sign(1574, event.content, cp.timestamp, [['tree_size', '41'], ['root', root]])), 'TagMismatch');
  assert.equal(await code(await sign(1574, event.content, cp.timestamp, [['tree_size', '42']])), 'TagMismatch');
  assert.equal(await code(await sign(1574, event.content, cp.timestamp, [...good, ['root', '00'.repeat(32)]])), 'TagMismatch');
  const failed = await checkpointSteps(await sign(1574, event.content, cp.timestamp + 1, good), pk);
  assert.equal(failed.steps.at(-1).check, 'timestamp');
  assert.equal(failed.steps.at(-1).ok, false);
  await assert.rejects(parseCheckpointEvent({ kind: 1574 }), { code: 'InvalidEvent' });
});
