"""Python Gymnasium's env steps/s under a random policy, for bench/env.ts (same protocol as
`exp bench env`: actions drawn before timing, autoreset, warm-up untimed).

argv: env_id steps num_envs. stdout: one JSON object.
"""
import json
import sys
import time

import gymnasium as gym
import mujoco


def main():
    env_id, steps, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if n == 1:
        env = gym.make(env_id)
        env.reset(seed=0)
        env.action_space.seed(0)
        acts = [env.action_space.sample() for _ in range(min(steps, 1000))]

        def run(k):
            for i in range(k):
                _, _, term, trunc, _ = env.step(acts[i % len(acts)])
                if term or trunc:
                    env.reset()
    else:
        env = gym.make_vec(env_id, num_envs=n, vectorization_mode="async")
        env.reset(seed=0)
        env.action_space.seed(0)
        acts = [env.action_space.sample() for _ in range(min(steps // n, 500))]

        def run(k):
            for i in range(k):
                env.step(acts[i % len(acts)])
    calls = -(-steps // n)
    run(max(1, 100 // n))
    t0 = time.perf_counter()
    run(calls)
    sec = time.perf_counter() - t0
    env.close()
    print(json.dumps({"env": env_id, "numEnvs": n, "vector": "none" if n == 1 else "async",
                      "steps": calls * n, "seconds": sec, "stepsPerSec": calls * n / sec,
                      "mujoco": mujoco.__version__, "gymnasium": gym.__version__}))


if __name__ == "__main__":
    main()
