// Starts an offline Solana node for the tutorials (surfpool's embedded runtime from npm on a
// random 127.0.0.1 port): the script the relay's tests use, relay/tests/support/surfpool.js, where
// its behaviour is described. Prints `{"rpcUrl":...}` and writes the URL into FILE when given;
// stops on Ctrl-C.
//
// Install once: npm install --no-save --prefix target/npm @solana/surfpool-linux-x64-gnu@1.5.0
// Run:          NODE_PATH=target/npm/node_modules node tutorials/support/surfpool.js target/surfpool-rpc-url
'use strict';

require('../../relay/tests/support/surfpool.js');
