#!/usr/bin/env bash
# Executes notebooks/analysis.ipynb on your runs (issue 15): the executed notebook, with its
# figures inline, and the figures as PNG files land in out/notebook/ (EXP_OUTPUT_DIR).
# Run it from the folder your runs are in (./mlruns, or set MLFLOW_TRACKING_URI): relative paths
# are taken from there, not from notebooks/. Other settings (EXP_EXPERIMENT, EXP_METRIC,
# EXP_DATASET) are described in the notebook's first cell.
# Python comes from the small venv of scripts/ui-env.sh (made once), or EXP_JUPYTER names a
# jupyter executable to use instead (the tests use the test venv's).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${EXP_JUPYTER:-}" ]; then
  jupyter=$EXP_JUPYTER
else
  jupyter="$(bash "$root/scripts/ui-env.sh" | tail -n 1)/bin/jupyter"
fi
export EXP_BASE_DIR=${EXP_BASE_DIR:-$PWD}
export EXP_OUTPUT_DIR=${EXP_OUTPUT_DIR:-out/notebook}
case $EXP_OUTPUT_DIR in
  /*) out=$EXP_OUTPUT_DIR ;;
  *) out=$EXP_BASE_DIR/$EXP_OUTPUT_DIR ;;
esac
mkdir -p "$out"
"$jupyter" nbconvert --to notebook --execute "$root/notebooks/analysis.ipynb" --output-dir "$out" \
  --ExecutePreprocessor.timeout=600
echo "notebook: $out/analysis.ipynb (executed, figures inline); figures and tables in $out/"
