#!/usr/bin/env bash
# A small Python environment with MLflow only, for `exp ui` (issue 15): the MLflow UI without
# the multi-GB test venv (torch, transformers). Same MLflow version as the tests
# (scripts/requirements-test.txt). Idempotent; prints the venv's path on its last line.
#
# Lives in ~/.cache/ring-harness/mlflow-ui-<version> (RING_UI_VENV overrides the folder); built
# in place and marked complete only at the end, so an interrupted install is redone, never used.
# Needs python3 (≥ 3.10, with the venv module) and access to PyPI, once.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^mlflow==\([^ ]*\).*/\1/p' scripts/requirements-test.txt)
if [ -z "$version" ]; then
  echo "ui-env: no mlflow==<version> line in scripts/requirements-test.txt" >&2
  exit 1
fi
venv=${RING_UI_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/ring-harness/mlflow-ui-$version}
if [ -f "$venv/.complete" ] && [ "$(cat "$venv/.complete")" = "mlflow==$version" ]; then
  echo "$venv"
  exit 0
fi
if ! command -v python3 > /dev/null; then
  echo "ui-env: python3 is not installed; install Python 3.10 or newer (with venv), or set EXP_UI_MLFLOW to an mlflow executable" >&2
  exit 1
fi
echo "ui-env: installing MLflow $version into $venv (once; about a minute)" >&2
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check "mlflow==$version" >&2
echo "mlflow==$version" > "$venv/.complete"
echo "$venv"
