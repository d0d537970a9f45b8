/**
 * phia-admin: the operators' command line.
 *
 *   phia-admin tx show <kind> <tx_id>            a stored transaction and the entries it booked
 *   phia-admin account show <user_id> <currency>  balance and status
 *   phia-admin account block|unblock <user_id> <currency>
 *   phia-admin books check                        the double-entry invariants (exit 1 when broken)
 *   phia-admin voids list [--prefix P]            the gateways' pending voids in Redis, with their ages
 *   phia-admin voids retry [<kind> <tx_id>]       make them due now (exit 1 when that one is not queued)
 *   phia-admin sign <body|@file|-> [action|path] [--sig-only]
 *
 * The wallet is WALLET_ADDR (default 127.0.0.1:50051), over mutual TLS when WALLET_TLS_CA_FILE,
 * WALLET_TLS_CERT_FILE and WALLET_TLS_KEY_FILE are set, as for the gateway. --json prints JSON.
 * The voids are in REDIS_URL under the gateways' key prefix (--prefix, default phia:).
 * Exit codes: 0 done, 1 not found or the books do not balance, 2 usage, 3 the wallet or Redis out of
 * reach.
 */
import { parseArgs } from 'node:util';
import { fields, table } from './format.js';
import { findKey, readBody, sign, signedRequest } from './sign.js';
import { duration, listVoids, retryVoids, withRedis } from './voids.js';
import { connectWallet, UnreachableError, UsageError, WalletDecline, type WalletLink } from './wallet.js';

const USAGE = `usage:
  phia-admin tx show <kind> <tx_id> [--json]
  phia-admin account show <user_id> <currency> [--json]
  phia-admin account block|unblock <user_id> <currency>
  phia-admin books check [--json]
  phia-admin voids list [--prefix phia:] [--json]
  phia-admin voids retry [<kind> <tx_id>] [--prefix phia:] [--json]
  phia-admin sign <body|@file|-> [balance|bet|win|refund|/path] [--sig-only]`;

export interface Io {
  env: NodeJS.ProcessEnv;
  out(text: string): void;
  err(text: string): void;
}

type Command = (args: string[], json: boolean, io: Io, link: () => WalletLink, prefix: string) => Promise<number>;

function want(args: string[], count: number, what: string): string[] {
  if (args.length !== count) throw new UsageError(`expected ${what}`);
  return args;
}

const print = (io: Io, json: boolean, value: unknown, human: string) =>
  io.out(json ? JSON.stringify(value, null, 2) : human);

const COMMANDS: Record<string, Command> = {
  async 'tx show'(args, json, io, link) {
    const [kind, txId] = want(args, 2, '<kind> <tx_id>');
    const request = { kind, tx_id: txId };
    const transaction = await link().wallet('GetTransaction', request);
    const list = (await link().admin('ListEntries', request)).entries;
    print(
      io,
      json,
      { transaction, entries: list },
      `${fields(transaction)}\n\nentries:\n${table(list, ['account', 'user_id', 'currency', 'amount', 'created_at'])}`,
    );
    return 0;
  },
  async 'account show'(args, json, io, link) {
    const [userId, currency] = want(args, 2, '<user_id> <currency>');
    const account = await link().admin('GetAccount', { user_id: userId, currency });
    print(io, json, account, fields(account));
    return 0;
  },
  async 'account block'(args, json, io, link) {
    return setBlocked(args, true, json, io, link);
  },
  async 'account unblock'(args, json, io, link) {
    return setBlocked(args, false, json, io, link);
  },
  async 'books check'(args, json, io, link) {
    want(args, 0, 'no arguments');
    const books = await link().admin('CheckBooks', {});
    const unbalanced = books.unbalanced_currencies;
    const drifted = books.drifted_accounts;
    const negative = books.negative_accounts;
    const balanced = unbalanced.length + drifted.length + negative.length === 0;
    const human = balanced
      ? 'the books balance: every currency sums to zero, every balance is its entries, none is negative'
      : [
          `currencies whose entries do not sum to zero:\n${table(unbalanced, ['currency', 'sum'])}`,
          `balances that are not the sum of their entries:\n${table(drifted, ['user_id', 'currency', 'balance', 'entries'])}`,
          `negative balances:\n${table(negative, ['user_id', 'currency', 'balance'])}`,
        ].join('\n\n');
    print(
      io,
      json,
      { balanced, unbalanced_currencies: unbalanced, drifted_accounts: drifted, negative_accounts: negative },
      human,
    );
    return balanced ? 0 : 1;
  },
  async 'voids list'(args, json, io, _link, prefix) {
    want(args, 0, 'no arguments');
    const voids = await withRedis(io.env, prefix, (redis, keyPrefix) => listVoids(redis, keyPrefix));
    const rows = voids.map((v) => ({ ...v, age: duration(v.age_seconds), next_attempt: v.next_attempt_at }));
    const human = `${voids.length} pending void${voids.length === 1 ? '' : 's'}\n${table(rows, [
      'kind',
      'tx_id',
      'error_code',
      'age',
      'attempts',
      'next_attempt',
    ])}`;
    print(io, json, voids, human);
    return 0;
  },
  async 'voids retry'(args, json, io, _link, prefix) {
    if (args.length !== 0 && args.length !== 2) throw new UsageError('expected nothing or <kind> <tx_id>');
    const only = args.length === 2 ? { kind: args[0] as string, tx_id: args[1] as string } : undefined;
    const retried = await withRedis(io.env, prefix, (redis, keyPrefix) => retryVoids(redis, keyPrefix, only));
    if (only !== undefined && retried.length === 0) {
      io.err(`no pending void of ${only.kind} ${only.tx_id}`);
      return 1;
    }
    print(io, json, { retried }, `${retried.length} void${retried.length === 1 ? '' : 's'} due now`);
    return 0;
  },
  async sign(args, _json, io) {
    const sigOnly = args.includes('--sig-only');
    const rest = args.filter((arg) => arg !== '--sig-only');
    if (rest.length < 1 || rest.length > 2) throw new UsageError('expected <body|@file|-> [action|path]');
    const body = readBody(rest[0] as string);
    const key = findKey(io.env);
    if (key === undefined) {
      io.err('no key: set PHIA_SIGNING_KEYS, or run `npm start` once to create DATA_DIR/dev-signing-key');
      return 1;
    }
    if (sigOnly) io.out(sign(key.key, body));
    else {
      try {
        io.out(signedRequest(body, rest[1], io.env, key).join('\n'));
      } catch (error) {
        throw new UsageError((error as Error).message);
      }
    }
    return 0;
  },
};

async function setBlocked(
  args: string[],
  blocked: boolean,
  json: boolean,
  io: Io,
  link: () => WalletLink,
): Promise<number> {
  const [userId, currency] = want(args, 2, '<user_id> <currency>');
  await link().wallet('SetAccountStatus', { user_id: userId, currency, blocked });
  const account = await link().admin('GetAccount', { user_id: userId, currency });
  print(io, json, account, fields(account));
  return 0;
}

/** Runs one command line; returns the exit code. */
export async function run(argv: string[], io: Io): Promise<number> {
  let link: WalletLink | undefined;
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options: {
        json: { type: 'boolean' },
        'sig-only': { type: 'boolean' },
        prefix: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: true,
      strict: true,
    });
    if (values.help === true) {
      io.out(USAGE);
      return 0;
    }
    const two = positionals.slice(0, 2).join(' ');
    const name = two in COMMANDS ? two : (positionals[0] ?? '');
    const command = COMMANDS[name];
    if (command === undefined) throw new UsageError(`unknown command "${positionals.join(' ')}"`);
    const args = positionals.slice(name.split(' ').length);
    if (values['sig-only'] === true) args.push('--sig-only');
    const link_ = () => (link ??= connectWallet(io.env));
    return await command(args, values.json === true, io, link_, values.prefix ?? 'phia:');
  } catch (error) {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err(`${(error as Error).message}\n${USAGE}`);
      return 2;
    }
    if (error instanceof WalletDecline) {
      io.err(error.message);
      return 1;
    }
    if (error instanceof UnreachableError) {
      io.err(error.message);
      return 3;
    }
    throw error;
  } finally {
    link?.close();
  }
}

/** The process's command line with its console; the exit code. */
export async function main(argv: string[]): Promise<number> {
  return run(argv, { env: process.env, out: (text) => console.log(text), err: (text) => console.error(text) });
}
