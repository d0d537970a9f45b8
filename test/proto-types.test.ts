/**
 * The wallet's message types are generated from wallet.proto by every build (proto-loader-gen-types,
 * shipped with @grpc/proto-loader), with the settings the services load the .proto with at run time,
 * so the types say what the wire carries.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PROTO_LOADER_OPTIONS } from '@phia/proto';
import t from 'tap';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const scripts = (path: string) =>
  (JSON.parse(readFileSync(join(ROOT, path), 'utf8')) as { scripts: Record<string, string> }).scripts;

t.test('the build generates the types before compiling', async (t) => {
  t.match(scripts('package.json').build, /^npm run generate --workspace proto && tsc -b$/);
  t.match(scripts('proto/package.json').build, /^npm run generate && tsc -b$/);
  for (const dockerfile of ['wallet-service/Dockerfile', 'gateway/Dockerfile']) {
    t.match(
      readFileSync(join(ROOT, dockerfile), 'utf8'),
      /^RUN npm run generate --workspace proto && npm run build --workspace /m,
      `${dockerfile} generates them too`,
    );
  }
});

t.test('proto-loader-gen-types runs with the run-time loader options', async (t) => {
  const generate = scripts('proto/package.json').generate ?? '';
  t.match(generate, /^proto-loader-gen-types .*wallet\/v1\/wallet\.proto$/);
  t.equal(PROTO_LOADER_OPTIONS.keepCase, true);
  t.match(generate, /--keepCase\b/, 'keepCase: snake_case fields as written');
  t.match(generate, new RegExp(`--longs=${PROTO_LOADER_OPTIONS.longs.name}\\b`), 'longs');
  t.match(generate, new RegExp(`--enums=${PROTO_LOADER_OPTIONS.enums.name}\\b`), 'enums');
  t.equal(PROTO_LOADER_OPTIONS.defaults, true);
  t.match(generate, /--defaults\b/, 'defaults: every reply field present');
  t.equal(PROTO_LOADER_OPTIONS.oneofs, true);
  t.match(generate, /--oneofs\b/);
  t.match(generate, /--importFileExtension=\.js\b/, 'ESM imports');
});

t.test('the generated types carry the contract field names (section 7)', async (t) => {
  const money = readFileSync(join(ROOT, 'proto/src/generated/wallet/v1/MoneyRequest.ts'), 'utf8');
  for (const field of ['tx_id', 'user_id', 'currency', 'amount', 'round_id', 'game_session_id', 'bet_tx_id']) {
    t.match(money, new RegExp(`'${field}': \\(string\\);`), `MoneyRequest__Output.${field}`);
  }
});
