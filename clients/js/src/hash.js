/**
 * RFC 9162 §2.1.1 hashing with SHA-256 (Web Crypto `crypto.subtle`) and the relay log's leaf
 * encoding, as in the Rust `dephy-log` crate (log/src/hash.rs). All functions are async because
 * Web Crypto is.
 */

import { concatBytes, fromHex, toU64 } from './bytes.js';

function subtle() {
  const s = globalThis.crypto && globalThis.crypto.subtle;
  if (!s) throw new Error('Web Crypto (globalThis.crypto.subtle) is not available: use a browser over https/localhost or Node.js >= 20');
  return s;
}

/** SHA-256 of `bytes` (Uint8Array), as a Uint8Array of 32 bytes. */
export async function sha256(bytes) {
  return new Uint8Array(await subtle().digest('SHA-256', bytes));
}

/** The root of the empty tree: `SHA-256("")`. */
export function emptyRoot() {
  return sha256(new Uint8Array(0));
}

/** The hash of a leaf holding `data`: `SHA-256(0x00 || data)`. */
export function leafHash(data) {
  return sha256(concatBytes(Uint8Array.of(0), data));
}

/** The hash of an interior node: `SHA-256(0x01 || left || right)`. */
export function nodeHash(left, right) {
  return sha256(concatBytes(Uint8Array.of(1), left, right));
}

/**
 * The 40-byte leaf data of a stored event: the 32-byte event id (bytes or 64 hex) followed by the
 * relay's receive time in milliseconds (number or bigint) as a big-endian u64.
 */
export function leafData(eventId, receivedMs) {
  const id = typeof eventId === 'string' ? fromHex(eventId, 32, 'event id') : eventId;
  if (id.length !== 32) throw new Error(`event id must be 32 bytes, got ${id.length}`);
  const data = new Uint8Array(40);
  data.set(id, 0);
  new DataView(data.buffer).setBigUint64(32, toU64(receivedMs, 'received_ms'), false);
  return data;
}

/** The leaf hash of a stored event: `leafHash(leafData(eventId, receivedMs))`. */
export function eventLeafHash(eventId, receivedMs) {
  return leafHash(leafData(eventId, receivedMs));
}
