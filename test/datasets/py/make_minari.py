"""Writes a Minari dataset with Python minari (create_dataset_from_buffers) from seeded random
episodes; prints the episodes as JSON so the test can compare what our reader returns."""
import json
import os
import sys
import warnings

root, data_format, seed, dataset_id = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
os.environ["MINARI_DATASETS_PATH"] = root
warnings.simplefilter("ignore")
import gymnasium as gym
import minari
import numpy as np
from minari.data_collector import EpisodeBuffer

rng = np.random.default_rng(seed)
env = gym.make("Pendulum-v1", max_episode_steps=40)
buffers = []
episodes = []
for e in range(int(rng.integers(3, 7))):
    # Real env steps with random actions, so spaces and dtypes are what Minari writes for Pendulum.
    o, _ = env.reset(seed=int(seed * 100 + e))
    obs, acts, rews, terms, truncs = [o], [], [], [], []
    limit = int(rng.integers(5, 41))
    for t in range(limit):
        a = rng.uniform(-2, 2, size=(1,)).astype(np.float32)
        o, r, te, tr, _ = env.step(a)
        tr = tr or t == limit - 1
        obs.append(o); acts.append(a); rews.append(float(r)); terms.append(bool(te)); truncs.append(bool(tr))
        if te or tr:
            break
    buffers.append(EpisodeBuffer(observations=np.array(obs), actions=np.array(acts), rewards=np.array(rews),
                                 terminations=np.array(terms), truncations=np.array(truncs), seed=int(seed * 100 + e)))
    episodes.append({"observations": np.array(obs).tolist(), "actions": np.array(acts).tolist(), "rewards": rews,
                     "terminations": terms, "truncations": truncs})
minari.create_dataset_from_buffers(dataset_id=dataset_id, buffer=buffers, env=env, data_format=data_format,
                                   algorithm_name="random", author="test", author_email="t@example.com",
                                   code_permalink="https://example.com", description="test",
                                   ref_min_score=-1500.0, ref_max_score=-100.0)
print(json.dumps({"episodes": episodes}))
