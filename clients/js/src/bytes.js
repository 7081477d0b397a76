/** Byte helpers shared by the package: strict hex codecs, concatenation, equality, u64 checks. */

const HEX = /^[0-9a-f]*$/;

/** Lowercase hex of `bytes`. */
export function toHex(bytes) {
  let out = '';
  for (const b of bytes) out += b.toString(16).padStart(2, '0');
  return out;
}

/**
 * Bytes of a lowercase hex string; throws unless it is hex of exactly `length` bytes (when given).
 * `what` names the value in the error message.
 */
export function fromHex(text, length, what = 'value') {
  if (typeof text !== 'string') throw new TypeError(`${what} must be a hex string, got ${typeof text}`);
  if (length !== undefined && text.length !== length * 2) {
    throw new Error(`${what} must be ${length * 2} hex digits, got ${text.length} characters`);
  }
  if (text.length % 2 !== 0 || !HEX.test(text)) throw new Error(`${what} must be lowercase hex, got ${JSON.stringify(text.slice(0, 80))}`);
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** The concatenation of byte arrays. */
export function concatBytes(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Whether two byte arrays are equal. */
export function bytesEqual(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

const U64_MAX = (1n << 64n) - 1n;

/**
 * `value` (a non-negative safe integer number, a bigint, or a decimal string) as a bigint in the
 * u64 range; throws naming `what` otherwise.
 */
export function toU64(value, what = 'value') {
  let n;
  if (typeof value === 'bigint') n = value;
  else if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new Error(`${what} must be an integer (at most 2^53-1 as a number; pass a bigint for more), got ${value}`);
    n = BigInt(value);
  } else if (typeof value === 'string' && /^(0|[1-9][0-9]*)$/.test(value)) n = BigInt(value);
  else throw new TypeError(`${what} must be a non-negative integer, got ${JSON.stringify(value)}`);
  if (n < 0n || n > U64_MAX) throw new Error(`${what} must be between 0 and 2^64-1, got ${n}`);
  return n;
}

/** The UTF-8 bytes of a string. */
export function utf8(text) {
  return new TextEncoder().encode(text);
}
