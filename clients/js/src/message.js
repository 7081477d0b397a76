/**
 * The content of DePHY's kind-1573 events, byte for byte as the Rust SDK writes it
 * (device-sdk/src/message.rs, serde's externally tagged JSON):
 *
 *   {"Request":{"to_status":"Working","reason":"UserRequest","initial_request":"<64 hex>","payload":"<string>"}}
 *   {"Status":{"status":"Working","reason":"UserRequest","initial_request":"<64 hex>","payload":"<string>"}}
 *   {"Transaction":{"user":"<solana pubkey>","tokens":-120}}
 *
 * In JavaScript a message is a flat object with a `type`: `{ type: 'Request', to_status, reason,
 * initial_request, payload }`, `{ type: 'Status', status, reason, initial_request, payload }` or
 * `{ type: 'Transaction', user, tokens }`. A Request's `payload` string holds, for machines that
 * take payment, a payment payload `{"namespace_id":1,"user":"...","nonce":7,"recover_info":"..."}`
 * whose `recover_info` string is `{"signature":[64 bytes],"extra_data":[64 bytes],"deadline":T}`.
 */

import { DephyError } from './errors.js';
import { parseJsonLossless } from './json.js';

/** A machine's states. */
export const STATUSES = Object.freeze(['Available', 'Working']);
/** Why a request was made or a status changed. */
export const REASONS = Object.freeze(['UserRequest', 'AdminRequest', 'UserBehaviour', 'Reset', 'LockFailed']);
/** `initial_request` of a Request that starts a new session. */
export const ZERO_ID = '0'.repeat(64);

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;

function contentError(why) {
  return new DephyError('Content', `content is not a DePHY message (Request, Status or Transaction in externally tagged JSON): ${why}`);
}

function expectEnum(value, allowed, field, err) {
  if (!allowed.includes(value)) throw err(`${field} must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`);
  return value;
}

function expectId(value, field, err) {
  if (typeof value !== 'string' || !/^[0-9a-fA-F]{64}$/.test(value)) throw err(`${field} must be a 64-hex event id, got ${JSON.stringify(value)}`);
  return value.toLowerCase();
}

function expectString(value, field, err) {
  if (typeof value !== 'string') throw err(`${field} must be a string`);
  return value;
}

/**
 * An integer field: a safe-integer number or a bigint within [min, max]. Parsing returns integers
 * beyond 2^53-1 as bigints (json.js); builders accept bigints.
 */
function expectInt(value, field, err, min, max) {
  if (typeof value === 'bigint') {
    if (value < min || value > max) throw err(`${field} is out of range`);
    return value;
  }
  if (typeof value !== 'number' || !Number.isInteger(value)) throw err(`${field} must be an integer`);
  if (!Number.isSafeInteger(value)) throw err(`${field} must be an exact integer (use a bigint beyond 2^53-1)`);
  if (BigInt(value) < min || BigInt(value) > max) throw err(`${field} is out of range`);
  return value;
}

function expectObject(value, err, what) {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw err(`${what} must be a JSON object`);
  return value;
}

/** Checks a message object and returns a normalized copy (throws `DephyError('Content')`). */
export function checkMessage(msg) {
  expectObject(msg, contentError, 'message');
  switch (msg.type) {
    case 'Request':
      return {
        type: 'Request',
        to_status: expectEnum(msg.to_status, STATUSES, 'to_status', contentError),
        reason: expectEnum(msg.reason, REASONS, 'reason', contentError),
        initial_request: expectId(msg.initial_request ?? ZERO_ID, 'initial_request', contentError),
        payload: expectString(msg.payload ?? '', 'payload', contentError),
      };
    case 'Status':
      return {
        type: 'Status',
        status: expectEnum(msg.status, STATUSES, 'status', contentError),
        reason: expectEnum(msg.reason, REASONS, 'reason', contentError),
        initial_request: expectId(msg.initial_request, 'initial_request', contentError),
        payload: expectString(msg.payload ?? '', 'payload', contentError),
      };
    case 'Transaction':
      return {
        type: 'Transaction',
        user: expectString(msg.user, 'user', contentError),
        tokens: expectInt(msg.tokens, 'tokens', contentError, I64_MIN, I64_MAX),
      };
    default:
      throw contentError(`type must be Request, Status or Transaction, got ${JSON.stringify(msg.type)}`);
  }
}

/** The content JSON of a message, the same bytes as the Rust SDK's `Message::to_json`. */
export function messageToJson(msg) {
  const m = checkMessage(msg);
  switch (m.type) {
    case 'Request':
      return JSON.stringify({ Request: { to_status: m.to_status, reason: m.reason, initial_request: m.initial_request, payload: m.payload } });
    case 'Status':
      return JSON.stringify({ Status: { status: m.status, reason: m.reason, initial_request: m.initial_request, payload: m.payload } });
    default:
      return `{"Transaction":{"user":${JSON.stringify(m.user)},"tokens":${m.tokens}}}`;
  }
}

/** Parses event content into a message object; throws `DephyError('Content')` saying what is wrong. */
export function parseMessage(content) {
  if (typeof content !== 'string') throw contentError('content must be a string');
  let value;
  try {
    value = parseJsonLossless(content, { integersOnly: true });
  } catch (e) {
    throw contentError(e.message);
  }
  expectObject(value, contentError, 'content');
  const keys = Object.keys(value);
  if (keys.length !== 1) throw contentError(`expected one key (Request, Status or Transaction), got ${keys.length}`);
  const type = keys[0];
  if (!['Request', 'Status', 'Transaction'].includes(type)) throw contentError(`unknown message ${JSON.stringify(type)}`);
  const body = expectObject(value[type], contentError, type);
  const required = { Request: ['to_status', 'reason', 'initial_request', 'payload'], Status: ['status', 'reason', 'initial_request', 'payload'], Transaction: ['user', 'tokens'] }[type];
  for (const field of required) if (!(field in body)) throw contentError(`${type} has no ${field}`);
  return checkMessage({ ...body, type });
}

function payloadError(why) {
  return new DephyError('Payload', `payload is not the JSON of a payment payload (namespace_id, user, nonce, recover_info): ${why}`);
}

function recoverError(why) {
  return new DephyError('RecoverInfo', `recover_info is not JSON with signature, extra_data and deadline: ${why}`);
}

const U64_MAX = 2n ** 64n - 1n;

function byteArray(value, field) {
  if (value instanceof Uint8Array) return Array.from(value);
  if (!Array.isArray(value) || !value.every((b) => Number.isInteger(b) && b >= 0 && b <= 255)) throw recoverError(`${field} must be an array of bytes`);
  return value;
}

/** The JSON string of a recover info `{ signature, extra_data, deadline }` (byte arrays or Uint8Arrays). */
export function recoverInfoToJson(info) {
  expectObject(info, recoverError, 'recover_info');
  const signature = byteArray(info.signature, 'signature');
  const extra_data = byteArray(info.extra_data, 'extra_data');
  const deadline = expectInt(info.deadline, 'deadline', recoverError, I64_MIN, I64_MAX);
  return `{"signature":${JSON.stringify(signature)},"extra_data":${JSON.stringify(extra_data)},"deadline":${deadline}}`;
}

/**
 * Parses a `recover_info` string and checks that both byte arrays have 64 bytes. Returns
 * `{ signature: Uint8Array, extra_data: Uint8Array, deadline }`.
 */
export function parseRecoverInfo(text) {
  let value;
  try {
    value = parseJsonLossless(text, { integersOnly: true });
  } catch (e) {
    throw recoverError(e.message);
  }
  expectObject(value, recoverError, 'recover_info');
  for (const field of ['signature', 'extra_data', 'deadline']) if (!(field in value)) throw recoverError(`missing field ${field}`);
  const info = { signature: byteArray(value.signature, 'signature'), extra_data: byteArray(value.extra_data, 'extra_data'), deadline: expectInt(value.deadline, 'deadline', recoverError, I64_MIN, I64_MAX) };
  for (const field of ['signature', 'extra_data']) {
    if (info[field].length !== 64) throw new DephyError('WrongLength', `recover_info.${field} has ${info[field].length} bytes, expected 64`, { field, actual: info[field].length });
  }
  return { signature: Uint8Array.from(info.signature), extra_data: Uint8Array.from(info.extra_data), deadline: info.deadline };
}

/**
 * The JSON string of a payment payload `{ namespace_id, user, nonce, recover_info }`
 * (`recover_info` a string, or an object passed through `recoverInfoToJson`).
 */
export function payloadToJson(payload) {
  expectObject(payload, payloadError, 'payload');
  const recover_info = typeof payload.recover_info === 'string' ? payload.recover_info : recoverInfoToJson(payload.recover_info);
  const namespaceId = expectInt(payload.namespace_id, 'namespace_id', payloadError, 0n, U64_MAX);
  const user = JSON.stringify(expectString(payload.user, 'user', payloadError));
  const nonce = expectInt(payload.nonce, 'nonce', payloadError, 0n, U64_MAX);
  return `{"namespace_id":${namespaceId},"user":${user},"nonce":${nonce},"recover_info":${JSON.stringify(recover_info)}}`;
}

/** Parses a Request's payload string: `{ namespace_id, user, nonce, recover_info }` (recover_info still a string). */
export function parsePayload(text) {
  let value;
  try {
    value = parseJsonLossless(text, { integersOnly: true });
  } catch (e) {
    throw payloadError(e.message);
  }
  expectObject(value, payloadError, 'payload');
  for (const field of ['namespace_id', 'user', 'nonce', 'recover_info']) if (!(field in value)) throw payloadError(`missing field ${field}`);
  return {
    namespace_id: expectInt(value.namespace_id, 'namespace_id', payloadError, 0n, U64_MAX),
    user: expectString(value.user, 'user', payloadError),
    nonce: expectInt(value.nonce, 'nonce', payloadError, 0n, U64_MAX),
    recover_info: expectString(value.recover_info, 'recover_info', payloadError),
  };
}
