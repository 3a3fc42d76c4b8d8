"""Opens datasets we wrote the way a Minari user does (issue 15); prints JSON.

argv[1]: the Minari root (MINARI_DATASETS_PATH); argv[2:]: dataset ids to load.
Reports list_local_datasets() (and every warning it raised, e.g. "Misconfigured dataset"), and
for each id: load_dataset(id).total_episodes and recover_environment()'s spec and spaces.
"""
import json
import os
import sys
import warnings

os.environ["MINARI_DATASETS_PATH"] = sys.argv[1]
import minari  # noqa: E402

out = {"datasets": {}}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    listed = minari.list_local_datasets()
out["listed"] = sorted(listed)
out["warnings"] = [str(w.message) for w in caught if "isconfigured" in str(w.message)]
for dataset_id in sys.argv[2:]:
    ds = minari.load_dataset(dataset_id)
    entry = {"total_episodes": ds.total_episodes, "dataset_id": ds.spec.dataset_id}
    try:
        env = ds.recover_environment()
        entry["env"] = {
            "id": env.spec.id,
            "entry_point": env.spec.entry_point,
            "max_episode_steps": env.spec.max_episode_steps,
            "observation_shape": list(env.observation_space.shape),
            "action_shape": list(env.action_space.shape),
        }
        env.close()
    except Exception as e:  # reported, the test asserts on it
        entry["env_error"] = f"{type(e).__name__}: {e}"
    out["datasets"][dataset_id] = entry
print(json.dumps(out))
