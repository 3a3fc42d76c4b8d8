// freeTcpPort: a port a listener can bind, drawn below the kernel's ephemeral range so that no
// outgoing connection can take it between the probe and the bind (the CI failure of stop 29).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { freeTcpPort } from '../../common/index.js';

function listen(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => s.close(() => resolve()));
  });
}

test('freeTcpPort: bindable, and below the ephemeral range on Linux', async () => {
  let low: number | undefined;
  try {
    low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  } catch {
    low = undefined;
  }
  const ports = new Set<number>();
  for (let i = 0; i < 20; i++) {
    const port = await freeTcpPort();
    assert.ok(Number.isInteger(port) && port > 0 && port < 65536, `port ${port}`);
    if (low !== undefined && low - 20_000 >= 1000)
      assert.ok(port >= 20_000 && port < low, `port ${port} not in [20000, ${low})`);
    await listen(port);
    ports.add(port);
  }
  // drawn at random, not the same port every time
  assert.ok(ports.size > 1);
});
