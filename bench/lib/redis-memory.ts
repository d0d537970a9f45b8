/**
 * Redis memory per cached answer: the growth of used_memory over the money paths divided by the
 * answers cached (dict and expiry overhead included), and MEMORY USAGE of sampled answer keys.
 */
import type { Redis } from 'ioredis';

export interface RedisAnswers {
  usedMemory: number;
  answers: number;
}

export async function redisAnswers(redis: Redis): Promise<RedisAnswers> {
  const info = await redis.info('memory');
  const usedMemory = Number(/^used_memory:(\d+)/m.exec(info)?.[1] ?? NaN);
  let answers = 0;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', 'phia:ans:*', 'COUNT', 2000);
    cursor = next;
    answers += keys.length;
  } while (cursor !== '0');
  return { usedMemory, answers };
}

export async function sampleAnswerUsage(redis: Redis): Promise<number> {
  const [, keys] = await redis.scan('0', 'MATCH', 'phia:ans:*', 'COUNT', 500);
  let total = 0;
  let counted = 0;
  for (const key of keys.slice(0, 200)) {
    const bytes = Number(await redis.call('MEMORY', 'USAGE', key));
    if (Number.isFinite(bytes)) {
      total += bytes;
      counted++;
    }
  }
  return counted === 0 ? 0 : Math.round(total / counted);
}

export function redisPerAnswer(before: RedisAnswers, after: RedisAnswers, memoryUsageAvg: number) {
  const answers = after.answers - before.answers;
  return {
    answers,
    usedMemoryDeltaBytes: after.usedMemory - before.usedMemory,
    bytesPerAnswer: answers > 0 ? Math.round((after.usedMemory - before.usedMemory) / answers) : 0,
    memoryUsageAvg,
    note: 'bytesPerAnswer = used_memory growth over the money paths / answers cached (includes dict and expiry overhead); memoryUsageAvg = MEMORY USAGE of sampled phia:ans:* keys',
  };
}
