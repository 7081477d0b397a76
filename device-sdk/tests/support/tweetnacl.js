// Independent ed25519 for the payment-authorization vectors: reads JSON cases on stdin
// ({"seed": hex, "message": UTF-8 text, "signature": hex of the SDK's signature}), and prints
// for each, computed with tweetnacl (npm tweetnacl@1.0.3, found through NODE_PATH), the public
// key, tweetnacl's own signature of the message, and whether tweetnacl verifies the SDK's one.
'use strict';

let nacl;
try {
  nacl = require('tweetnacl');
} catch (e) {
  process.stderr.write(
    'tweetnacl.js: cannot load tweetnacl (' + e.message + '); install it with ' +
      '`npm install --no-save --prefix target/npm-tweetnacl tweetnacl@1.0.3` and put ' +
      'target/npm-tweetnacl/node_modules on NODE_PATH (scripts/test does both)\n',
  );
  process.exit(3);
}

const hex = (bytes) => Buffer.from(bytes).toString('hex');
let input = '';
process.stdin.on('data', (chunk) => (input += chunk));
process.stdin.on('end', () => {
  const cases = JSON.parse(input);
  const out = cases.map((c) => {
    const pair = nacl.sign.keyPair.fromSeed(Buffer.from(c.seed, 'hex'));
    const message = Buffer.from(c.message, 'utf8');
    return {
      public_key: hex(pair.publicKey),
      signature: hex(nacl.sign.detached(message, pair.secretKey)),
      verifies: nacl.sign.detached.verify(message, Buffer.from(c.signature, 'hex'), pair.publicKey),
    };
  });
  process.stdout.write(JSON.stringify(out) + '\n');
});
