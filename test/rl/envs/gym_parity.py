"""Replays episodes in Python Gymnasium for the parity tests (test/rl/envs/parity.test.ts).

stdin: {"env_id", "kwargs", "max_episode_steps", "record": bool,
        "episodes": [{"qpos": [...], "qvel": [...], "actions": [[...], ...]}]}
Each episode: make + reset(seed=0), then set_state(qpos, qvel) -- the initial state comes from
the TypeScript side because numpy's and our random streams differ -- then the given actions
(float32, as Box.sample gives) until terminated or truncated.
stdout: {"spaces": {...}, "episodes": [{"obs0", "obs", "rewards", "terminated", "truncated",
         "length", "return"}]}
"""
import json
import sys

import gymnasium as gym
import mujoco
import numpy as np


def box_json(space):
    def arr(a):
        return ["inf" if v == np.inf else "-inf" if v == -np.inf else float(v) for v in a.ravel()]
    return {"type": "Box", "dtype": str(space.dtype), "shape": list(space.shape),
            "low": arr(space.low), "high": arr(space.high)}


def main():
    req = json.load(sys.stdin)
    kwargs = dict(req.get("kwargs") or {})
    env = gym.make(req["env_id"], max_episode_steps=req.get("max_episode_steps"), **kwargs)
    out = {"mujoco_version": mujoco.__version__, "gymnasium_version": gym.__version__,
           "spaces": {"observation": box_json(env.observation_space), "action": box_json(env.action_space)},
           "episodes": []}
    for ep in req["episodes"]:
        env.reset(seed=0)
        u = env.unwrapped
        u.set_state(np.array(ep["qpos"], dtype=np.float64), np.array(ep["qvel"], dtype=np.float64))
        obs0 = u._get_obs()
        rec = {"obs0": obs0.tolist(), "obs": [], "rewards": [], "terminated": False, "truncated": False}
        total = 0.0
        n = 0
        for a in ep["actions"]:
            obs, r, term, trunc, _ = env.step(np.array(a, dtype=np.float32))
            n += 1
            total += float(r)
            if req.get("record"):
                rec["obs"].append(obs.tolist())
                rec["rewards"].append(float(r))
            if term or trunc:
                rec["terminated"], rec["truncated"] = bool(term), bool(trunc)
                break
        rec["length"], rec["return"] = n, total
        out["episodes"].append(rec)
    env.close()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
