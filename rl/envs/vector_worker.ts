/**
 * Worker thread of AsyncVectorEnv: builds its shard of envs with `make`, then serves reset/step
 * commands synchronously (Atomics.wait on the shared counter, receiveMessageOnPort for the
 * command), so no event-loop turn sits between a command and its reply. Protocol in vector.ts.
 */
import { type MessagePort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { isInputError } from '../../common/index.js';
import type { Env } from './core.js';
import { make } from './registry.js';
import { EnvBatch, type EnvRecipe, type WorkerCommand, type WorkerReply } from './vector.js';

interface WorkerInput {
  recipe: EnvRecipe;
  count: number;
  port: MessagePort;
  ctrl: Int32Array;
}

const { recipe, count, port, ctrl } = workerData as WorkerInput;
let replies = 0;

function reply(r: WorkerReply): void {
  port.postMessage(r);
  replies += 1;
  Atomics.store(ctrl, 1, replies);
  Atomics.notify(ctrl, 1);
}

function failure(err: unknown): WorkerReply {
  const message = err instanceof Error ? err.message : String(err);
  return { ok: false, message: `AsyncVectorEnv worker: ${message}`, inputError: isInputError(err) };
}

let batch: EnvBatch | null = null;
try {
  for (const m of recipe.modules ?? []) await import(m);
  const envs: Env<unknown, unknown>[] = [];
  for (let i = 0; i < count; i++)
    envs.push(make<unknown, unknown>(recipe.id, recipe.kwargs ?? {}, recipe.makeOptions));
  batch = new EnvBatch(envs, 'AsyncVectorEnv');
  reply({ ok: true });
} catch (err) {
  reply(failure(err));
}

let seen = 0;
serve: while (batch) {
  Atomics.wait(ctrl, 0, seen);
  const target = Atomics.load(ctrl, 0);
  while (seen < target) {
    const msg = receiveMessageOnPort(port);
    if (!msg) break;
    seen += 1;
    const command = msg.message as WorkerCommand;
    try {
      if (command.cmd === 'close') {
        batch.close();
        reply({ ok: true });
        break serve;
      }
      const infos =
        command.cmd === 'reset' ? batch.reset(command.seeds, command.options) : batch.step(command.actions);
      reply({
        ok: true,
        obs: batch.obs,
        rewards: batch.rewards,
        terminations: batch.terminations,
        truncations: batch.truncations,
        infos,
      });
    } catch (err) {
      reply(failure(err));
    }
  }
}
port.close();
