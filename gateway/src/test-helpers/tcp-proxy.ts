/**
 * A TCP forwarder in front of a real server (Redis, the wallet), so a test can make that server
 * "go down" for one client (every connection cut, new ones refused) and come back, without touching
 * the shared server other tests use.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  port: number;
  url(scheme: string): string;
  /** Cuts every connection and stops listening (clients get resets, then refusals). */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
  /** Holds what clients send (a paused server: commands time out, then run late on resume). */
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  const clients = new Set<Socket>();
  let paused = false;
  let server: Server | undefined;
  let port = 0;
  const listen = async () => {
    const created = createServer((client) => {
      const upstream = connect(targetPort, targetHost);
      sockets.add(client);
      sockets.add(upstream);
      clients.add(client);
      if (paused) client.pause();
      const drop = () => {
        client.destroy();
        upstream.destroy();
        sockets.delete(client);
        sockets.delete(upstream);
        clients.delete(client);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      created.once('error', reject);
      created.listen(port, '127.0.0.1', () => resolve());
    });
    const address = created.address();
    if (typeof address === 'object' && address !== null) port = address.port;
    server = created;
  };
  const stop = async () => {
    const current = server;
    server = undefined;
    for (const socket of sockets) socket.destroy();
    sockets.clear();
    if (current) await new Promise<void>((resolve) => current.close(() => resolve()));
  };
  await listen();
  return {
    get port() {
      return port;
    },
    url: (scheme) => `${scheme}://127.0.0.1:${port}`,
    stop,
    pause: () => {
      paused = true;
      for (const client of clients) client.pause();
    },
    resume: () => {
      paused = false;
      for (const client of clients) client.resume();
    },
    start: async () => {
      if (!server) await listen();
    },
    close: stop,
  };
}
