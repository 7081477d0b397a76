/**
 * DePHY payment authorizations (device-sdk/src/payment/authorization.rs): the user's Solana
 * wallet (ed25519) signs the UTF-8 text
 *
 *   "DePHY vending machine/" + <namespace name> + ":\n" + base58(keccak256(extra_data || namespace_id LE || nonce LE || deadline LE))
 *
 * with `extra_data` 64 bytes, `namespace_id` and `nonce` u64 and `deadline` i64 (Unix seconds).
 * Signing goes through a wallet's `signMessage(bytes) -> Promise<Uint8Array>` (the Solana
 * wallet-adapter shape); verification is ed25519 in strict RFC 8032 mode, as the Rust SDK's
 * `verify_strict`.
 */

import { ed25519 } from '@noble/curves/ed25519.js';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { base58 } from '@scure/base';

import { concatBytes, fromHex, utf8 } from './bytes.js';
import { DephyError } from './errors.js';
import { parsePayload, parseRecoverInfo, payloadToJson, recoverInfoToJson } from './message.js';

/** The fixed start of every digest. */
export const DIGEST_PREFIX = 'DePHY vending machine/';

const U64_MAX = 2n ** 64n - 1n;
const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;

function int(value, what, min, max) {
  let n;
  if (typeof value === 'bigint') n = value;
  else if (Number.isSafeInteger(value)) n = BigInt(value);
  else throw new DephyError('BadArgument', `${what} must be an integer (a bigint beyond 2^53-1), got ${value}`);
  if (n < min || n > max) throw new DephyError('BadArgument', `${what} is out of range: ${n}`);
  return n;
}

function extraBytes(extraData) {
  const bytes = typeof extraData === 'string' ? fromHex(extraData, 64, 'extra_data') : extraData;
  if (!(bytes instanceof Uint8Array) || bytes.length !== 64) throw new DephyError('BadArgument', 'extra_data must be 64 bytes');
  return bytes;
}

/** The 88 hashed bytes: `extra_data || namespace_id LE || nonce LE || deadline LE`. */
export function authorizationMessage(extraData, namespaceId, nonce, deadline) {
  const tail = new Uint8Array(24);
  const view = new DataView(tail.buffer);
  view.setBigUint64(0, int(namespaceId, 'namespace_id', 0n, U64_MAX), true);
  view.setBigUint64(8, int(nonce, 'nonce', 0n, U64_MAX), true);
  view.setBigInt64(16, int(deadline, 'deadline', I64_MIN, I64_MAX), true);
  return concatBytes(extraBytes(extraData), tail);
}

/** The text the wallet signs (sign its UTF-8 bytes). */
export function authorizationDigest(namespace, extraData, namespaceId, nonce, deadline) {
  if (typeof namespace !== 'string') throw new DephyError('BadArgument', 'namespace must be a string');
  const hash = keccak_256(authorizationMessage(extraData, namespaceId, nonce, deadline));
  return `${DIGEST_PREFIX}${namespace}:\n${base58.encode(hash)}`;
}

/** Base58 address of a wallet public key given as bytes, base58 text, or a web3.js-style PublicKey. */
export function walletAddress(publicKey) {
  if (typeof publicKey === 'string') return publicKey;
  if (publicKey instanceof Uint8Array) return base58.encode(publicKey);
  if (publicKey && typeof publicKey.toBase58 === 'function') return publicKey.toBase58();
  if (publicKey && typeof publicKey.toBytes === 'function') return base58.encode(publicKey.toBytes());
  throw new DephyError('BadArgument', 'wallet publicKey must be bytes, base58 text or have toBase58()');
}

/**
 * A wallet over an in-memory ed25519 secret key (32-byte seed, bytes or hex): `{ publicKey, signMessage }`,
 * the shape `signAuthorization` expects from a wallet adapter. For tests, scripts and servers.
 */
export function keypairWallet(seed) {
  const sk = typeof seed === 'string' ? fromHex(seed, 32, 'ed25519 seed') : seed;
  if (!(sk instanceof Uint8Array) || sk.length !== 32) throw new DephyError('BadArgument', 'ed25519 seed must be 32 bytes');
  const publicKey = ed25519.getPublicKey(sk);
  return { publicKey, signMessage: async (bytes) => ed25519.sign(bytes, sk) };
}

/**
 * Signs an authorization with `wallet.signMessage`; returns the recover info
 * `{ signature: Uint8Array(64), extra_data: Uint8Array(64), deadline }`.
 * `params`: `{ namespace, namespaceId, nonce, deadline, extraData? }` (extraData defaults to 64 zero bytes).
 */
export async function signAuthorization(wallet, { namespace, namespaceId, nonce, deadline, extraData = new Uint8Array(64) }) {
  if (!wallet || typeof wallet.signMessage !== 'function') throw new DephyError('BadArgument', 'wallet must have signMessage(bytes) -> Promise<Uint8Array>');
  const extra = extraBytes(extraData);
  const text = authorizationDigest(namespace, extra, namespaceId, nonce, deadline);
  const signature = await wallet.signMessage(utf8(text));
  if (!(signature instanceof Uint8Array) || signature.length !== 64) throw new DephyError('BadSignature', 'wallet.signMessage did not return a 64-byte signature');
  return { signature, extra_data: extra, deadline };
}

/**
 * A request payload carrying a fresh authorization, as the object `{ namespace_id, user, nonce,
 * recover_info }` (recover_info a JSON string); pass it to `payloadToJson` for the Request's
 * `payload`. `user` is the wallet's base58 address (`wallet.publicKey`).
 */
export async function signedPayload(wallet, params) {
  const info = await signAuthorization(wallet, params);
  return { namespace_id: params.namespaceId, user: walletAddress(wallet.publicKey), nonce: params.nonce, recover_info: recoverInfoToJson(info) };
}

/** `payloadToJson(await signedPayload(wallet, params))`. */
export async function signedPayloadJson(wallet, params) {
  return payloadToJson(await signedPayload(wallet, params));
}

/**
 * Verifies a payload's authorization (payload object, or its JSON string) at time `now` (Unix
 * seconds) for the namespace `(namespaceId, namespace)`. Returns `{ user, namespace_id, nonce,
 * deadline }`; throws `DephyError` with code `WrongNamespace`, `BadUser`, `BadSignature`,
 * `Expired`, or a payload/recover-info parse code. Does not track used nonces.
 */
export function verifyAuthorization(payload, namespaceId, namespace, now) {
  const p = typeof payload === 'string' ? parsePayload(payload) : payload;
  if (BigInt(p.namespace_id) !== BigInt(namespaceId)) {
    throw new DephyError('WrongNamespace', `the payment authorization is for namespace ${p.namespace_id}, expected ${namespaceId}`, { expected: namespaceId, actual: p.namespace_id });
  }
  const info = parseRecoverInfo(p.recover_info);
  let user;
  try {
    user = base58.decode(p.user);
  } catch {
    user = null;
  }
  if (!user || user.length !== 32) throw new DephyError('BadUser', `user ${JSON.stringify(p.user)} is not a base58 Solana public key (32 bytes)`);
  try {
    ed25519.Point.fromBytes(user);
  } catch {
    throw new DephyError('BadUser', `user ${JSON.stringify(p.user)} is not a valid ed25519 public key`);
  }
  const text = authorizationDigest(namespace, info.extra_data, p.namespace_id, p.nonce, info.deadline);
  let valid;
  try {
    valid = ed25519.verify(info.signature, utf8(text), user, { zip215: false });
  } catch {
    valid = false;
  }
  if (!valid) throw new DephyError('BadSignature', `the payment signature does not verify for user ${p.user} (wrong key, namespace or tampered fields)`, { user: p.user });
  if (info.deadline < now) throw new DephyError('Expired', `the payment authorization expired at ${info.deadline} (now ${now})`, { deadline: info.deadline, now });
  return { user: p.user, namespace_id: p.namespace_id, nonce: p.nonce, deadline: info.deadline };
}
