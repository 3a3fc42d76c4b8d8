"""Replays classic-control episodes in Python Gymnasium (test/rl/envs/classic-parity.test.ts).

stdin: {"env_id", "max_episode_steps", "episodes": [{"state": [...], "actions": [...]}]}
Each episode: make + reset(seed=0), then the unwrapped env's state set to the given one (the
TypeScript side draws it: numpy's and our random streams differ), then the given actions (ints
for CartPole, float32 vectors for Pendulum) until terminated or truncated.
stdout: {"gymnasium_version", "episodes": [{"obs0", "obs", "rewards", "terminated", "truncated", "length"}]}
"""
import json
import sys

import gymnasium as gym
import numpy as np


def main():
    req = json.load(sys.stdin)
    env = gym.make(req["env_id"], max_episode_steps=req["max_episode_steps"])
    out = {"gymnasium_version": gym.__version__, "episodes": []}
    for ep in req["episodes"]:
        env.reset(seed=0)
        u = env.unwrapped
        u.state = np.array(ep["state"], dtype=np.float64)
        obs0 = u._get_obs() if hasattr(u, "_get_obs") else np.array(u.state, dtype=np.float32)
        rec = {"obs0": np.asarray(obs0, dtype=np.float64).tolist(), "obs": [], "rewards": [],
               "terminated": False, "truncated": False}
        for a in ep["actions"]:
            act = int(a) if isinstance(a, int) else np.array(a, dtype=np.float32)
            obs, r, term, trunc, _ = env.step(act)
            rec["obs"].append(np.asarray(obs, dtype=np.float64).tolist())
            rec["rewards"].append(float(r))
            if term or trunc:
                rec["terminated"], rec["truncated"] = bool(term), bool(trunc)
                break
        rec["length"] = len(rec["rewards"])
        out["episodes"].append(rec)
    env.close()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
