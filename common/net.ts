/**
 * A free TCP port for a listener that another process will bind (a ring's rendezvous, a test's
 * MLflow server).
 *
 * WHY not simply `listen(0)`: the kernel hands out port 0's answer from its ephemeral range, the
 * same range it draws the source ports of outgoing connections from. Between our probe closing
 * and the real listener binding, any connection on the machine (a ZeroMQ peer, an HTTP client)
 * may take that port, and the listener fails with "Address already in use" (seen in CI with
 * several rings and an MLflow server running at once). A port below the ephemeral range is never
 * handed out implicitly, so only another deliberate listener can race for it.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** Lowest port we pick from (above the registered services most machines run). */
const LOWEST = 20_000;

/** [low, high] of the kernel's ephemeral port range, or undefined where it cannot be read. */
function ephemeralRange(): [number, number] | undefined {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    return Number.isInteger(low) && Number.isInteger(high) ? [low, high] : undefined;
  } catch {
    return undefined;
  }
}

/** Resolves with the port if `host:port` could be bound a moment ago, else with undefined. */
function tryListen(host: string, port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const s = createServer();
    s.unref();
    s.once('error', () => resolve(undefined));
    s.listen({ port, host, exclusive: true }, () => {
      const addr = s.address();
      const bound = typeof addr === 'object' && addr ? addr.port : undefined;
      s.close(() => resolve(bound));
    });
  });
}

/**
 * A port on `host` that was free a moment ago, chosen at random below the kernel's ephemeral range
 * when that range is known and leaves room (Linux); otherwise the kernel's own pick.
 */
export async function freeTcpPort(host = '127.0.0.1'): Promise<number> {
  const range = ephemeralRange();
  if (range && range[0] - LOWEST >= 1000) {
    const span = range[0] - LOWEST;
    for (let attempt = 0; attempt < 64; attempt++) {
      const port = await tryListen(host, LOWEST + Math.floor(Math.random() * span));
      if (port !== undefined) return port;
    }
  }
  const port = await tryListen(host, 0);
  if (port === undefined) throw new Error(`no free TCP port on ${host}`);
  return port;
}
