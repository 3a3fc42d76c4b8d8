"""Compiles our MJCF models (rl/envs/assets) and Gymnasium's of the same name with Python MuJoCo and lists every
physics-relevant model field that differs (test/rl/envs/parity.test.ts expects none).

argv[1]: our assets folder. stdout: {"<our file>": [[field, detail], ...]}.
Visual-only fields (textures, materials, lights, cameras, names) and memory sizes are skipped.
"""
import json
import os
import sys

import gymnasium
import mujoco
import numpy as np

PAIRS = [("ant.xml", "ant.xml"), ("half_cheetah.xml", "half_cheetah.xml"),
         ("hopper.xml", "hopper.xml"), ("walker2d_v5.xml", "walker2d_v5.xml"),
         ("walker2d.xml", "walker2d.xml")]
SKIP = ("name", "tex", "mat_", "light_", "cam_", "vis", "path", "stat", "geom_rgba", "geom_matid",
        "text", "signature", "mesh", "skin", "ntex", "nmat", "nlight", "ncam", "geom_group", "bvh",
        "narena", "nbuffer", "numeric", "nnumeric")
OPT = ["timestep", "gravity", "integrator", "wind", "density", "viscosity", "impratio", "tolerance",
       "iterations", "ls_iterations", "cone", "jacobian", "solver", "disableflags", "enableflags",
       "o_margin", "noslip_iterations"]


def diff(a, b):
    out = []
    for k in dir(a):
        if k.startswith("_") or any(s in k for s in SKIP):
            continue
        try:
            va, vb = getattr(a, k), getattr(b, k)
        except Exception:
            continue
        if callable(va):
            continue
        if isinstance(va, np.ndarray):
            if va.shape != vb.shape:
                out.append([k, f"shape {va.shape} vs {vb.shape}"])
            elif va.dtype.kind in "fiub" and not np.array_equal(va, vb):
                out.append([k, f"max abs diff {np.max(np.abs(va.astype(float) - vb.astype(float)))}"])
        elif isinstance(va, (int, float)) and va != vb:
            out.append([k, f"{va} vs {vb}"])
    for f in OPT:
        va, vb = getattr(a.opt, f), getattr(b.opt, f)
        if not np.array_equal(va, vb):
            out.append(["opt." + f, f"{va} vs {vb}"])
    return out


def main():
    gdir = os.path.join(os.path.dirname(gymnasium.__file__), "envs", "mujoco", "assets")
    res = {}
    for ours, theirs in PAIRS:
        a = mujoco.MjModel.from_xml_path(os.path.join(sys.argv[1], ours))
        b = mujoco.MjModel.from_xml_path(os.path.join(gdir, theirs))
        res[ours] = diff(a, b)
    json.dump(res, sys.stdout)


if __name__ == "__main__":
    main()
