// Prints vectors made by the JavaScript client (JSON on stdout) for the Rust side to verify
// (device-sdk/tests/js_client.rs): DePHY events and messages, payment authorizations signed
// through a wallet's signMessage, RFC 9162 roots and proofs, and signed checkpoints. Keys are
// fixed so that runs are reproducible (Schnorr signatures still use fresh auxiliary randomness).
import {
  ZERO_ID,
  authorizationDigest,
  checkpointEvent,
  consistencyProof,
  eventLeafHash,
  getPublicKey,
  inclusionProof,
  keypairWallet,
  merkleRoot,
  messageToJson,
  payloadToJson,
  requestEvent,
  signedPayload,
  statusEvent,
  toHex,
  transactionEvent,
} from '../src/index.js';

const fill = (n, b) => new Uint8Array(n).fill(b);
const userKey = fill(32, 0x11);
const machineKey = fill(32, 0x22);
const relayKey = fill(32, 0x33);
const machine = getPublicKey(machineKey);

const wallet = keypairWallet(fill(32, 0x44));
const extra = Uint8Array.from({ length: 64 }, (_, i) => (i * 7) & 0xff);
const authorizations = [];
for (const [namespace, namespaceId, nonce, deadline] of [
  ['DeCharge', 1, 0, 1900000000],
  ['gacha', 2, 123456789, 1767225600],
  ['dephy-ns \u00e9\u2603', 9007199254740991, 9007199254740991, -1],
]) {
  const payload = await signedPayload(wallet, { namespace, namespaceId, nonce, deadline, extraData: extra });
  authorizations.push({ namespace, namespace_id: namespaceId, nonce, deadline, digest: authorizationDigest(namespace, extra, namespaceId, nonce, deadline), payload: payloadToJson(payload) });
}

const payload = authorizations[0].payload;
const walletUser = JSON.parse(payload).user;
const request = await requestEvent(userKey, { session: 'js-session', machine, to_status: 'Working', reason: 'UserRequest', payload }, { created_at: 1700000000 });
const events = [
  request,
  await statusEvent(machineKey, { session: 'js-session', status: 'Working', reason: 'UserRequest', initial_request: request.id, payload: 'line\nbreak "quoted" \\ \u0001 \u00e9 \ud83d\ude00' }, { created_at: 1700000001 }),
  await transactionEvent(machineKey, { session: 'js-session', machine, user: walletUser, tokens: -120 }, { created_at: 1700000002 }),
  await statusEvent(machineKey, { session: 'js-session', status: 'Available', reason: 'LockFailed', initial_request: ZERO_ID }, { created_at: 1700000003, tags: [['expiration', '1900000000']] }),
];

const messages = [
  { type: 'Request', to_status: 'Available', reason: 'AdminRequest', initial_request: 'ab'.repeat(32), payload: '' },
  { type: 'Status', status: 'Working', reason: 'Reset', initial_request: ZERO_ID, payload: '{"x":[1,2]}\t\u2028' },
  { type: 'Transaction', user: 'Us3r', tokens: 9007199254740991 },
  { type: 'Transaction', user: '', tokens: -9007199254740991 },
].map((m) => ({ message: m, content: messageToJson(m) }));

const leaves = [];
for (let i = 0; i < 13; i++) {
  const eventId = toHex(Uint8Array.from({ length: 32 }, (_, k) => (i * 31 + k) & 0xff));
  const receivedMs = 1700000000000 + i * 1001;
  leaves.push({ event_id: eventId, received_ms: receivedMs, leaf_hash: toHex(await eventLeafHash(eventId, receivedMs)) });
}
const hashes = leaves.map((l) => Uint8Array.from(Buffer.from(l.leaf_hash, 'hex')));
const roots = [];
const inclusion = [];
const consistency = [];
for (let n = 1; n <= hashes.length; n++) {
  const tree = hashes.slice(0, n);
  roots.push(await merkleRoot(tree));
  for (let i = 0; i < n; i++) inclusion.push({ index: i, size: n, proof: await inclusionProof(tree, i) });
  for (let m = 1; m <= n; m++) consistency.push({ m, n, proof: await consistencyProof(tree, m) });
}

const checkpoints = [
  await checkpointEvent({ tree_size: 13, root_hash: roots[12], timestamp: 1700000100 }, relayKey),
  await checkpointEvent({ tree_size: 5, root_hash: roots[4], timestamp: 1700000050, anchor: '5VERv8NMvzbJMEkV8xnrLkEaWRtSz9CosKDYjCJjBRnbJLgp8uirBgmQpjKhoR4tjF3ZpRzrFmBV6UjKdiSZkQUW' }, relayKey),
];

process.stdout.write(JSON.stringify({ relay_pubkey: getPublicKey(relayKey), wallet: walletUser, authorizations, events, messages, log: { leaves, roots, inclusion, consistency }, checkpoints }));
