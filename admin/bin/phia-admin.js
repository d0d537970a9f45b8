#!/usr/bin/env node
// The installed command; the CLI itself is built to dist/ (npm run build).
// grpc-js names the TLS server by the address, and Node warns on every call when it is an IP: noise
// in a command's output, not something an operator can act on.
process.noDeprecation = true;
const { main } = await import('../dist/cli.js');

process.exitCode = await main(process.argv.slice(2));
