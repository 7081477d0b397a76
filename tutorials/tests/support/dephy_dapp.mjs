// Independent implementation of DePHY's dApp and of DePHY's controller for the interop test
// (Node.js with nostr-tools, @noble/curves ed25519, @noble/hashes keccak_256 / sha256, bs58 and
// @solana/web3.js for PDAs and getAccountInfo; no project code). Usage:
//   node --experimental-websocket dephy_dapp.mjs '<json config>'
// config: {mode: "dapp" | "dephy-controller", relay, rpc, program, session, machine (hex),
//          wallet_seed (64 hex), namespace_id, namespace (name), timeout_ms,
//          until: [status, reason] (dapp), controller_secret (64 hex, dephy-controller),
//          nonce_delta (optional: sign on-chain nonce + delta, for a stale authorization)}
//
// Both modes act as DePHY's dApp first: read the user's UserAccount (PDA ["USER", user]) from
// the chain, sign DePHY's payment authorization with its *current* nonce
// ("DePHY vending machine/<name>:\n" + base58(keccak256(extra_data || namespace_id LE ||
// nonce LE || deadline LE)), ed25519 over the UTF-8 text), build the payload with DePHY's key
// order {"namespace_id","user","nonce","recover_info"} and publish a Request (kind 1573, s and p
// tags) from a throwaway Nostr key, after subscribing. Then:
// - "dapp": prints every Status answering the Request, parsed as DePHY's settlement server
//   parses it (exact keys, enum values, payload = the payment payload), until `until`.
// - "dephy-controller": answers its own Request as DePHY's controller does (a Status signed by
//   the controller key, p = machine, payload = the Request's payload) and waits for the
//   settlement service's Request {to_status: Available, reason: LockFailed, initial_request},
//   parsed as DePHY's controller parses it; then ends the session (Available, UserBehaviour,
//   same payload) so that the settlement service also settles.
// Prints one JSON object per line; exits 1 (with the reason on stderr) on any mismatch or timeout.
import { finalizeEvent, generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import { Relay } from 'nostr-tools/relay';
import './once_closing_websocket.mjs';
import { ed25519 } from '@noble/curves/ed25519';
import { keccak_256 } from '@noble/hashes/sha3';
import { sha256 } from '@noble/hashes/sha256';
import bs58 from 'bs58';
import * as web3 from '@solana/web3.js';

const cfg = JSON.parse(process.argv[2]);
const hexToBytes = (h) => Uint8Array.from(h.match(/../g).map((b) => parseInt(b, 16)));
const fail = (why) => {
  process.stderr.write(`dephy_dapp.mjs: ${why}\n`);
  process.exit(1);
};
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const timer = setTimeout(() => fail(`timed out after ${cfg.timeout_ms} ms`), cfg.timeout_ms);

// --- DePHY's dApp: the nonce from the chain ---------------------------------------------------
const program = new web3.PublicKey(cfg.program);
const seed = hexToBytes(cfg.wallet_seed);
const userKey = ed25519.getPublicKey(seed);
const user = new web3.PublicKey(userKey);
const [userPda] = web3.PublicKey.findProgramAddressSync([Buffer.from('USER'), user.toBuffer()], program);
const connection = new web3.Connection(cfg.rpc, 'confirmed');
const info = await connection.getAccountInfo(userPda);
if (!info) fail(`no UserAccount at ${userPda.toBase58()}`);
if (!info.owner.equals(program)) fail(`UserAccount owned by ${info.owner.toBase58()}`);
const discriminator = sha256(new TextEncoder().encode('account:UserAccount')).slice(0, 8);
if (Buffer.compare(Buffer.from(info.data.subarray(0, 8)), Buffer.from(discriminator)) !== 0) fail('not a UserAccount');
const nonce = Buffer.from(info.data).readBigUInt64LE(8);

// --- DePHY's dApp: the authorization and the Request --------------------------------------------
const extraData = new Uint8Array(64);
crypto.getRandomValues(extraData);
const deadline = BigInt(Math.floor(Date.now() / 1000) + 600);
const msg = new Uint8Array(88);
msg.set(extraData, 0);
const view = new DataView(msg.buffer);
view.setBigUint64(64, BigInt(cfg.namespace_id), true);
// `nonce_delta` (tests only) signs another nonce than the on-chain one: a stale authorization.
const signedNonce = nonce + BigInt(cfg.nonce_delta ?? 0);
view.setBigUint64(72, signedNonce, true);
view.setBigInt64(80, deadline, true);
const digest = `DePHY vending machine/${cfg.namespace}:\n${bs58.encode(Buffer.from(keccak_256(msg)))}`;
const signature = ed25519.sign(new TextEncoder().encode(digest), seed);
const recoverInfo = JSON.stringify({
  signature: Array.from(signature),
  extra_data: Array.from(extraData),
  deadline: Number(deadline),
});
const payload = JSON.stringify({
  namespace_id: cfg.namespace_id,
  user: user.toBase58(),
  nonce: Number(signedNonce),
  recover_info: recoverInfo,
});
const ZERO = '0'.repeat(64);
const now = () => Math.floor(Date.now() / 1000);
const userSk = generateSecretKey();
const request = finalizeEvent(
  {
    kind: 1573,
    created_at: now(),
    tags: [
      ['s', cfg.session],
      ['p', cfg.machine],
    ],
    content: JSON.stringify({
      Request: { to_status: 'Working', reason: 'UserRequest', initial_request: ZERO, payload },
    }),
  },
  userSk,
);

const STATUSES = ['Available', 'Working'];
const REASONS = ['UserRequest', 'AdminRequest', 'UserBehaviour', 'Reset', 'LockFailed'];
function exactKeys(obj, keys, what) {
  const got = Object.keys(obj);
  if (got.length !== keys.length || !keys.every((k, i) => got[i] === k)) {
    throw new Error(`${what} has keys ${JSON.stringify(got)}, DePHY's are ${JSON.stringify(keys)}`);
  }
}
function tag(ev, name) {
  const all = ev.tags.filter((t) => t[0] === name);
  if (all.length !== 1) throw new Error(`${all.length} ${name} tags`);
  return all[0][1];
}

/** A Status as DePHY's settlement server parses it (serde, externally tagged). */
function parseStatus(ev) {
  const content = JSON.parse(ev.content);
  exactKeys(content, ['Status'], 'the content');
  const s = content.Status;
  exactKeys(s, ['status', 'reason', 'initial_request', 'payload'], 'the Status');
  if (!STATUSES.includes(s.status)) throw new Error(`status ${s.status}`);
  if (!REASONS.includes(s.reason)) throw new Error(`reason ${s.reason}`);
  if (!/^[0-9a-f]{64}$/.test(s.initial_request)) throw new Error(`initial_request ${s.initial_request}`);
  if (typeof s.payload !== 'string') throw new Error('payload is not a string');
  if (s.status === 'Available' && s.reason === 'UserRequest') {
    // The project's refusal (the machine stays Available); DePHY's server ignores it.
    return { event: 'status', id: ev.id, author: ev.pubkey, status: s.status, reason: s.reason,
      initial_request: s.initial_request, refused: JSON.parse(s.payload).refused };
  }
  // The settlement server parses the payload as the payment payload.
  const p = JSON.parse(s.payload);
  exactKeys(p, ['namespace_id', 'user', 'nonce', 'recover_info'], 'the payload');
  const ri = JSON.parse(p.recover_info);
  exactKeys(ri, ['signature', 'extra_data', 'deadline'], 'recover_info');
  if (ri.signature.length !== 64 || ri.extra_data.length !== 64) throw new Error('recover_info byte lengths');
  return {
    event: 'status',
    id: ev.id,
    author: ev.pubkey,
    s: tag(ev, 's'),
    p: tag(ev, 'p'),
    status: s.status,
    reason: s.reason,
    initial_request: s.initial_request,
    payload_is_request_payload: s.payload === payload,
    namespace_id: p.namespace_id,
    user: p.user,
    nonce: p.nonce,
  };
}

/** A Request as DePHY's controller parses it. */
function parseRequest(ev) {
  const content = JSON.parse(ev.content);
  exactKeys(content, ['Request'], 'the content');
  const r = content.Request;
  exactKeys(r, ['to_status', 'reason', 'initial_request', 'payload'], 'the Request');
  if (!STATUSES.includes(r.to_status)) throw new Error(`to_status ${r.to_status}`);
  if (!REASONS.includes(r.reason)) throw new Error(`reason ${r.reason}`);
  return {
    event: 'request',
    id: ev.id,
    author: ev.pubkey,
    s: tag(ev, 's'),
    p: tag(ev, 'p'),
    to_status: r.to_status,
    reason: r.reason,
    initial_request: r.initial_request,
  };
}

/** Publishes a Status as DePHY's controller: signed by the controller key, p = the machine,
 *  payload = the Request's payload. */
async function controllerStatus(status, reason) {
  const controllerSk = hexToBytes(cfg.controller_secret);
  const ev = finalizeEvent(
    {
      kind: 1573,
      created_at: now(),
      tags: [
        ['s', cfg.session],
        ['p', cfg.machine],
      ],
      content: JSON.stringify({ Status: { status, reason, initial_request: request.id, payload } }),
    },
    controllerSk,
  );
  await relay.publish(ev);
  out({ event: 'controller-status', id: ev.id, author: getPublicKey(controllerSk), status, reason });
}

const relay = await Relay.connect(cfg.relay);
let done;
const finished = new Promise((resolve) => (done = resolve));
let controllerStatusSent = false;
const sub = relay.subscribe([{ kinds: [1573], '#s': [cfg.session], '#p': [cfg.machine], since: now() - 5 }], {
  onevent(ev) {
    try {
      // Only the events of this session (its Request's id as initial_request) are checked.
      const content = JSON.parse(ev.content);
      const kind = Object.keys(content)[0];
      if (content[kind]?.initial_request !== request.id) return;
      if (cfg.mode === 'dapp' && kind === 'Status') {
        const st = parseStatus(ev);
        if (st.initial_request !== request.id) return;
        out(st);
        if (st.status === cfg.until[0] && st.reason === cfg.until[1]) done();
      } else if (cfg.mode === 'dephy-controller' && kind === 'Request' && ev.id !== request.id) {
        const rq = parseRequest(ev);
        if (rq.initial_request !== request.id) return;
        out(rq);
        if (rq.to_status === 'Available' && rq.reason === 'LockFailed') {
          // DePHY's controller then ends the session; this one ends it as finished
          // (UserBehaviour), so that the settlement service also tries its settle.
          controllerStatus('Available', 'UserBehaviour').then(done, (e) => fail(String(e)));
        }
      }
    } catch (e) {
      fail(`event ${ev.id} is not as DePHY parses it: ${e instanceof Error ? e.message : e}`);
    }
  },
  async oneose() {
    // Subscribed: now publish (DePHY's dApp lost answers by subscribing late).
    await relay.publish(request);
    out({ event: 'sent', id: request.id, user: user.toBase58(), nonce: Number(nonce), signed_nonce: Number(signedNonce), payload });
    if (cfg.mode === 'dephy-controller' && !controllerStatusSent) {
      controllerStatusSent = true;
      await controllerStatus('Working', 'UserRequest');
    }
  },
});
await finished;
clearTimeout(timer);
sub.close();
relay.close();
process.exit(0);
