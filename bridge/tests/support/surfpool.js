// Starts an offline Surfnet (surfpool's embedded Solana runtime, npm package
// @solana/surfpool-linux-x64-gnu@1.5.0) on a random 127.0.0.1 port, prints
// `{"rpcUrl":"http://127.0.0.1:PORT"}` as one JSON line on stdout, and stops on SIGTERM or
// SIGINT or when its stdin closes (the test process went away). Accounts are seeded over
// JSON-RPC with the `surfnet_setAccount` cheatcode (see surfpool.rs next to this file, which
// runs this script with `node -e`).
//
// The package is found through NODE_PATH (scripts/test installs it into target/npm:
// `npm install --no-save --prefix target/npm @solana/surfpool-linux-x64-gnu@1.5.0`).
'use strict';

let Surfnet;
try {
  ({ Surfnet } = require('@solana/surfpool-linux-x64-gnu'));
} catch (e) {
  process.stderr.write(
    'surfpool.js: cannot load @solana/surfpool-linux-x64-gnu (' + e.message + '); install it with ' +
      '`npm install --no-save --prefix target/npm @solana/surfpool-linux-x64-gnu@1.5.0` ' +
      'and set NODE_PATH=target/npm/node_modules (scripts/test does both)\n',
  );
  process.exit(3);
}

// Offline: no mainnet fallback; every account a test reads is one it set.
const surfnet = Surfnet.startWithConfig({ offline: true });
// The runtime pushes one event per slot into a bounded channel its owner must empty: left
// alone it fills after ~1024 slots (~80 s) and the node stops answering RPC calls.
const drainTimer = setInterval(() => surfnet.drainEvents(), 100);
let stopped = false;
function stop() {
  if (stopped) return;
  stopped = true;
  clearInterval(drainTimer);
  try {
    surfnet.stop();
  } finally {
    process.exit(0);
  }
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.on('close', stop);
process.stdin.resume();
process.stdout.write(JSON.stringify({ rpcUrl: surfnet.rpcUrl }) + '\n');
