/**
 * The alert rules of ops/alerts.yml, checked and unit-tested by Prometheus' own promtool against the
 * cases of ops/alerts.test.yml (series as the services export them, the alerts that must and must not
 * fire). Skipped, saying so, where promtool is not installed (Debian: the prometheus package).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parse as parseYaml } from 'yaml';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const PROMTOOL = process.env.PROMTOOL ?? 'promtool';

const found = spawnSync(PROMTOOL, ['--version'], { encoding: 'utf8' });
const skip =
  found.error !== undefined || found.status !== 0
    ? `promtool not found (${PROMTOOL}): install Debian's prometheus package, or set PROMTOOL, to test the alert rules`
    : false;

function promtool(...args: string[]) {
  const run = spawnSync(PROMTOOL, args, { cwd: join(ROOT, 'ops'), encoding: 'utf8', timeout: 60_000 });
  return { code: run.status, output: `${run.stdout}${run.stderr}` };
}

t.test('promtool check rules: ops/alerts.yml is valid', { skip }, async (t) => {
  const { code, output } = promtool('check', 'rules', 'alerts.yml');
  t.equal(code, 0, output);
  t.match(output, /SUCCESS/);
});

t.test('promtool test rules: every case of ops/alerts.test.yml passes', { skip }, async (t) => {
  const { code, output } = promtool('test', 'rules', 'alerts.test.yml');
  t.equal(code, 0, output);
  t.match(output, /SUCCESS/);
});

t.test('every alert has a case where it fires', async (t) => {
  type Rule = { alert?: string };
  type Case = { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] };
  const rules = parseYaml(readFileSync(join(ROOT, 'ops/alerts.yml'), 'utf8')) as { groups: { rules: Rule[] }[] };
  const cases = parseYaml(readFileSync(join(ROOT, 'ops/alerts.test.yml'), 'utf8')) as { tests: Case[] };
  const firing = new Set(
    cases.tests.flatMap((c) =>
      (c.alert_rule_test ?? []).filter((a) => (a.exp_alerts ?? []).length > 0).map((a) => a.alertname),
    ),
  );
  const alerts = rules.groups.flatMap((g) => g.rules).flatMap((rule) => (rule.alert === undefined ? [] : [rule.alert]));
  for (const wanted of [
    'PhiaVoidsPending',
    'PhiaVoidsGrowing',
    'PhiaVoidAttemptsFailing',
    'PhiaVoidUnappliable',
    'Phia5xxRate',
    'PhiaP99OverBudget',
    'PhiaWalletDown',
    'PhiaNegativeBooks',
  ]) {
    t.ok(alerts.includes(wanted), `${wanted} is a rule`);
  }
  for (const alert of alerts) t.ok(firing.has(alert), `${alert} fires in a case of ops/alerts.test.yml`);
});
