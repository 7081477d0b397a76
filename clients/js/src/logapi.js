/**
 * The relay's HTTP API (relay/src/logapi.rs) from a browser or Node: NIP-11, checkpoints,
 * inclusion and consistency proofs, log entries and the `/events` catch-up, and
 * `verifyEventInLog`, which proves an event is in the relay's log against the checkpoint the relay
 * *signed*, step by step (nothing the relay says is trusted: the leaf hash is recomputed from the
 * event id and receive time).
 */

import { toHex } from './bytes.js';
import { checkpointSteps } from './checkpoint.js';
import { DephyError } from './errors.js';
import { eventLeafHash } from './hash.js';
import { inclusionSteps, consistencySteps } from './proof.js';
import { nip98Header } from './signer.js';

/** The relay's HTTP base URL: `ws://h:p/` -> `http://h:p`, `wss://` -> `https://`. */
export function httpBase(relayUrl) {
  const m = /^(wss?|https?):\/\/(.+)$/i.exec(String(relayUrl).trim());
  if (!m) throw new DephyError('BadUrl', `relay URL ${JSON.stringify(relayUrl)} must start with ws://, wss://, http:// or https://`);
  const scheme = { ws: 'http', wss: 'https', http: 'http', https: 'https' }[m[1].toLowerCase()];
  return `${scheme}://${m[2].replace(/\/+$/, '')}`;
}

/**
 * GET `url` as JSON. `options`: `fetch` (default globalThis.fetch), `headers`. Throws
 * `DephyError('Http')` when unreachable, `('Status', { status, body })` for a non-200 answer
 * (the relay's `error` message included), `('BadResponse')` for non-JSON.
 */
export async function getJson(url, options = {}) {
  const doFetch = options.fetch ?? globalThis.fetch;
  let response;
  try {
    response = await doFetch(url, { headers: options.headers ?? {} });
  } catch (e) {
    throw new DephyError('Http', `cannot fetch ${url}: ${e.message}`, { url });
  }
  const text = await response.text();
  if (response.status !== 200) {
    let reason = text.slice(0, 500);
    try {
      reason = JSON.parse(text).error ?? reason;
    } catch {
      // not JSON: keep the text
    }
    throw new DephyError('Status', `${url} answered ${response.status}: ${reason}`, { url, status: response.status, body: text.slice(0, 2000) });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new DephyError('BadResponse', `${url} answered something that is not JSON: ${e.message}`, { url });
  }
}

/** The relay's NIP-11 document (its `pubkey` signs checkpoints). */
export function fetchRelayInfo(relayUrl, options = {}) {
  return getJson(`${httpBase(relayUrl)}/`, { ...options, headers: { Accept: 'application/nostr+json', ...(options.headers ?? {}) } });
}

/** `GET /log/checkpoint`: `{ tree_size, root_hash, timestamp, anchor?, event }` (not yet verified). */
export function fetchCheckpoint(relayUrl, options) {
  return getJson(`${httpBase(relayUrl)}/log/checkpoint`, options);
}

/** `GET /log/checkpoints?from&limit`: `{ checkpoints: [...] }`, oldest first (not yet verified). */
export function fetchCheckpoints(relayUrl, { from = 0, limit = 100 } = {}, options) {
  return getJson(`${httpBase(relayUrl)}/log/checkpoints?from=${from}&limit=${limit}`, options);
}

/** `GET /log/proof/inclusion`: `{ event_id, leaf_index, received_ms, tree_size, leaf_hash, root_hash, audit_path }`. */
export function fetchInclusionProof(relayUrl, eventId, treeSize, options) {
  const size = treeSize === undefined || treeSize === null ? '' : `&tree_size=${treeSize}`;
  return getJson(`${httpBase(relayUrl)}/log/proof/inclusion?id=${encodeURIComponent(eventId)}${size}`, options);
}

/** `GET /log/proof/consistency`: `{ first, second, proof }`. */
export function fetchConsistencyProof(relayUrl, first, second, options) {
  return getJson(`${httpBase(relayUrl)}/log/proof/consistency?first=${first}&second=${second}`, options);
}

/** `GET /log/entries?start&end`: `{ tree_size, entries: [{ index, seq, event_id, received_ms }] }`. */
export function fetchEntries(relayUrl, start, end, options) {
  return getJson(`${httpBase(relayUrl)}/log/entries?start=${start}&end=${end}`, options);
}

/**
 * `GET /events?after&limit`: `{ events: [{ seq, event }], next_after, truncated }`. With read auth
 * on, pass `options.signer` (NIP-07 shape) for the NIP-98 header.
 */
export async function fetchEventsAfter(relayUrl, after, { limit, signer, ...options } = {}) {
  const url = `${httpBase(relayUrl)}/events?after=${after}${limit ? `&limit=${limit}` : ''}`;
  const headers = { ...(options.headers ?? {}) };
  if (signer) headers.Authorization = await nip98Header(signer, url, 'GET');
  return getJson(url, { ...options, headers });
}

function fieldError(what) {
  return new DephyError('BadResponse', `inclusion proof answer: ${what}`);
}

/**
 * Checks an `/log/proof/inclusion` answer for `eventId` against a verified `checkpoint`
 * (`{ tree_size, root_hash }`), without fetching. Returns `{ ok, error, leafIndex, receivedMs,
 * leafHash, servedLeafHash, steps }` where `steps` are the inclusion steps (proof.js). A
 * `leaf_hash` served that differs from the recomputed one is `LeafMismatch`.
 */
export async function inclusionResponseSteps(eventId, checkpoint, proof) {
  const out = { ok: false, error: null, leafIndex: null, receivedMs: null, leafHash: null, servedLeafHash: null, steps: [] };
  try {
    if (typeof proof !== 'object' || proof === null) throw fieldError('not a JSON object');
    if (!Number.isSafeInteger(proof.leaf_index) || proof.leaf_index < 0) throw fieldError('no leaf_index');
    if (!Number.isSafeInteger(proof.received_ms) || proof.received_ms < 0) throw fieldError('no received_ms');
    if (!Array.isArray(proof.audit_path)) throw fieldError('no audit_path');
    out.leafIndex = proof.leaf_index;
    out.receivedMs = proof.received_ms;
    out.leafHash = toHex(await eventLeafHash(eventId, proof.received_ms));
  } catch (e) {
    out.error = e instanceof DephyError ? e : fieldError(e.message);
    return out;
  }
  out.servedLeafHash = typeof proof.leaf_hash === 'string' ? proof.leaf_hash : null;
  if (out.servedLeafHash !== null && out.servedLeafHash !== out.leafHash) {
    out.error = new DephyError('LeafMismatch', `the relay's leaf hash ${out.servedLeafHash} is not the hash of the event id and receive time (${out.leafHash})`);
    return out;
  }
  const r = await inclusionSteps(out.leafHash, proof.leaf_index, checkpoint.tree_size, proof.audit_path, checkpoint.root_hash);
  return { ...out, ok: r.ok, error: r.error, steps: r.steps, computedRoot: r.computedRoot };
}

/**
 * Proves that `eventId` is in the relay's log: the relay key (`options.relayPubkey`, else NIP-11's
 * `pubkey`), the latest checkpoint authenticated with it, and the inclusion proof at that tree
 * size checked against the signed root. Never throws for a failed check: returns
 * `{ ok, error, stages, checkpoint, proof, inclusion }`, `stages` being
 * `[{ stage: 'relay key'|'checkpoint'|'proof'|'leaf'|'inclusion', ok, detail, steps? }]` in order.
 * `options.proofFilter(proof) -> proof` lets a caller alter the fetched proof (the explorer's
 * "tamper" demonstration); `options.fetch` replaces globalThis.fetch.
 */
export async function verifyEventInLog(relayUrl, eventId, options = {}) {
  const stages = [];
  const result = { ok: false, error: null, stages, checkpoint: null, proof: null, inclusion: null };
  const fail = (stage, error, extra = {}) => {
    stages.push({ stage, ok: false, detail: error.message, ...extra });
    result.error = error;
    return result;
  };
  let relayPubkey = options.relayPubkey;
  try {
    if (!relayPubkey) {
      const info = await fetchRelayInfo(relayUrl, options);
      if (typeof info.pubkey !== 'string' || !/^[0-9a-f]{64}$/.test(info.pubkey)) throw new DephyError('BadResponse', 'NIP-11 document has no hex pubkey');
      relayPubkey = info.pubkey;
      stages.push({ stage: 'relay key', ok: true, detail: `relay key ${relayPubkey} from NIP-11` });
    } else {
      stages.push({ stage: 'relay key', ok: true, detail: `relay key ${relayPubkey} (given)` });
    }
  } catch (e) {
    return fail('relay key', e);
  }
  let body;
  try {
    body = options.checkpointBody ?? (await fetchCheckpoint(relayUrl, options));
  } catch (e) {
    return fail('checkpoint', e);
  }
  const cp = await checkpointSteps(body.event, relayPubkey);
  if (!cp.ok) return fail('checkpoint', cp.error, { steps: cp.steps });
  result.checkpoint = cp.checkpoint;
  stages.push({ stage: 'checkpoint', ok: true, detail: `signed checkpoint: tree size ${cp.checkpoint.tree_size}, root ${cp.checkpoint.root_hash}`, steps: cp.steps });
  let proof;
  try {
    proof = await fetchInclusionProof(relayUrl, eventId, cp.checkpoint.tree_size, options);
    if (options.proofFilter) proof = options.proofFilter(proof);
  } catch (e) {
    return fail('proof', e);
  }
  result.proof = proof;
  stages.push({ stage: 'proof', ok: true, detail: `inclusion proof for leaf ${proof.leaf_index} of ${cp.checkpoint.tree_size}: ${Array.isArray(proof.audit_path) ? proof.audit_path.length : '?'} hashes` });
  const inc = await inclusionResponseSteps(eventId, cp.checkpoint, proof);
  result.inclusion = inc;
  if (inc.leafHash === null || inc.error?.code === 'LeafMismatch' || inc.error?.code === 'BadResponse') {
    return fail('leaf', inc.error);
  }
  stages.push({ stage: 'leaf', ok: true, detail: `leaf hash SHA-256(0x00 || ${eventId} || ${proof.received_ms} ms) = ${inc.leafHash}` });
  if (!inc.ok) return fail('inclusion', inc.error, { steps: inc.steps });
  stages.push({ stage: 'inclusion', ok: true, detail: `the audit path leads to the signed root ${inc.computedRoot}`, steps: inc.steps });
  result.ok = true;
  return result;
}

/**
 * Checks that checkpoint `newer` extends `older` (both verified checkpoints) with the relay's
 * consistency proof between their sizes. Returns `consistencySteps`' result plus `proof`.
 */
export async function verifyCheckpointsConsistent(relayUrl, older, newer, options) {
  if (older.tree_size === newer.tree_size) {
    return { ...(await consistencySteps(older.tree_size, newer.tree_size, [], older.root_hash, newer.root_hash)), proof: [] };
  }
  const body = await fetchConsistencyProof(relayUrl, older.tree_size, newer.tree_size, options);
  const proof = options?.proofFilter ? options.proofFilter(body.proof) : body.proof;
  return { ...(await consistencySteps(older.tree_size, newer.tree_size, proof, older.root_hash, newer.root_hash)), proof };
}
