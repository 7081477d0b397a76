/**
 * Signed checkpoints (kind 1574): the relay's signed commitment to a tree size and root, checked
 * exactly as the Rust `dephy_log::Checkpoint::from_event` does (log/src/checkpoint.rs): kind,
 * author, id and signature, canonical JSON content
 * `{"tree_size":N,"root_hash":"<hex>","timestamp":T[,"anchor":"<sig>"]}`, `created_at` equal to
 * the timestamp, exactly one `tree_size` and one `root` tag agreeing with the content.
 *
 * A checkpoint object is `{ tree_size, root_hash, timestamp, anchor? }` with numbers and a 64-hex
 * root (sizes above 2^53-1 are rejected by this client).
 */

import { DephyError } from './errors.js';
import { finalizeEvent, verifyEvent, checkEventShape } from './event.js';
import { consistencySteps, verifyConsistency } from './proof.js';

/** The Nostr kind of checkpoint events. */
export const CHECKPOINT_KIND = 1574;

const HEX64 = /^[0-9a-f]{64}$/;

/** The canonical JSON content of a checkpoint. */
export function checkpointContent(cp) {
  const anchor = cp.anchor === undefined || cp.anchor === null ? '' : `,"anchor":${JSON.stringify(cp.anchor)}`;
  return `{"tree_size":${cp.tree_size},"root_hash":${JSON.stringify(cp.root_hash)},"timestamp":${cp.timestamp}${anchor}}`;
}

function checkCheckpoint(cp) {
  for (const field of ['tree_size', 'timestamp']) {
    if (!Number.isSafeInteger(cp[field]) || cp[field] < 0) throw new Error(`${field} must be a non-negative integer`);
  }
  if (typeof cp.root_hash !== 'string' || !/^[0-9a-fA-F]{64}$/.test(cp.root_hash)) throw new Error('root_hash must be 64 hex digits');
  if (cp.anchor !== undefined && cp.anchor !== null && typeof cp.anchor !== 'string') throw new Error('anchor must be a string');
}

/** The checkpoint as a kind-1574 event signed with `secretKey` (as the relay makes them). */
export function checkpointEvent(cp, secretKey) {
  checkCheckpoint(cp);
  return finalizeEvent(
    {
      kind: CHECKPOINT_KIND,
      created_at: cp.timestamp,
      tags: [['tree_size', String(cp.tree_size)], ['root', cp.root_hash]],
      content: checkpointContent(cp),
    },
    secretKey,
  );
}

/**
 * Checks a checkpoint event step by step. Returns `{ ok, error, checkpoint, steps }`; each step is
 * `{ check, ok, detail }` with `check` one of `kind`, `author`, `id+signature`, `content`,
 * `timestamp`, `tag tree_size`, `tag root`. Stops at the first failing step. `relayPubkey` (64 hex)
 * is optional: without it the author is not checked (the step says so).
 */
export async function checkpointSteps(event, relayPubkey) {
  const steps = [];
  const fail = (code, message, check, details) => {
    steps.push({ check, ok: false, detail: message });
    return { ok: false, error: new DephyError(code, message, details), checkpoint: null, steps };
  };
  const pass = (check, detail) => steps.push({ check, ok: true, detail });
  try {
    checkEventShape(event);
  } catch (e) {
    return fail('InvalidEvent', `checkpoint event is not authentic: ${e.message}`, 'id+signature');
  }
  if (event.kind !== CHECKPOINT_KIND) return fail('WrongKind', `event kind ${event.kind} is not the checkpoint kind ${CHECKPOINT_KIND}`, 'kind');
  pass('kind', `kind ${CHECKPOINT_KIND}`);
  if (relayPubkey !== undefined && relayPubkey !== null) {
    if (event.pubkey !== relayPubkey) return fail('WrongAuthor', "checkpoint event is not signed by the relay's key", 'author', { expected: relayPubkey, actual: event.pubkey });
    pass('author', `signed by the relay key ${relayPubkey}`);
  } else {
    pass('author', `not checked (no relay key given); author is ${event.pubkey}`);
  }
  try {
    await verifyEvent(event);
  } catch (e) {
    return fail('InvalidEvent', `checkpoint event is not authentic: ${e.message}`, 'id+signature');
  }
  pass('id+signature', `id ${event.id} and BIP-340 signature verify`);

  let parsed;
  try {
    parsed = JSON.parse(event.content);
  } catch (e) {
    return fail('MalformedContent', `checkpoint content is malformed: ${e.message}`, 'content');
  }
  try {
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not a JSON object');
    for (const field of ['tree_size', 'root_hash', 'timestamp']) if (!(field in parsed)) throw new Error(`missing field ${field}`);
    checkCheckpoint(parsed);
  } catch (e) {
    return fail('MalformedContent', `checkpoint content is malformed: ${e.message}`, 'content');
  }
  const cp = { tree_size: parsed.tree_size, root_hash: parsed.root_hash, timestamp: parsed.timestamp };
  if (parsed.anchor !== undefined) cp.anchor = parsed.anchor;
  if (checkpointContent(cp) !== event.content || !HEX64.test(cp.root_hash)) {
    return fail('NonCanonicalContent', 'checkpoint content is not in canonical form', 'content');
  }
  pass('content', `tree size ${cp.tree_size}, root ${cp.root_hash}${cp.anchor ? `, anchored by ${cp.anchor}` : ''}`);
  if (event.created_at !== cp.timestamp) {
    return fail('TimestampMismatch', `checkpoint event created_at ${event.created_at} differs from its timestamp ${cp.timestamp}`, 'timestamp', {
      created_at: event.created_at,
      timestamp: cp.timestamp,
    });
  }
  pass('timestamp', `created_at ${event.created_at} equals the timestamp`);
  for (const [name, value] of [['tree_size', String(cp.tree_size)], ['root', cp.root_hash]]) {
    const named = event.tags.filter((t) => t[0] === name);
    if (named.length !== 1 || named[0].length !== 2 || named[0][1] !== value) {
      return fail('TagMismatch', `checkpoint tag "${name}" is missing, repeated or disagrees with the content`, `tag ${name}`, { tag: name });
    }
    pass(`tag ${name}`, `["${name}","${value}"] agrees with the content`);
  }
  return { ok: true, error: null, checkpoint: cp, steps };
}

/** `checkpointSteps`, throwing its error on failure; returns the checkpoint. */
export async function parseCheckpointEvent(event, relayPubkey) {
  const result = await checkpointSteps(event, relayPubkey);
  if (!result.ok) throw result.error;
  return result.checkpoint;
}

/** Verifies that checkpoint `newer` extends `older`, given the consistency proof between their sizes. */
export function verifyCheckpointConsistency(older, newer, proof) {
  return verifyConsistency(older.tree_size, newer.tree_size, proof, older.root_hash, newer.root_hash);
}

/** `consistencySteps` between two checkpoints. */
export function checkpointConsistencySteps(older, newer, proof) {
  return consistencySteps(older.tree_size, newer.tree_size, proof, older.root_hash, newer.root_hash);
}
