/**
 * Headless Chromium driven over the Chrome DevTools Protocol through a pipe
 * (`--remote-debugging-pipe`: JSON messages ending in a NUL byte, commands written to the
 * browser's fd 3, answers and events read from its fd 4), as puppeteer's pipe transport does: no
 * WebSocket and no npm dependency (issue 18).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';

interface CdpMessage {
  id?: number;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { message: string };
  sessionId?: string;
}

export interface LaunchOptions {
  /** The chromium binary (scripts/browser-env.sh finds it). */
  executable: string;
  /** Milliseconds a command may take before it is an error. */
  timeoutMs?: number;
}

/** A page opened in the browser: evaluate script, take screenshots. */
export interface BrowserPage {
  /** The value of a JavaScript expression (awaited when it is a promise); throws on a page error. */
  evaluate<T>(expression: string): Promise<T>;
  /** A PNG of the viewport. */
  screenshot(): Promise<Buffer>;
}

export class HeadlessChromium {
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (m: CdpMessage) => void; reject: (e: Error) => void }
  >();
  private buffer = '';
  private exited?: string;

  private constructor(
    private readonly proc: ChildProcess,
    private readonly profile: string,
    private readonly timeoutMs: number,
  ) {
    const out = proc.stdio[4] as Readable;
    out.setEncoding('utf8');
    out.on('data', (chunk: string) => {
      this.buffer += chunk;
      for (let end = this.buffer.indexOf('\0'); end >= 0; end = this.buffer.indexOf('\0')) {
        const msg = JSON.parse(this.buffer.slice(0, end)) as CdpMessage;
        this.buffer = this.buffer.slice(end + 1);
        const waiter = msg.id !== undefined ? this.pending.get(msg.id) : undefined;
        if (!waiter) continue;
        this.pending.delete(msg.id!);
        waiter.resolve(msg);
      }
    });
    let stderr = '';
    proc.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-2000);
    });
    proc.on('exit', (code, signal) => {
      this.exited = `chromium exited (${code ?? signal}): ${stderr.trim().split('\n').slice(-3).join(' | ')}`;
      for (const w of this.pending.values()) w.reject(new Error(this.exited));
      this.pending.clear();
    });
  }

  static launch(o: LaunchOptions): HeadlessChromium {
    const profile = mkdtempSync(join(tmpdir(), 'ring-chromium-'));
    const args = [
      '--headless',
      '--remote-debugging-pipe',
      '--disable-gpu',
      '--no-first-run',
      '--no-default-browser-check',
      '--disable-extensions',
      '--hide-scrollbars',
      '--mute-audio',
      '--allow-file-access-from-files',
      `--user-data-dir=${profile}`,
      // as root (CI containers) Chromium refuses to start with its sandbox
      ...(process.getuid?.() === 0 ? ['--no-sandbox'] : []),
      'about:blank',
    ];
    const proc = spawn(o.executable, args, { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
    return new HeadlessChromium(proc, profile, o.timeoutMs ?? 60_000);
  }

  /** Sends one CDP command (to a page's session when `sessionId` is given) and awaits its result. */
  send(
    method: string,
    params: Record<string, unknown> = {},
    sessionId?: string,
  ): Promise<Record<string, unknown>> {
    if (this.exited) return Promise.reject(new Error(this.exited));
    const id = this.nextId++;
    const msg: CdpMessage = { id, method, params, ...(sessionId ? { sessionId } : {}) };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`chromium: ${method} took more than ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.pending.set(id, {
        resolve: (m) => {
          clearTimeout(timer);
          if (m.error) reject(new Error(`chromium: ${method}: ${m.error.message}`));
          else resolve(m.result ?? {});
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      (this.proc.stdio[3] as Writable).write(`${JSON.stringify(msg)}\0`);
    });
  }

  /**
   * Opens `url` in a new page of `width` × `height` CSS pixels (device scale 1, so screenshots
   * have exactly that size) and waits until `readyExpression` is truthy.
   */
  async open(url: string, width: number, height: number, readyExpression = 'true'): Promise<BrowserPage> {
    const { targetId } = (await this.send('Target.createTarget', { url: 'about:blank' })) as {
      targetId: string;
    };
    const { sessionId } = (await this.send('Target.attachToTarget', { targetId, flatten: true })) as {
      sessionId: string;
    };
    await this.send(
      'Emulation.setDeviceMetricsOverride',
      { width, height, deviceScaleFactor: 1, mobile: false },
      sessionId,
    );
    await this.send('Page.navigate', { url }, sessionId);
    const evaluate = async <T>(expression: string): Promise<T> => {
      const r = (await this.send(
        'Runtime.evaluate',
        { expression, returnByValue: true, awaitPromise: true },
        sessionId,
      )) as {
        result: { value?: T };
        exceptionDetails?: { text: string; exception?: { description?: string } };
      };
      if (r.exceptionDetails)
        throw new Error(
          `chromium: page error evaluating ${expression.slice(0, 80)}: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`,
        );
      return r.result.value as T;
    };
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      const ok = await evaluate<boolean>(
        `document.readyState === 'complete' && !!(${readyExpression})`,
      ).catch(() => false);
      if (ok) break;
      if (Date.now() > deadline)
        throw new Error(
          `chromium: ${url.slice(0, 120)} was not ready (${readyExpression}) within ${this.timeoutMs} ms`,
        );
      await new Promise((r) => setTimeout(r, 50));
    }
    return {
      evaluate,
      screenshot: async () => {
        const { data } = (await this.send('Page.captureScreenshot', { format: 'png' }, sessionId)) as {
          data: string;
        };
        return Buffer.from(data, 'base64');
      },
    };
  }

  /** Closes the browser and removes its temporary profile. */
  async close(): Promise<void> {
    if (!this.exited) {
      const gone = new Promise<void>((r) => this.proc.once('exit', () => r()));
      await this.send('Browser.close').catch(() => this.proc.kill('SIGKILL'));
      await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
      if (!this.exited) this.proc.kill('SIGKILL');
    }
    rmSync(this.profile, { recursive: true, force: true });
  }
}
