/**
 * Nostr events (NIP-01): the canonical serialization, event ids (SHA-256 via Web Crypto),
 * BIP-340 Schnorr signatures over secp256k1 (`@noble/curves`), and strict checks of an incoming
 * event's shape, id and signature.
 */

import { schnorr } from '@noble/curves/secp256k1.js';

import { fromHex, toHex, utf8 } from './bytes.js';
import { DephyError } from './errors.js';
import { sha256 } from './hash.js';

const HEX64 = /^[0-9a-f]{64}$/;
const HEX128 = /^[0-9a-f]{128}$/;

/** Throws a `DephyError('MalformedEvent')` unless `event` has NIP-01's fields and types. */
export function checkEventShape(event) {
  const bad = (why) => {
    throw new DephyError('MalformedEvent', `event is malformed: ${why}`);
  };
  if (typeof event !== 'object' || event === null || Array.isArray(event)) bad('not an object');
  if (typeof event.id !== 'string' || !HEX64.test(event.id)) bad('id must be 64 lowercase hex digits');
  if (typeof event.pubkey !== 'string' || !HEX64.test(event.pubkey)) bad('pubkey must be 64 lowercase hex digits');
  if (typeof event.sig !== 'string' || !HEX128.test(event.sig)) bad('sig must be 128 lowercase hex digits');
  if (!Number.isSafeInteger(event.created_at) || event.created_at < 0) bad('created_at must be a non-negative integer');
  if (!Number.isInteger(event.kind) || event.kind < 0 || event.kind > 65535) bad('kind must be an integer from 0 to 65535');
  if (typeof event.content !== 'string') bad('content must be a string');
  if (!Array.isArray(event.tags) || !event.tags.every((t) => Array.isArray(t) && t.every((v) => typeof v === 'string'))) {
    bad('tags must be an array of arrays of strings');
  }
}

/** NIP-01's serialization `[0,pubkey,created_at,kind,tags,content]`, whose SHA-256 is the id. */
export function serializeEvent(event) {
  return JSON.stringify([0, event.pubkey, event.created_at, event.kind, event.tags, event.content]);
}

/** The id (64 hex) of an event or event template with `pubkey`. */
export async function eventId(event) {
  return toHex(await sha256(utf8(serializeEvent(event))));
}

/** A random 32-byte secret key (Uint8Array). */
export function generateSecretKey() {
  return schnorr.utils.randomSecretKey();
}

/** The x-only public key (64 hex) of a secret key (Uint8Array or 64 hex). */
export function getPublicKey(secretKey) {
  return toHex(schnorr.getPublicKey(asSecret(secretKey)));
}

function asSecret(secretKey) {
  return typeof secretKey === 'string' ? fromHex(secretKey, 32, 'secret key') : secretKey;
}

/**
 * Signs `{ kind, tags, content, created_at? }` (created_at defaults to now) with `secretKey` and
 * returns the complete event `{ id, pubkey, created_at, kind, tags, content, sig }`.
 */
export async function finalizeEvent(template, secretKey) {
  const sk = asSecret(secretKey);
  const event = {
    pubkey: toHex(schnorr.getPublicKey(sk)),
    created_at: template.created_at ?? Math.floor(Date.now() / 1000),
    kind: template.kind,
    tags: template.tags ?? [],
    content: template.content ?? '',
  };
  const id = await eventId(event);
  const sig = toHex(schnorr.sign(fromHex(id), sk));
  return { id, ...event, sig };
}

/**
 * Checks an event's shape, that its id is the hash of its serialization, and its signature.
 * Throws `DephyError` with code `MalformedEvent`, `InvalidId` or `InvalidSignature`; returns the
 * event.
 */
export async function verifyEvent(event) {
  checkEventShape(event);
  const id = await eventId(event);
  if (id !== event.id) throw new DephyError('InvalidId', `event id ${event.id} is not the hash of its content (${id})`, { computed: id });
  let valid = false;
  try {
    valid = schnorr.verify(fromHex(event.sig), fromHex(event.id), fromHex(event.pubkey));
  } catch {
    valid = false;
  }
  if (!valid) throw new DephyError('InvalidSignature', `event ${event.id} has an invalid signature for pubkey ${event.pubkey}`);
  return event;
}

/** `verifyEvent` as a boolean. */
export async function isValidEvent(event) {
  try {
    await verifyEvent(event);
    return true;
  } catch {
    return false;
  }
}
