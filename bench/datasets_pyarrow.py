"""pyarrow anchor for bench/datasets.ts, on the same single-file dataset, best of `repeats`:
read_only: OSFile reads every batch and exposes observations and rewards as numpy arrays;
memory_map / read_file: the same plus per-dimension observation sums and the reward sum."""
import json
import sys
import time

import numpy as np
import pyarrow as pa

path, repeats = sys.argv[1], int(sys.argv[2])
best = {}
for mode in ("memory_map", "read_file", "read_only"):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        src = pa.memory_map(path) if mode == "memory_map" else pa.OSFile(path)
        compute = mode != "read_only"
        with src:
            reader = pa.ipc.open_file(src)
            obs_sum = None
            reward_sum = 0.0
            rows = 0
            for i in range(reader.num_record_batches):
                b = reader.get_batch(i)
                obs_col = b.column("observations")
                d = obs_col.type.list_size
                obs = obs_col.values.to_numpy().reshape(-1, d)
                rewards = b.column("rewards").to_numpy()
                if compute:
                    s = obs.sum(axis=0, dtype=np.float64)
                    obs_sum = s if obs_sum is None else obs_sum + s
                    reward_sum += float(rewards.sum())
                rows += b.num_rows
        times.append(time.perf_counter() - t0)
    best[mode] = {"seconds": min(times), "rows": rows, "reward_sum": reward_sum, "obs_sum0": float(obs_sum[0]) if obs_sum is not None else None}
print(json.dumps({"pyarrow": pa.__version__, "numpy": np.__version__, **best}))
