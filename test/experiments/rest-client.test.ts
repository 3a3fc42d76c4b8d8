/**
 * The REST client against a scripted HTTP server: auth headers from the environment, retries with
 * backoff on 5xx/429, no retry on a rejected request, and spooling while unreachable.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MlflowApiError, RestStore, UnreachableError } from '../../experiments/tracking/index.js';
import { tempDir } from './util.js';

interface Seen {
  method: string;
  url: string;
  auth?: string;
  body: string;
}

describe('RestStore against a scripted server', () => {
  const seen: Seen[] = [];
  let replies: { status: number; body: unknown }[] = [];
  let server: Server;
  let uri = '';
  const spool = tempDir('rest-spool');

  before(async () => {
    server = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.on('data', (d) => {
        body += d;
      });
      req.on('end', () => {
        seen.push({ method: req.method ?? '', url: req.url ?? '', auth: req.headers.authorization, body });
        const r = replies.shift() ?? { status: 200, body: {} };
        res.writeHead(r.status, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(r.body));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const addr = server.address();
    uri = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  test('bearer token, else basic auth, from the environment', async () => {
    seen.length = 0;
    await new RestStore(uri, { spoolDir: spool, env: { MLFLOW_TRACKING_TOKEN: 'abc' } }).updateRun(
      'r1',
      'FINISHED',
      1,
    );
    await new RestStore(uri, {
      spoolDir: spool,
      env: { MLFLOW_TRACKING_USERNAME: 'ann', MLFLOW_TRACKING_PASSWORD: 'pw' },
    }).updateRun('r1', 'FINISHED', 1);
    await new RestStore(uri, { spoolDir: spool, env: {} }).updateRun('r1', 'FINISHED', 1);
    assert.deepEqual(
      seen.map((s) => s.auth),
      ['Bearer abc', `Basic ${Buffer.from('ann:pw').toString('base64')}`, undefined],
    );
    assert.equal(seen[0].url, '/api/2.0/mlflow/runs/update');
    assert.deepEqual(JSON.parse(seen[0].body), { run_id: 'r1', status: 'FINISHED', end_time: 1 });
  });

  test('5xx and 429 are retried with backoff; a 400 is not, and names the error', async () => {
    seen.length = 0;
    replies = [
      { status: 503, body: {} },
      { status: 429, body: {} },
      { status: 200, body: {} },
    ];
    const store = new RestStore(uri, { spoolDir: spool, backoffMs: 20, env: {} });
    const t0 = performance.now();
    await store.logBatch('r1', {
      metrics: [{ key: 'train/x', value: 1, step: 0, timestamp: 0 }],
      params: [],
      tags: [],
    });
    assert.equal(seen.length, 3);
    assert.ok(performance.now() - t0 >= 20 + 40 - 5, 'waited 20 then 40 ms');
    seen.length = 0;
    replies = [{ status: 400, body: { error_code: 'INVALID_PARAMETER_VALUE', message: 'bad key' } }];
    await assert.rejects(
      store.logBatch('r1', { metrics: [], params: [{ key: 'a', value: 'b' }], tags: [] }),
      (err: unknown) =>
        err instanceof MlflowApiError &&
        /HTTP 400 INVALID_PARAMETER_VALUE: bad key/.test(err.message) &&
        seen.length === 1,
    );
  });

  test('unreachable: writes spool in order and replay when the server answers', async () => {
    const dir = tempDir('rest-down');
    const down = new RestStore('http://127.0.0.1:9', { spoolDir: dir, retries: 1, backoffMs: 10, env: {} });
    await down.logBatch('r1', {
      metrics: [{ key: 'train/x', value: 1, step: 1, timestamp: 1 }],
      params: [],
      tags: [],
    });
    await down.logBatch('r1', {
      metrics: [{ key: 'train/x', value: 2, step: 2, timestamp: 2 }],
      params: [],
      tags: [],
    });
    await down.updateRun('r1', 'FINISHED', 3);
    assert.equal(down.pending, 3);
    assert.deepEqual(await down.close(50), { pending: 3 });
    assert.equal(readdirSync(dir).filter((f) => f.endsWith('.jsonl')).length, 1);
    await assert.rejects(down.getRun('r1'), UnreachableError, 'reads are not spooled');
    // Point the spool at the live server (a restarted server, in real life) and sync.
    const file = join(dir, readdirSync(dir).find((f) => f.endsWith('.jsonl'))!);
    writeFileSync(file, readFileSync(file, 'utf8').replaceAll('http://127.0.0.1:9', uri));
    seen.length = 0;
    assert.equal(await RestStore.syncSpools(dir, { env: {} }), 0);
    assert.deepEqual(
      seen.map((s) => s.url),
      ['/api/2.0/mlflow/runs/log-batch', '/api/2.0/mlflow/runs/log-batch', '/api/2.0/mlflow/runs/update'],
    );
    assert.deepEqual(
      seen.slice(0, 2).map((s) => (JSON.parse(s.body) as { metrics: { step: number }[] }).metrics[0].step),
      [1, 2],
    );
    assert.ok(!existsSync(file), 'the spool file is gone once replayed');
  });
});
