#!/usr/bin/env node
/**
 * `npm test` runs this first. `.taprc` swaps tap's TypeScript plugin for tsx, and tap only honours a
 * changed plugin list after `tap build`: on a fresh `npm ci` every test file would fail until then.
 * The build is done once per plugin list and tap version (a stamp in node_modules/.cache), so
 * repeated test runs do not pay for it.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const stamp = join(root, 'node_modules', '.cache', 'phia-tap-build');
const tapVersion = JSON.parse(readFileSync(join(root, 'node_modules', 'tap', 'package.json'), 'utf8')).version;
const wanted = createHash('sha256')
  .update(tapVersion)
  .update(readFileSync(join(root, '.taprc')))
  .digest('hex');

if (existsSync(stamp) && readFileSync(stamp, 'utf8') === wanted) process.exit(0);
console.log('[ensure-tap-build] building tap for the plugin list in .taprc (once)');
const result = spawnSync(join(root, 'node_modules', '.bin', 'tap'), ['build'], { cwd: root, stdio: 'inherit' });
if (result.status !== 0) process.exit(result.status ?? 1);
mkdirSync(dirname(stamp), { recursive: true });
writeFileSync(stamp, wanted);
