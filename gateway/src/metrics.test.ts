/** The gateway's /metrics names the running build. */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { startStack } from './test-helpers/stack.js';

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

t.test('phia_build_info names the gateway, its version and the Node.js version', async (t) => {
  const stack = await startStack({ label: 'gw_build', redis: false });
  t.teardown(() => stack.close());
  const res = await stack.app.inject({ method: 'GET', url: '/metrics' });
  t.equal(res.statusCode, 200);
  const line = `phia_build_info{service="gateway",version="${version}",node="${process.version}"} 1`;
  t.ok(res.body.split('\n').includes(line), line);
  t.match(res.body, /# TYPE phia_build_info gauge/);
});
