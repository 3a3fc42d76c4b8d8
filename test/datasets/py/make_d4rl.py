"""Writes a D4RL-format HDF5 file with h5py (booleans as h5py's enum, gzip-compressed chunks)
and prints the episode boundaries computed here, independently of the importer."""
import json
import sys

import h5py
import numpy as np

out, seed, with_timeouts, max_steps = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", int(sys.argv[4])
rng = np.random.default_rng(seed)
N = int(rng.integers(200, 400))
obs_dim, act_dim = 5, 3
observations = rng.normal(size=(N, obs_dim)).astype(np.float32)
next_observations = rng.normal(size=(N, obs_dim)).astype(np.float32)
actions = rng.uniform(-1, 1, size=(N, act_dim)).astype(np.float32)
rewards = rng.normal(size=(N,)).astype(np.float32)
terminals = rng.random(N) < 0.03
timeouts = np.zeros(N, dtype=bool)
if with_timeouts:
    # A time limit every 25 steps since the last end, as an env wrapper would record it.
    k = 0
    for i in range(N):
        k += 1
        if terminals[i]:
            k = 0
        elif k == 25:
            timeouts[i] = True
            k = 0
with h5py.File(out, "w") as f:
    f.create_dataset("observations", data=observations, compression="gzip", chunks=(64, obs_dim))
    f.create_dataset("next_observations", data=next_observations, compression="gzip", chunks=(64, obs_dim))
    f.create_dataset("actions", data=actions, compression="gzip", chunks=(64, act_dim))
    f.create_dataset("rewards", data=rewards.reshape(N, 1) if seed % 2 else rewards, compression="gzip")
    f.create_dataset("terminals", data=terminals, compression="gzip", chunks=(50,))
    if with_timeouts:
        f.create_dataset("timeouts", data=timeouts, compression="gzip", chunks=(50,))
    f.create_dataset("infos/qpos", data=rng.normal(size=(N, 2)), compression="gzip")

# Boundaries: an episode ends at terminals|timeouts; without timeouts, also after max_steps steps.
episodes = []
start = 0
for i in range(N):
    length = i - start + 1
    end = terminals[i] or (timeouts[i] if with_timeouts else length == max_steps)
    if end or i == N - 1:
        episodes.append({"start": start, "length": length, "terminal": bool(terminals[i]),
                         "truncated": bool(timeouts[i] if with_timeouts else (length == max_steps)) or (not end),
                         "return": float(np.sum(rewards[start:i + 1].astype(np.float64))),
                         "final_obs": next_observations[i].tolist()})
        start = i + 1
print(json.dumps({"N": N, "episodes": episodes, "observations": observations.tolist(), "actions": actions.tolist(),
                  "rewards": rewards.tolist()}))
