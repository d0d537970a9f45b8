/**
 * The faults, each injected and healed by one call: SIGKILL and restart of the wallet or of a
 * gateway, Redis restarted (it keeps nothing: no RDB, no AOF) or paused, the chaos wallet's
 * PostgreSQL connections terminated, and a wallet slowed past the gateways' deadline by player rows
 * held locked from another connection.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Rng } from './random.js';
import type { ChaosStack } from './stack.js';

export const FAULT_TYPES = [
  'wallet-kill',
  'gateway-kill',
  'redis-restart',
  'redis-pause',
  'pg-kill',
  'wallet-slow',
] as const;
export type FaultType = (typeof FAULT_TYPES)[number];

export interface FaultRecord {
  type: FaultType;
  detail: string;
  /** Seconds since the load started. */
  at: number;
  ms: number;
}

export async function injectFault(
  type: FaultType,
  stack: ChaosStack,
  rng: Rng,
  players: readonly string[],
): Promise<string> {
  switch (type) {
    case 'wallet-kill': {
      const downMs = rng.int(300, 2500);
      await stack.wallet.kill('SIGKILL');
      await sleep(downMs);
      await stack.startWallet();
      return `down ${downMs} ms`;
    }
    case 'gateway-kill': {
      const index = rng.int(0, stack.gateways.length - 1);
      const downMs = rng.int(200, 2000);
      stack.gatewayUp[index] = false;
      await stack.gateways[index]?.kill('SIGKILL');
      await sleep(downMs);
      await stack.startGateway(index);
      return `gateway-${index} down ${downMs} ms`;
    }
    case 'redis-restart': {
      const downMs = rng.int(200, 2000);
      await stack.redis.kill('SIGKILL');
      await sleep(downMs);
      await stack.startRedis();
      return `down ${downMs} ms${stack.redisPersistence === 'aof' ? ', data kept (AOF)' : ', data lost'}`;
    }
    case 'redis-pause': {
      const pauseMs = rng.int(500, 3000);
      if (rng.chance(0.5)) {
        stack.redis.pause();
        await sleep(pauseMs);
        stack.redis.resume();
        return `SIGSTOP ${pauseMs} ms`;
      }
      await stack.redisCli(['CLIENT', 'PAUSE', String(pauseMs), 'ALL']);
      await sleep(pauseMs);
      return `CLIENT PAUSE ${pauseMs} ms`;
    }
    case 'pg-kill': {
      const rounds = rng.int(1, 3);
      let killed = 0;
      for (let i = 0; i < rounds; i++) {
        // Only the chaos wallet's backends: its own application_name, never anyone else's.
        const result = await stack.pool.query<{ killed: boolean }>(
          `SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity
           WHERE application_name = $1 AND pid <> pg_backend_pid()`,
          [stack.walletAppName],
        );
        killed += result.rows.filter((row) => row.killed).length;
        if (i + 1 < rounds) await sleep(rng.int(100, 600));
      }
      return `${killed} backends in ${rounds} rounds`;
    }
    case 'wallet-slow': {
      const holdMs = rng.int(1200, 3000);
      const some = rng.shuffle(players).slice(0, Math.max(1, Math.ceil(players.length * (rng.chance(0.5) ? 1 : 0.5))));
      const client = await stack.pool.connect();
      let broken: Error | undefined;
      try {
        await client.query(`BEGIN; SET LOCAL lock_timeout = 5000`);
        const locked = await client.query(
          `SELECT id FROM ${stack.schema}.accounts WHERE owner_kind = 'player' AND user_id = ANY($1) FOR UPDATE`,
          [some],
        );
        await sleep(holdMs);
        await client.query('ROLLBACK');
        return `${locked.rowCount} accounts locked ${holdMs} ms`;
      } catch (error) {
        broken = error as Error;
        await client.query('ROLLBACK').catch(() => undefined);
        return `lock failed: ${broken.message}`;
      } finally {
        client.release(broken);
      }
    }
  }
}
