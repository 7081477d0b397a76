// DePHY's dApp code path for a payment authorization, as an independent implementation:
// @noble/curves ed25519 (the wallet's signMessage), @noble/hashes keccak_256, bs58 (all found
// through NODE_PATH: they come with the @coral-xyz/anchor@0.32.1 install in target/npm-anchor).
// Reads JSON on stdin ({"rpc": URL, "program": base58, "cases": [{"seed": hex 32 bytes,
// "namespace": name, "namespace_id": n, "nonce": n or null, "deadline": n, "extra_data": hex 64
// bytes}]}) and prints for each the user's base58 address, the nonce used and the Request
// payload string the dApp puts in its Request. As DePHY's dApp does, the nonce is the user's
// current on-chain UserAccount.nonce: the ["USER", user] PDA (derived with @solana/web3.js) is
// read with getAccountInfo over JSON-RPC and its u64 at offset 8 (after the discriminator) is
// taken, unless the case forces a nonce. The payload is built as DePHY's dApp builds it (message = extra_data || namespace_id u64 LE || nonce u64 LE || deadline i64 LE;
// digest = "DePHY vending machine/" + namespace + ":\n" + base58(keccak256(message)); the wallet
// signs the UTF-8 digest; payload keys in DePHY's order).
'use strict';

let ed25519, keccak_256, bs58, PublicKey;
try {
  ({ PublicKey } = require('@solana/web3.js'));
  ({ ed25519 } = require('@noble/curves/ed25519'));
  ({ keccak_256 } = require('@noble/hashes/sha3'));
  bs58 = require('bs58');
  bs58 = bs58.default || bs58;
} catch (e) {
  process.stderr.write(
    'dephy_dapp.js: cannot load @noble/curves, @noble/hashes or bs58 (' + e.message + '); they come with ' +
      '`npm install --no-save --prefix target/npm-anchor @coral-xyz/anchor@0.32.1` (scripts/test does it); ' +
      'put target/npm-anchor/node_modules on NODE_PATH\n',
  );
  process.exit(3);
}

const u64le = (value) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(value));
  return b;
};
const i64le = (value) => {
  const b = Buffer.alloc(8);
  b.writeBigInt64LE(BigInt(value));
  return b;
};

async function onChainNonce(rpc, program, user) {
  const [pda] = PublicKey.findProgramAddressSync([Buffer.from('USER'), user.toBuffer()], program);
  const response = await fetch(rpc, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'getAccountInfo',
      params: [pda.toBase58(), { encoding: 'base64', commitment: 'confirmed' }],
    }),
  });
  const body = await response.json();
  if (!body.result || !body.result.value) throw new Error('no UserAccount at ' + pda.toBase58());
  const data = Buffer.from(body.result.value.data[0], 'base64');
  return Number(data.readBigUInt64LE(8));
}

async function main(input) {
  const { rpc, program, cases } = JSON.parse(input);
  const programId = new PublicKey(program);
  const out = [];
  for (const c of cases) {
    const seed = Uint8Array.from(Buffer.from(c.seed, 'hex'));
    const publicKey = ed25519.getPublicKey(seed);
    const nonce = c.nonce === null ? await onChainNonce(rpc, programId, new PublicKey(publicKey)) : c.nonce;
    const extraData = Uint8Array.from(Buffer.from(c.extra_data, 'hex'));
    const message = Buffer.concat([extraData, u64le(c.namespace_id), u64le(nonce), i64le(c.deadline)]);
    const hashedMessageBase58 = bs58.encode(keccak_256(message));
    const digest = new TextEncoder().encode(`DePHY vending machine/${c.namespace}:\n${hashedMessageBase58}`);
    const signature = ed25519.sign(digest, seed);
    const payload = JSON.stringify({
      namespace_id: c.namespace_id,
      user: bs58.encode(publicKey),
      nonce,
      recover_info: JSON.stringify({
        signature: Array.from(signature),
        extra_data: Array.from(extraData),
        deadline: c.deadline,
      }),
    });
    out.push({ user: bs58.encode(publicKey), nonce, payload });
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

let input = '';
process.stdin.on('data', (chunk) => (input += chunk));
process.stdin.on('end', () =>
  main(input).catch((e) => {
    process.stderr.write('dephy_dapp.js: ' + e.stack + '\n');
    process.exit(1);
  }),
);
