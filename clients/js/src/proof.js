/**
 * Verification of RFC 9162 inclusion (§2.1.3.2) and consistency (§2.1.4.2) proofs, the same
 * algorithm and error cases as the Rust `dephy-log` crate (log/src/proof.rs).
 *
 * Each verifier has two forms: `inclusionSteps` / `consistencySteps` return
 * `{ ok, error, steps, ... }` with every hashing step (for a UI that shows each step) and never
 * throw for a bad proof; `verifyInclusion` / `verifyConsistency` throw a `DephyError` when the
 * proof does not verify. Hashes are Uint8Arrays of 32 bytes or 64-digit hex strings; sizes and
 * indexes are numbers (safe integers) or bigints.
 */

import { bytesEqual, fromHex, toHex, toU64 } from './bytes.js';
import { DephyError } from './errors.js';
import { nodeHash } from './hash.js';

function asHash(h, what) {
  if (typeof h === 'string') return fromHex(h, 32, what);
  if (h instanceof Uint8Array && h.length === 32) return h;
  throw new DephyError('BadHash', `${what} must be 32 bytes or 64 hex digits`);
}

function bitLength(n) {
  return n === 0n ? 0 : n.toString(2).length;
}

function popcount(n) {
  let c = 0;
  for (const ch of n.toString(2)) if (ch === '1') c++;
  return c;
}

/** The number of hashes in `PATH(index, D[0:size])`, for `index < size`. */
export function inclusionProofLength(index, size) {
  const i = toU64(index, 'index');
  const n = toU64(size, 'size');
  if (i >= n) throw new DephyError('IndexOutOfRange', `leaf index ${i} is out of range for tree size ${n}`, { index: i, size: n });
  const inner = bitLength(i ^ (n - 1n));
  return inner + popcount(i >> BigInt(inner));
}

function isPowerOfTwo(n) {
  return n > 0n && (n & (n - 1n)) === 0n;
}

function trailingZeros(n) {
  let z = 0;
  while ((n & 1n) === 0n) {
    n >>= 1n;
    z++;
  }
  return z;
}

/** The number of hashes in `PROOF(m, D[0:n])`: 0 when `m == n`; requires `0 < m <= n`. */
export function consistencyProofLength(m, n) {
  const a = toU64(m, 'first size');
  const b = toU64(n, 'second size');
  if (a === 0n || a > b) throw new DephyError('InvalidTreeSizes', `consistency needs 0 < old size <= new size, got ${a} and ${b}`, { old: a, new: b });
  if (a === b) return 0;
  return inclusionProofLength(a - 1n, b) - trailingZeros(a) + (isPowerOfTwo(a) ? 0 : 1);
}

function failure(error, steps, extra = {}) {
  return { ok: false, error, steps, ...extra };
}

/**
 * Checks that the leaf with hash `leafHash` is leaf `index` of the tree of `size` leaves whose
 * root is `root`, given the audit path `proof` (array of hashes). Returns
 * `{ ok, error, steps, computedRoot }`: each step is
 * `{ i, sibling, side: 'left'|'right', before, after }` (hex; `side` is the sibling's side), and
 * `error` is a `DephyError` (`IndexOutOfRange`, `WrongProofLength`, `RootMismatch`) or null.
 */
export async function inclusionSteps(leafHash, index, size, proof, root) {
  const steps = [];
  let i, n, leaf, rootHash, path;
  try {
    i = toU64(index, 'leaf index');
    n = toU64(size, 'tree size');
    leaf = asHash(leafHash, 'leaf hash');
    rootHash = asHash(root, 'root hash');
    if (!Array.isArray(proof)) throw new DephyError('BadProof', 'proof must be an array of hashes');
    path = proof.map((h, k) => asHash(h, `proof[${k}]`));
  } catch (e) {
    return failure(e instanceof DephyError ? e : new DephyError('BadProof', e.message), steps);
  }
  if (i >= n) return failure(new DephyError('IndexOutOfRange', `leaf index ${i} is out of range for tree size ${n}`, { index: i, size: n }), steps);
  const wrongLength = () => {
    const expected = inclusionProofLength(i, n);
    return new DephyError('WrongProofLength', `proof has ${path.length} hashes, expected ${expected}`, { expected, actual: path.length });
  };
  let fn = i;
  let sn = n - 1n;
  let r = leaf;
  for (let k = 0; k < path.length; k++) {
    const p = path[k];
    if (sn === 0n) return failure(wrongLength(), steps);
    const before = r;
    let side;
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      side = 'left';
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = await nodeHash(r, p);
      side = 'right';
    }
    fn >>= 1n;
    sn >>= 1n;
    steps.push({ i: k, sibling: toHex(p), side, before: toHex(before), after: toHex(r) });
  }
  if (sn !== 0n) return failure(wrongLength(), steps);
  const computedRoot = toHex(r);
  if (!bytesEqual(r, rootHash)) {
    return failure(new DephyError('RootMismatch', `proof does not match the root of the tree of size ${n}`, { size: n }), steps, { computedRoot });
  }
  return { ok: true, error: null, steps, computedRoot };
}

/** `inclusionSteps`, throwing its error when the proof does not verify; returns the steps. */
export async function verifyInclusion(leafHash, index, size, proof, root) {
  const result = await inclusionSteps(leafHash, index, size, proof, root);
  if (!result.ok) throw result.error;
  return result.steps;
}

/**
 * Checks that the tree of `n` leaves with root `rootN` extends the tree of `m` leaves with root
 * `rootM`, given the consistency proof `proof`. `m == n` needs an empty proof and equal roots;
 * `m == 0` and `m > n` are rejected (`InvalidTreeSizes`). Returns
 * `{ ok, error, steps, computedOld, computedNew }`; each step is
 * `{ i, hash, updates: 'both'|'new', old, new }` (hex: the running old and new roots after it);
 * the seed (first hash, or `rootM` when `m` is a power of two) is step `{ i: -1, seed: true }`.
 */
export async function consistencySteps(m, n, proof, rootM, rootN) {
  const steps = [];
  let a, b, oldRoot, newRoot, path;
  try {
    a = toU64(m, 'first size');
    b = toU64(n, 'second size');
    oldRoot = asHash(rootM, 'first root');
    newRoot = asHash(rootN, 'second root');
    if (!Array.isArray(proof)) throw new DephyError('BadProof', 'proof must be an array of hashes');
    path = proof.map((h, k) => asHash(h, `proof[${k}]`));
  } catch (e) {
    return failure(e instanceof DephyError ? e : new DephyError('BadProof', e.message), steps);
  }
  if (a === 0n || a > b) {
    return failure(new DephyError('InvalidTreeSizes', `consistency needs 0 < old size <= new size, got ${a} and ${b}`, { old: a, new: b }), steps);
  }
  if (a === b) {
    if (path.length !== 0) return failure(new DephyError('WrongProofLength', `proof has ${path.length} hashes, expected 0`, { expected: 0, actual: path.length }), steps);
    if (!bytesEqual(oldRoot, newRoot)) return failure(new DephyError('RootMismatch', `proof does not match the root of the tree of size ${b}`, { size: b }), steps);
    return { ok: true, error: null, steps, computedOld: toHex(oldRoot), computedNew: toHex(newRoot) };
  }
  const wrongLength = () => {
    const expected = consistencyProofLength(a, b);
    return new DephyError('WrongProofLength', `proof has ${path.length} hashes, expected ${expected}`, { expected, actual: path.length });
  };
  if (path.length === 0) return failure(wrongLength(), steps);
  const [seed, rest] = isPowerOfTwo(a) ? [oldRoot, path] : [path[0], path.slice(1)];
  const offset = isPowerOfTwo(a) ? 0 : 1;
  let fn = a - 1n;
  let sn = b - 1n;
  while ((fn & 1n) === 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = seed;
  let sr = seed;
  steps.push({ i: -1, seed: true, hash: toHex(seed), fromProof: offset === 1, old: toHex(fr), new: toHex(sr) });
  for (let k = 0; k < rest.length; k++) {
    const c = rest[k];
    if (sn === 0n) return failure(wrongLength(), steps);
    let updates;
    if ((fn & 1n) === 1n || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      updates = 'both';
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      sr = await nodeHash(sr, c);
      updates = 'new';
    }
    fn >>= 1n;
    sn >>= 1n;
    steps.push({ i: k + offset, hash: toHex(c), updates, old: toHex(fr), new: toHex(sr) });
  }
  if (sn !== 0n) return failure(wrongLength(), steps);
  const computed = { computedOld: toHex(fr), computedNew: toHex(sr) };
  if (!bytesEqual(fr, oldRoot)) return failure(new DephyError('RootMismatch', `proof does not match the root of the tree of size ${a}`, { size: a }), steps, computed);
  if (!bytesEqual(sr, newRoot)) return failure(new DephyError('RootMismatch', `proof does not match the root of the tree of size ${b}`, { size: b }), steps, computed);
  return { ok: true, error: null, steps, ...computed };
}

/** `consistencySteps`, throwing its error when the proof does not verify; returns the steps. */
export async function verifyConsistency(m, n, proof, rootM, rootN) {
  const result = await consistencySteps(m, n, proof, rootM, rootN);
  if (!result.ok) throw result.error;
  return result.steps;
}
