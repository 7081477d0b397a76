// Starts an offline Solana node for the tutorials: surfpool's embedded runtime (npm
// @solana/surfpool-linux-x64-gnu@1.5.0) on a random 127.0.0.1 port. Prints
// `{"rpcUrl":"http://127.0.0.1:PORT"}` on stdout and, when a file name is given, writes the URL
// into that file (so `--rpc "$(cat FILE)"` works). Stops on SIGTERM / SIGINT (Ctrl-C) or when
// its stdin closes.
//
// Install once: npm install --no-save --prefix target/npm @solana/surfpool-linux-x64-gnu@1.5.0
// Run:          NODE_PATH=target/npm/node_modules node tutorials/support/surfpool.js target/surfpool-rpc-url
'use strict';

const fs = require('fs');

let Surfnet;
try {
  ({ Surfnet } = require('@solana/surfpool-linux-x64-gnu'));
} catch (e) {
  process.stderr.write(
    'surfpool.js: cannot load @solana/surfpool-linux-x64-gnu (' + e.message + '); install it with ' +
      '`npm install --no-save --prefix target/npm @solana/surfpool-linux-x64-gnu@1.5.0` ' +
      'and run with NODE_PATH=target/npm/node_modules\n',
  );
  process.exit(3);
}

const surfnet = Surfnet.startWithConfig({ offline: true });
const urlFile = process.argv[2];
let stopped = false;
function stop() {
  if (stopped) return;
  stopped = true;
  try {
    if (urlFile) fs.rmSync(urlFile, { force: true });
    surfnet.stop();
  } finally {
    process.exit(0);
  }
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
if (!process.stdin.isTTY) {
  process.stdin.on('end', stop);
  process.stdin.on('close', stop);
  process.stdin.resume();
}
if (urlFile) fs.writeFileSync(urlFile, surfnet.rpcUrl + '\n');
process.stdout.write(JSON.stringify({ rpcUrl: surfnet.rpcUrl }) + '\n');
