// Vectors made by the Rust SDK and log (device-sdk/tests/js_client.rs writes them to the file
// named by DEPHY_RUST_VECTORS): the JavaScript client must reproduce them byte for byte where
// they are deterministic, verify them otherwise, and reject the bad ones with the error Rust gives.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import {
  authorizationDigest,
  checkpointContent,
  checkpointSteps,
  consistencyProof,
  eventId,
  fromHex,
  inclusionProof,
  keypairWallet,
  merkleRoot,
  messageToJson,
  parseCheckpointEvent,
  parseDephyEvent,
  parseMessage,
  parsePayload,
  parseRecoverInfo,
  payloadToJson,
  signAuthorization,
  toHex,
  verifyAuthorization,
  verifyConsistency,
  verifyEvent,
  verifyInclusion,
  eventLeafHash,
  walletAddress,
} from '../src/index.js';

const file = process.env.DEPHY_RUST_VECTORS;
const skip = file ? false : 'set DEPHY_RUST_VECTORS (device-sdk/tests/js_client.rs does) to run these';
const v = file ? JSON.parse(readFileSync(file, 'utf8')) : null;

test('messages: the same bytes as the Rust SDK', { skip }, () => {
  for (const { content, message } of v.messages) {
    assert.equal(messageToJson(message), content);
    assert.deepEqual(parseMessage(content), message);
  }
});

test('payment authorizations: same digest and ed25519 signature as Rust, verifying', { skip }, async () => {
  for (const a of v.authorizations) {
    const params = { namespace: a.namespace, namespaceId: BigInt(a.namespace_id), nonce: BigInt(a.nonce), deadline: BigInt(a.deadline), extraData: fromHex(a.extra_data, 64) };
    assert.equal(authorizationDigest(a.namespace, params.extraData, params.namespaceId, params.nonce, params.deadline), a.digest);
    const wallet = keypairWallet(a.seed);
    assert.equal(walletAddress(wallet.publicKey), a.user);
    const info = await signAuthorization(wallet, params);
    assert.equal(toHex(info.signature), a.signature);
    const payload = parsePayload(a.payload);
    assert.equal(BigInt(payload.namespace_id), params.namespaceId);
    assert.equal(BigInt(payload.nonce), params.nonce);
    assert.equal(payloadToJson(payload), a.payload);
    assert.equal(BigInt(parseRecoverInfo(payload.recover_info).deadline), params.deadline);
    const now = -(2n ** 63n);
    assert.equal(verifyAuthorization(payload, params.namespaceId, a.namespace, now).user, a.user);
    assert.throws(() => verifyAuthorization({ ...payload, nonce: params.nonce ^ 1n }, params.namespaceId, a.namespace, now), { code: 'BadSignature' });
  }
});

test('DePHY events from the Rust SDK parse; bad ones fail with the Rust error', { skip }, async () => {
  for (const e of v.events) {
    assert.equal(await eventId(e.event), e.event.id);
    const parsed = await parseDephyEvent(e.event);
    assert.equal(parsed.author, e.author);
    assert.equal(parsed.machine, e.machine);
    assert.equal(parsed.session, e.session);
    assert.equal(messageToJson(parsed.message), e.content);
  }
  for (const { event, code } of v.bad_events) {
    const expected = code === 'Invalid' ? /^(InvalidId|InvalidSignature)$/ : new RegExp(`^${code}$`);
    await assert.rejects(parseDephyEvent(event), (err) => expected.test(err.code), `${code}: ${JSON.stringify(event)}`);
  }
});

test('the log: leaf hashes, roots and proofs equal Rust\'s and verify; tampering fails', { skip }, async () => {
  const leaves = [];
  for (const l of v.log.leaves) {
    const h = await eventLeafHash(l.event_id, l.received_ms);
    assert.equal(toHex(h), l.leaf_hash);
    leaves.push(h);
  }
  for (let n = 1; n <= leaves.length; n++) assert.equal(await merkleRoot(leaves.slice(0, n)), v.log.roots[n - 1]);
  for (const { index, size, proof } of v.log.inclusion) {
    assert.deepEqual(await inclusionProof(leaves.slice(0, size), index), proof);
    await verifyInclusion(leaves[index], index, size, proof, v.log.roots[size - 1]);
    if (proof.length) await assert.rejects(verifyInclusion(leaves[index], index, size, [proof[0].replace(/^./, (c) => (c === 'a' ? 'b' : 'a')), ...proof.slice(1)], v.log.roots[size - 1]), { code: 'RootMismatch' });
  }
  for (const { m, n, proof } of v.log.consistency) {
    assert.deepEqual(await consistencyProof(leaves.slice(0, n), m), proof);
    await verifyConsistency(m, n, proof, v.log.roots[m - 1], v.log.roots[n - 1]);
    if (proof.length) await assert.rejects(verifyConsistency(m, n, proof.slice(0, -1), v.log.roots[m - 1], v.log.roots[n - 1]), { code: 'WrongProofLength' });
  }
});

test('checkpoints signed by Rust verify; bad ones fail with the Rust error', { skip }, async () => {
  for (const { event, checkpoint } of v.checkpoints) {
    await verifyEvent(event);
    assert.equal(checkpointContent(checkpoint), event.content);
    assert.deepEqual(await parseCheckpointEvent(event, v.relay_pubkey), checkpoint);
  }
  for (const { event, code } of v.bad_checkpoints) {
    const r = await checkpointSteps(event, v.relay_pubkey);
    assert.equal(r.ok, false);
    assert.equal(r.error.code, code, JSON.stringify(event));
  }
});
