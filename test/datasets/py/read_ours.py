"""Reads a dataset we wrote with pyarrow (single file) or minari (Minari layout); prints JSON."""
import json
import os
import sys

kind, path = sys.argv[1], sys.argv[2]
out = {}
if kind == "pyarrow":
    import pyarrow as pa

    with pa.memory_map(path) as src:
        reader = pa.ipc.open_file(src)
        table = reader.read_all()
        meta = json.loads(reader.schema.metadata[b"metadata.json"])
    out["metadata"] = meta
    out["columns"] = table.column_names
    out["num_batches"] = reader.num_record_batches
    eps = {}
    d = table.to_pydict()
    for i, e in enumerate(d["episode_id"]):
        ep = eps.setdefault(e, {"observations": [], "actions": [], "rewards": [], "terminations": [], "truncations": [], "steps": []})
        ep["observations"].append(d["observations"][i])
        ep["actions"].append(d["actions"][i])
        ep["rewards"].append(d["rewards"][i])
        ep["terminations"].append(d["terminations"][i])
        ep["truncations"].append(d["truncations"][i])
        ep["steps"].append(d["step"][i])
    out["episodes"] = [eps[k] for k in sorted(eps)]
else:
    os.environ["MINARI_DATASETS_PATH"] = path
    import warnings

    warnings.simplefilter("ignore")
    import minari

    ds = minari.load_dataset(sys.argv[3])
    out["total_episodes"] = ds.total_episodes
    out["total_steps"] = ds.total_steps
    out["env_id"] = ds.spec.env_spec.id if ds.spec.env_spec else None
    out["episodes"] = [
        {
            "id": int(ep.id),
            "observations": ep.observations.tolist(),
            "actions": ep.actions.tolist(),
            "rewards": ep.rewards.tolist(),
            "terminations": ep.terminations.tolist(),
            "truncations": ep.truncations.tolist(),
            "infos": {k: v.tolist() for k, v in ep.infos.items()},
        }
        for ep in ds.iterate_episodes()
    ]
print(json.dumps(out))
