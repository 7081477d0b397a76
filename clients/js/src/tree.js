/**
 * RFC 9162 Merkle trees over a list of leaf hashes, straight from the RFC's recursive
 * definitions (`MTH`, `PATH`, `PROOF`): for building test vectors and checking a relay's answers
 * against data one holds. O(n) hashing per call, meant for small trees.
 */

import { toHex } from './bytes.js';
import { emptyRoot, nodeHash } from './hash.js';

/** The largest power of two smaller than `n` (n > 1). */
function split(n) {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

async function mth(leaves) {
  if (leaves.length === 0) return emptyRoot();
  if (leaves.length === 1) return leaves[0];
  const k = split(leaves.length);
  return nodeHash(await mth(leaves.slice(0, k)), await mth(leaves.slice(k)));
}

/** `MTH(D[0:n])` of leaf hashes (Uint8Arrays), as 64 hex. */
export async function merkleRoot(leafHashes) {
  return toHex(await mth(leafHashes));
}

async function path(m, leaves) {
  if (leaves.length <= 1) return [];
  const k = split(leaves.length);
  if (m < k) return [...(await path(m, leaves.slice(0, k))), await mth(leaves.slice(k))];
  return [...(await path(m - k, leaves.slice(k))), await mth(leaves.slice(0, k))];
}

/** `PATH(index, D[0:n])`: the inclusion proof of leaf `index`, as 64-hex strings. */
export async function inclusionProof(leafHashes, index) {
  if (!(index >= 0 && index < leafHashes.length)) throw new Error(`leaf index ${index} is out of range for tree size ${leafHashes.length}`);
  return (await path(index, leafHashes)).map(toHex);
}

async function subproof(m, leaves, b) {
  const n = leaves.length;
  if (m === n) return b ? [] : [await mth(leaves)];
  const k = split(n);
  if (m <= k) return [...(await subproof(m, leaves.slice(0, k), b)), await mth(leaves.slice(k))];
  return [...(await subproof(m - k, leaves.slice(k), false)), await mth(leaves.slice(0, k))];
}

/** `PROOF(m, D[0:n])`: the consistency proof from the first `m` leaves to all of them, as 64-hex strings. */
export async function consistencyProof(leafHashes, m) {
  if (!(m > 0 && m <= leafHashes.length)) throw new Error(`consistency needs 0 < old size <= new size, got ${m} and ${leafHashes.length}`);
  return (await subproof(m, leafHashes, true)).map(toHex);
}
