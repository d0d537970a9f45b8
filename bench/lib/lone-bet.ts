/**
 * One bet at a time over gRPC: sequential Bet calls from one client straight to the wallet (no
 * gateway), one call in flight. Its latency is the wallet's own cost of a bet plus its round trips to
 * PostgreSQL, without any queueing; compared with the bare one-row transaction's latency at 1 client.
 */
import type { WalletTestClient } from '../../test/helpers/wallet-client.js';
import { loneLatencies, type LatencyStats } from './load.js';
import { BET_AMOUNT, CURRENCY, GAME_ID, type Player } from './phia.js';

export interface LoneBetResult {
  latencyMs: LatencyStats & { avg: number };
  errors: number;
}

export async function loneBets(
  wallet: WalletTestClient,
  players: Player[],
  options: { tag: string; durationS: number; warmupS: number; deadlineMs: number },
): Promise<LoneBetResult> {
  let n = 0;
  let errors = 0;
  const phase = async (seconds: number, latencies?: number[]) => {
    const until = Date.now() + seconds * 1000;
    while (Date.now() < until) {
      const i = n++;
      const player = players[i % players.length] as Player;
      const started = performance.now();
      try {
        await wallet.Bet(
          {
            tx_id: `${options.tag}-${i}`,
            user_id: player.user_id,
            currency: CURRENCY,
            amount: BET_AMOUNT,
            round_id: `${options.tag}-r${i}`,
            game_session_id: player.game_session_id,
            session_id: player.session_id,
            game_id: GAME_ID,
          },
          { deadlineMs: options.deadlineMs },
        );
        latencies?.push(performance.now() - started);
      } catch {
        errors++;
      }
    }
  };
  if (options.warmupS > 0) await phase(options.warmupS);
  errors = 0;
  const latencies: number[] = [];
  await phase(options.durationS, latencies);
  return { latencyMs: loneLatencies(latencies), errors };
}
