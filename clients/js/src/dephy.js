/**
 * Signed DePHY kind-1573 events, laid out as the Rust SDK does (device-sdk/src/event.rs): tags
 * `["s", <session>]` then `["p", <machine hex pubkey>]`, content a message (message.js). Builders
 * for requests, statuses and transactions, and `parseDephyEvent`, which checks an incoming event
 * before anything acts on it.
 */

import { DephyError } from './errors.js';
import { finalizeEvent, getPublicKey, verifyEvent } from './event.js';
import { messageToJson, parseMessage, ZERO_ID } from './message.js';

/** The one Nostr kind of all DePHY device traffic. */
export const DEPHY_KIND = 1573;

/**
 * Signs a kind-1573 event carrying `message` for `machine` (64 hex) in `session`.
 * `options`: `created_at` (Unix seconds, default now), `tags` (extra tags appended after s and p).
 */
export function buildDephyEvent(secretKey, session, machine, message, options = {}) {
  if (typeof session !== 'string') throw new TypeError('session must be a string');
  if (typeof machine !== 'string' || !/^[0-9a-f]{64}$/.test(machine)) throw new Error('machine must be a 64-hex public key');
  return finalizeEvent(
    {
      kind: DEPHY_KIND,
      created_at: options.created_at,
      tags: [['s', session], ['p', machine], ...(options.tags ?? [])],
      content: messageToJson(message),
    },
    secretKey,
  );
}

/** A user's request to `machine`; `initial_request` null/undefined starts a new session (all zeros). */
export function requestEvent(secretKey, { session, machine, to_status, reason, initial_request, payload = '' }, options) {
  return buildDephyEvent(secretKey, session, machine, { type: 'Request', to_status, reason, initial_request: initial_request ?? ZERO_ID, payload }, options);
}

/** The machine's state event, signed with the machine's key and p-tagged with it. */
export function statusEvent(machineSecretKey, { session, status, reason, initial_request, payload = '' }, options) {
  return buildDephyEvent(machineSecretKey, session, getPublicKey(machineSecretKey), { type: 'Status', status, reason, initial_request, payload }, options);
}

/** A settlement: `tokens` charged to (negative) or credited to (positive) `user`. */
export function transactionEvent(secretKey, { session, machine, user, tokens }, options) {
  return buildDephyEvent(secretKey, session, machine, { type: 'Transaction', user, tokens }, options);
}

/** Whether `hex` is a 64-hex public key (the Rust SDK's `PublicKey::from_hex` checks only the hex). */
function isPublicKey(hex) {
  return /^[0-9a-fA-F]{64}$/.test(hex);
}

function singleTag(event, name) {
  const values = event.tags.filter((t) => t[0] === name && t.length > 1).map((t) => t[1]);
  if (values.length > 1) throw new DephyError('DuplicateTag', `event has ${values.length} "${name}" tags, expected one`, { count: values.length, tag: name });
  return values[0];
}

/**
 * Checks an incoming event: kind 1573, valid id and signature, exactly one `s` and one `p` tag,
 * content a DePHY message. Returns `{ id, author, created_at, session, machine, message }`; throws
 * `DephyError` (`WrongKind`, `MalformedEvent`, `InvalidId`, `InvalidSignature`, `MissingSession`,
 * `MissingMachine`, `DuplicateTag`, `BadMachine`, `WrongSession`, `Content`).
 * With `session` given, the event must belong to it.
 */
export async function parseDephyEvent(event, session) {
  if (event && event.kind !== DEPHY_KIND) throw new DephyError('WrongKind', `event kind ${event.kind} is not the DePHY kind 1573`);
  await verifyEvent(event);
  const s = singleTag(event, 's');
  if (s === undefined) throw new DephyError('MissingSession', 'event has no ["s", session] tag');
  const machine = singleTag(event, 'p');
  if (machine === undefined) throw new DephyError('MissingMachine', 'event has no ["p", machine pubkey] tag');
  if (!isPublicKey(machine)) throw new DephyError('BadMachine', `the p tag ${JSON.stringify(machine)} is not a 64-hex public key`);
  const message = parseMessage(event.content);
  if (session !== undefined && s !== session) throw new DephyError('WrongSession', `event is for session ${JSON.stringify(s)}, expected ${JSON.stringify(session)}`);
  return { id: event.id, author: event.pubkey, created_at: event.created_at, session: s, machine: machine.toLowerCase(), message };
}
