// RFC 9162 hashing and proof verification: known vectors, every proof of small trees built from
// the RFC's definitions, and tampered or mis-sized proofs that must fail with the right error.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  consistencyProof,
  consistencyProofLength,
  consistencySteps,
  emptyRoot,
  eventLeafHash,
  inclusionProof,
  inclusionProofLength,
  inclusionSteps,
  leafData,
  leafHash,
  merkleRoot,
  toHex,
  verifyConsistency,
  verifyInclusion,
} from '../src/index.js';

const enc = (s) => new TextEncoder().encode(s);

test('RFC 6962 hash vectors', async () => {
  assert.equal(toHex(await emptyRoot()), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  assert.equal(toHex(await leafHash(enc(''))), '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d');
  assert.equal(toHex(await leafHash(enc('L123456'))), '395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56');
});

test('leaf encoding is the event id then the receive time as a big-endian u64', async () => {
  const id = 'ab'.repeat(32);
  const data = leafData(id, 0x0102030405060708n);
  assert.equal(toHex(data), 'ab'.repeat(32) + '0102030405060708');
  assert.equal(toHex(await eventLeafHash(id, 0x0102030405060708n)), toHex(await leafHash(data)));
  assert.throws(() => leafData('ab', 1), /64 hex digits/);
  assert.throws(() => leafData(id, -1), /between 0 and 2\^64-1/);
});

async function leaves(n) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(await leafHash(Uint8Array.of(i)));
  return out;
}

test('every inclusion and consistency proof of trees up to 24 leaves verifies, and tampering fails', async () => {
  const all = await leaves(24);
  for (let n = 1; n <= all.length; n++) {
    const tree = all.slice(0, n);
    const root = await merkleRoot(tree);
    for (let i = 0; i < n; i++) {
      const proof = await inclusionProof(tree, i);
      assert.equal(proof.length, inclusionProofLength(i, n));
      const steps = await verifyInclusion(tree[i], i, n, proof, root);
      assert.equal(steps.length, proof.length);
      if (proof.length > 0) {
        assert.equal(steps.at(-1).after, root);
        const tampered = [...proof];
        tampered[0] = tampered[0].replace(/^./, (c) => (c === '0' ? '1' : '0'));
        const r = await inclusionSteps(tree[i], i, n, tampered, root);
        assert.equal(r.ok, false);
        assert.equal(r.error.code, 'RootMismatch');
        assert.equal((await inclusionSteps(tree[i], i, n, proof.slice(1), root)).error.code, 'WrongProofLength');
      }
      assert.equal((await inclusionSteps(tree[i], i, n, [...proof, root], root)).error.code, 'WrongProofLength');
      if (n > 1) assert.equal((await inclusionSteps(tree[(i + 1) % n], i, n, proof, root)).error.code, 'RootMismatch');
    }
    for (let m = 1; m <= n; m++) {
      const proof = await consistencyProof(tree, m);
      assert.equal(proof.length, consistencyProofLength(m, n));
      const oldRoot = await merkleRoot(tree.slice(0, m));
      await verifyConsistency(m, n, proof, oldRoot, root);
      if (proof.length > 0) {
        const tampered = [...proof];
        tampered[tampered.length - 1] = 'ff'.repeat(32);
        const r = await consistencySteps(m, n, tampered, oldRoot, root);
        assert.equal(r.ok, false);
        assert.match(r.error.code, /RootMismatch/);
      }
      if (m < n) assert.equal((await consistencySteps(m, n, proof, root, root)).ok, false);
    }
  }
});

test('out-of-range sizes and malformed hashes get clear errors', async () => {
  const h = 'aa'.repeat(32);
  assert.equal((await inclusionSteps(h, 0, 0, [], h)).error.code, 'IndexOutOfRange');
  assert.equal((await inclusionSteps(h, 5, 5, [], h)).error.code, 'IndexOutOfRange');
  assert.equal((await consistencySteps(0, 5, [], h, h)).error.code, 'InvalidTreeSizes');
  assert.equal((await consistencySteps(6, 5, [], h, h)).error.code, 'InvalidTreeSizes');
  assert.equal((await consistencySteps(5, 5, [], h, h)).ok, true);
  assert.equal((await consistencySteps(5, 5, [h], h, h)).error.code, 'WrongProofLength');
  assert.equal((await inclusionSteps('zz', 0, 1, [], h)).error.code, 'BadProof');
  assert.equal((await inclusionSteps(h, 0, 2, ['00'], h)).error.code, 'BadProof');
  await assert.rejects(verifyInclusion(h, 0, 1, [], 'bb'.repeat(32)), { code: 'RootMismatch' });
  // Sizes beyond 2^53 work as bigints: the length formula matches the Rust one.
  assert.equal(inclusionProofLength(0n, 2n ** 64n - 1n), 64);
  assert.equal(inclusionProofLength(2n ** 64n - 2n, 2n ** 64n - 1n), 63);
});

test('RFC 9162 §2.1.5 consistency examples have the RFC lengths', () => {
  assert.equal(consistencyProofLength(3, 7), 4);
  assert.equal(consistencyProofLength(4, 7), 1);
  assert.equal(consistencyProofLength(6, 7), 3);
  assert.equal(consistencyProofLength(5, 5), 0);
});
