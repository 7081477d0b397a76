// Starts an offline Solana node for the tutorials: surfpool's embedded runtime (npm
// @solana/surfpool-linux-x64-gnu@1.5.0) on a random 127.0.0.1 port. Prints
// `{"rpcUrl":"http://127.0.0.1:PORT"}` on stdout and, when a file name is given, writes the URL
// into that file (so `--rpc "$(cat FILE)"` works). Stops on SIGTERM / SIGINT (Ctrl-C) / SIGHUP or,
// when stdin is not a terminal, when its stdin closes; the URL file is removed on every exit.
//
// The embedded runtime pushes one event per slot (clock updates, logs) into a bounded channel
// that its owner must empty: left alone it fills after ~1024 slots (~80 s) and the node stops
// answering getSlot / getLatestBlockhash. A timer drains it every 100 ms, which also keeps the
// process alive when started from a terminal.
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
const drainTimer = setInterval(() => surfnet.drainEvents(), 100);
function removeUrlFile() {
  if (urlFile) fs.rmSync(urlFile, { force: true });
}
process.on('exit', removeUrlFile);
let stopped = false;
function stop() {
  if (stopped) return;
  stopped = true;
  clearInterval(drainTimer);
  try {
    removeUrlFile();
    surfnet.stop();
  } finally {
    process.exit(0);
  }
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.on('SIGHUP', stop);
if (!process.stdin.isTTY) {
  process.stdin.on('end', stop);
  process.stdin.on('close', stop);
  process.stdin.resume();
}
if (urlFile) fs.writeFileSync(urlFile, surfnet.rpcUrl + '\n');
process.stdout.write(JSON.stringify({ rpcUrl: surfnet.rpcUrl }) + '\n');
