#!/usr/bin/env bash
# A throwaway venv with PyTorch CPU for the benchmarks' anchor (not needed by the tests).
# PyPI's Linux wheel brings CUDA libraries too (several GB); they are unused here.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-bench
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import torch" 2>/dev/null; then exit 0; fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check torch==2.15.0 numpy
