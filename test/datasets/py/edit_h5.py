"""Damages a D4RL-format HDF5 file for the bad-input tests: delete a key, shorten it, or put a NaN in it."""
import sys

import h5py
import numpy as np

path, key = sys.argv[1], sys.argv[2]
mode = sys.argv[3] if len(sys.argv) > 3 else "delete"
with h5py.File(path, "a") as f:
    data = f[key][()]
    del f[key]
    if mode == "shorten":
        f.create_dataset(key, data=data[:-3])
    elif mode == "nan":
        data = data.astype(np.float32)
        data.reshape(-1)[len(data) // 2] = np.nan
        f.create_dataset(key, data=data)
