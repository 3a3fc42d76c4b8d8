#!/usr/bin/env bash
# A small Python environment for `exp ui` and scripts/notebook.sh (issue 15): MLflow (which
# brings pandas, pyarrow and matplotlib) and Jupyter's nbconvert/ipykernel, without the multi-GB
# test venv (torch, transformers). The versions are the tests' (scripts/requirements-test.txt).
# Idempotent; prints the venv's path on its last line.
#
# Lives in ~/.cache/ring-harness/mlflow-ui-<version> (RING_UI_VENV overrides the folder); built
# in place and marked complete only at the end, so an interrupted install is redone, never used.
# Needs python3 (≥ 3.10, with the venv module) and access to PyPI, once.
set -euo pipefail
cd "$(dirname "$0")/.."
pin() { sed -n "s/^\($1==[^ ]*\).*/\1/p" scripts/requirements-test.txt; }
version=$(pin mlflow | cut -d= -f3)
packages="$(pin mlflow) $(pin nbconvert) $(pin nbclient) $(pin ipykernel)"
if [ -z "$version" ] || [ "$(echo "$packages" | wc -w)" != 4 ]; then
  echo "ui-env: scripts/requirements-test.txt lacks a pin of mlflow, nbconvert, nbclient or ipykernel" >&2
  exit 1
fi
venv=${RING_UI_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/ring-harness/mlflow-ui-$version}
if [ -f "$venv/.complete" ] && [ "$(cat "$venv/.complete")" = "$packages" ]; then
  echo "$venv"
  exit 0
fi
if ! command -v python3 > /dev/null; then
  echo "ui-env: python3 is not installed; install Python 3.10 or newer (with venv), or set EXP_UI_MLFLOW to an mlflow executable" >&2
  exit 1
fi
echo "ui-env: installing $packages into $venv (once; about two minutes)" >&2
if [ -e "$venv" ] && [ ! -f "$venv/pyvenv.cfg" ] && [ -n "$(ls -A "$venv" 2> /dev/null)" ]; then
  echo "ui-env: $venv exists and is not a Python venv; not touching it (set RING_UI_VENV elsewhere)" >&2
  exit 1
fi
rm -rf "$venv" # an interrupted install, never marked complete
mkdir -p "$(dirname "$venv")"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip >&2
# shellcheck disable=SC2086
"$venv/bin/pip" install --quiet --disable-pip-version-check $packages >&2
echo "$packages" > "$venv/.complete"
echo "$venv"
