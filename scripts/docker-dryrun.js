#!/usr/bin/env node
/**
 * Runs a Dockerfile's steps outside Docker, for machines without a Docker engine: every stage gets a
 * folder standing for its filesystem, COPY copies from the build context (honouring .dockerignore) or
 * from an earlier stage's folder, RUN runs with sh in the stage's WORKDIR and ENV. With --run, the
 * final stage's CMD is then started with the image's ENV and the --env values only (as in a
 * container; PATH and HOME come from the caller), its
 * HEALTHCHECK command is polled until it passes, and SIGTERM must stop it cleanly.
 *
 *   node scripts/docker-dryrun.js wallet-service/Dockerfile [--run] [--env K=V]... [--keep] [--context .]
 *
 * --env K=V is like `docker run -e K=V`: it overrides the image's ENV for the --run step.
 *
 * npm runs with a cache of its own under the work folder (empty at first, as in a fresh container).
 * What it cannot show: the base image itself (its Node and npm versions are this machine's), USER
 * permissions (it runs as the current user; it only checks that USER is not root) and networking.
 * Exit code 0 when every step (and with --run, start, health and stop) succeeded.
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';

/** Splits a Dockerfile into instructions: { keyword, args, flags, json, line }. Continuations joined. */
export function parseDockerfile(text) {
  const instructions = [];
  let buffer = '';
  let startLine = 0;
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, index) => {
    const trimmed = raw.trim();
    if (buffer === '' && (trimmed === '' || trimmed.startsWith('#'))) return;
    if (buffer !== '' && trimmed.startsWith('#')) return; // comment inside a continuation
    if (buffer === '') startLine = index + 1;
    if (trimmed.endsWith('\\')) {
      buffer += `${trimmed.slice(0, -1)} `;
      return;
    }
    buffer += trimmed;
    const match = /^(\S+)\s*(.*)$/s.exec(buffer);
    buffer = '';
    if (!match) return;
    const keyword = match[1].toUpperCase();
    let rest = match[2].trim();
    const flags = {};
    // Leading --flag=value options (COPY --from, HEALTHCHECK --interval, ...)
    for (;;) {
      const flag = /^--([a-z-]+)(?:=(\S+))?\s*/.exec(rest);
      if (!flag) break;
      flags[flag[1]] = flag[2] ?? true;
      rest = rest.slice(flag[0].length);
    }
    let json;
    if (rest.startsWith('[')) {
      try {
        json = JSON.parse(rest);
      } catch {
        json = undefined;
      }
    }
    instructions.push({ keyword, args: rest, flags, json, line: startLine });
  });
  return instructions;
}

/** Groups instructions into stages: { name, base, instructions }; ARGs before the first FROM are global. */
export function stagesOf(instructions) {
  const globalArgs = {};
  const stages = [];
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const match = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(instruction.args);
      if (!match) throw new Error(`line ${instruction.line}: cannot read FROM ${instruction.args}`);
      const base = match[1].replace(/\$\{?(\w+)\}?/g, (_, name) => globalArgs[name] ?? '');
      stages.push({ name: match[2] ?? String(stages.length), base, instructions: [], line: instruction.line });
    } else if (stages.length === 0) {
      if (instruction.keyword === 'ARG') {
        const [name, value = ''] = instruction.args.split('=');
        globalArgs[name.trim()] = value.trim();
      }
    } else {
      stages.at(-1).instructions.push(instruction);
    }
  }
  return stages;
}

/** Parses ENV in both forms: `ENV A=1 B="x y"` and `ENV A 1`. */
export function parseEnv(args) {
  const env = {};
  if (!/^\w+=/.test(args)) {
    const [name, ...value] = args.split(/\s+/);
    env[name] = value.join(' ');
    return env;
  }
  const pattern = /(\w+)=("(?:[^"\\]|\\.)*"|\S*)/g;
  for (const match of args.matchAll(pattern)) {
    env[match[1]] = match[2].startsWith('"') ? JSON.parse(match[2]) : match[2];
  }
  return env;
}

/** .dockerignore as a predicate on context-relative paths (Docker's rules: last match wins, ! re-includes). */
export function dockerignore(contextDir) {
  const file = join(contextDir, '.dockerignore');
  const rules = existsSync(file)
    ? readFileSync(file, 'utf8')
        .split(/\r?\n/)
        .map((line) => line.trim())
        .filter((line) => line !== '' && !line.startsWith('#'))
        .map((line) => {
          const negate = line.startsWith('!');
          const pattern = (negate ? line.slice(1) : line).replace(/^\/+|\/+$/g, '');
          const regex = pattern
            .split('/')
            .map((part) =>
              part === '**'
                ? '.*'
                : part
                    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
                    .replace(/\*/g, '[^/]*')
                    .replace(/\?/g, '[^/]'),
            )
            .join('/')
            .replace(/\.\*\//g, '(?:.*/)?');
          return { negate, regex: new RegExp(`^${regex}$`) };
        })
    : [];
  return (path) => {
    const parts = path.split('/');
    let excluded = false;
    for (const rule of rules) {
      // A pattern matching a parent folder excludes everything under it.
      for (let i = 1; i <= parts.length; i++) {
        if (rule.regex.test(parts.slice(0, i).join('/'))) {
          excluded = !rule.negate;
          break;
        }
      }
    }
    return excluded;
  };
}

function copyInto(source, target, filter) {
  const stats = statSync(source);
  if (stats.isDirectory()) {
    mkdirSync(target, { recursive: true });
    for (const entry of readdirSync(source)) {
      if (filter && filter(join(source, entry))) continue;
      copyInto(join(source, entry), join(target, entry), filter);
    }
  } else {
    mkdirSync(dirname(target), { recursive: true });
    cpSync(source, target);
  }
}

/**
 * Emulates every stage. Returns { final, stageDirs, log } with final = { dir, workdir, env, user,
 * cmd, healthcheck, expose }. Throws on the first failing step.
 */
export function build(dockerfile, { contextDir, workRoot, say = () => {} }) {
  const stages = stagesOf(parseDockerfile(readFileSync(dockerfile, 'utf8')));
  if (stages.length === 0) throw new Error('no FROM');
  const ignored = dockerignore(contextDir);
  const stageDirs = {};
  let state;
  for (const stage of stages) {
    const root = join(workRoot, stage.name);
    mkdirSync(root, { recursive: true });
    stageDirs[stage.name] = root;
    state = { name: stage.name, base: stage.base, dir: root, workdir: '/', env: {}, user: undefined, expose: [] };
    say(`FROM ${stage.base} AS ${stage.name}  (emulated in ${root})`);
    const inRoot = (path) => join(root, path.startsWith('/') ? path : join(state.workdir, path));
    for (const instruction of stage.instructions) {
      const { keyword, args, flags, json } = instruction;
      const where = `${basename(dirname(dockerfile))}/${basename(dockerfile)}:${instruction.line}`;
      switch (keyword) {
        case 'WORKDIR':
          state.workdir = args.startsWith('/') ? args : join(state.workdir, args);
          mkdirSync(inRoot(state.workdir), { recursive: true });
          break;
        case 'ENV':
          Object.assign(state.env, parseEnv(args));
          break;
        case 'ARG':
        case 'LABEL':
        case 'STOPSIGNAL':
          break;
        case 'EXPOSE':
          state.expose.push(...args.split(/\s+/));
          break;
        case 'USER':
          state.user = args;
          break;
        case 'COPY': {
          const parts = json ?? args.split(/\s+/);
          const dest = parts.pop();
          const destPath = inRoot(dest);
          for (const src of parts) {
            let source;
            let filter;
            if (flags.from) {
              const from = stageDirs[flags.from];
              if (!from) throw new Error(`${where}: COPY --from=${flags.from}: no such earlier stage`);
              source = join(from, src);
            } else {
              const rel = src.replace(/^\.?\/*/, '').replace(/\/+$/, '');
              if (rel === '' || ignored(rel)) throw new Error(`${where}: COPY ${src}: excluded by .dockerignore`);
              source = join(contextDir, rel);
              filter = (path) => ignored(relative(contextDir, path).split(sep).join('/'));
            }
            if (!existsSync(source)) throw new Error(`${where}: COPY ${src}: not found (${source})`);
            const isDir = statSync(source).isDirectory();
            const target = isDir || !dest.endsWith('/') ? destPath : join(destPath, basename(source));
            copyInto(source, target, filter);
          }
          say(`  COPY ${flags.from ? `--from=${flags.from} ` : ''}${args.replace(/^--\S+\s+/, '')}`);
          break;
        }
        case 'RUN': {
          const command = json ? json : ['sh', '-c', args];
          say(`  RUN ${json ? JSON.stringify(json) : args}`);
          const started = Date.now();
          const result = spawnSync(command[0], command.slice(1), {
            cwd: inRoot(state.workdir),
            // npm gets a cache of its own, as in a fresh container (and `npm cache clean` stays in here)
            env: { ...process.env, npm_config_cache: join(workRoot, 'npm-cache'), ...state.env },
            stdio: ['ignore', 'pipe', 'pipe'],
            encoding: 'utf8',
            maxBuffer: 64 * 1024 * 1024,
          });
          if (result.status !== 0) {
            throw new Error(
              `${where}: RUN failed (exit ${result.status}): ${args}\n${(result.stdout + result.stderr).slice(-4000)}`,
            );
          }
          say(`    ok in ${((Date.now() - started) / 1000).toFixed(1)} s`);
          break;
        }
        case 'CMD':
          state.cmd = json ?? ['sh', '-c', args];
          break;
        case 'ENTRYPOINT':
          state.entrypoint = json ?? ['sh', '-c', args];
          break;
        case 'HEALTHCHECK': {
          const match = /^CMD\s+(.*)$/is.exec(args);
          if (!match) throw new Error(`${where}: HEALTHCHECK without CMD`);
          const body = match[1].trim();
          state.healthcheck = { flags, cmd: body.startsWith('[') ? JSON.parse(body) : ['sh', '-c', body] };
          break;
        }
        default:
          throw new Error(`${where}: instruction ${keyword} is not emulated`);
      }
    }
  }
  return { final: state, stageDirs };
}

/** Starts the final stage's CMD, polls its HEALTHCHECK, then stops it with SIGTERM. */
export async function runFinal(final, { extraEnv = {}, timeoutMs = 60_000, say = () => {} }) {
  if (!final.cmd) throw new Error('no CMD');
  const cwd = join(final.dir, final.workdir);
  // As in a container: the image's ENV and the -e values only (plus PATH to find node, HOME).
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, ...final.env, ...extraEnv };
  const [command, ...args] = [...(final.entrypoint ?? []), ...final.cmd];
  say(`CMD ${JSON.stringify(final.cmd)} in ${cwd}`);
  const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  const exited = new Promise((done) => child.once('exit', (code, signal) => done({ code, signal })));
  let exit;
  void exited.then((value) => (exit = value));
  try {
    if (!final.healthcheck) throw new Error('no HEALTHCHECK');
    const deadline = Date.now() + timeoutMs;
    let healthy = false;
    let last = '';
    while (!healthy && Date.now() < deadline && !exit) {
      await sleep(500);
      const [hc, ...hcArgs] = final.healthcheck.cmd;
      const probe = spawnSync(hc, hcArgs, { cwd, env, encoding: 'utf8', timeout: 10_000 });
      healthy = probe.status === 0;
      last = (probe.stderr || probe.stdout || '').trim();
    }
    if (!healthy) {
      throw new Error(
        `HEALTHCHECK never passed (${exit ? `process exited ${JSON.stringify(exit)}` : `last: ${last}`})\n` +
          output.slice(-4000),
      );
    }
    say(`HEALTHCHECK ${JSON.stringify(final.healthcheck.cmd)}: healthy`);
    child.kill('SIGTERM');
    const stopped = await Promise.race([exited, sleep(15_000).then(() => undefined)]);
    if (!stopped) throw new Error('did not stop within 15 s of SIGTERM');
    if (stopped.code !== 0) throw new Error(`exited ${JSON.stringify(stopped)} after SIGTERM\n${output.slice(-4000)}`);
    say('SIGTERM: stopped with code 0');
    return { output };
  } finally {
    if (!exit) child.kill('SIGKILL');
  }
}

async function main(argv) {
  const runIt = argv.includes('--run');
  const keep = argv.includes('--keep');
  const contextIndex = argv.indexOf('--context');
  const contextDir = resolve(contextIndex >= 0 ? argv[contextIndex + 1] : '.');
  const extraEnv = {};
  argv.forEach((arg, i) => {
    if (argv[i - 1] === '--env') Object.assign(extraEnv, parseEnv(arg));
  });
  const dockerfile = argv.find((arg, i) => !arg.startsWith('--') && !['--context', '--env'].includes(argv[i - 1]));
  if (!dockerfile) {
    console.error('usage: node scripts/docker-dryrun.js <Dockerfile> [--run] [--env K=V]... [--keep] [--context DIR]');
    return 2;
  }
  const workRoot = mkdtempSync(join(tmpdir(), 'docker-dryrun-'));
  const say = (line) => console.log(`[dryrun] ${line}`);
  try {
    const { final } = build(resolve(dockerfile), { contextDir, workRoot, say });
    if (!final.user || final.user === 'root' || final.user === '0') throw new Error('final stage runs as root');
    say(`final stage ${final.name}: USER ${final.user}, EXPOSE ${final.expose.join(' ') || '-'}`);
    if (runIt) await runFinal(final, { extraEnv, say });
    say('all steps passed');
    return 0;
  } catch (error) {
    console.error(`[dryrun] FAILED: ${error instanceof Error ? error.message : error}`);
    return 1;
  } finally {
    if (keep) say(`kept ${workRoot}`);
    else rmSync(workRoot, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
