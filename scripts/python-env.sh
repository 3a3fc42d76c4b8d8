#!/usr/bin/env bash
# Creates (or updates) the project's Python environment in .venv with the packages the tests use
# as interoperability checks (scripts/requirements-test.txt). Idempotent: a stamp of the
# requirements file's hash skips the install when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
req=scripts/requirements-test.txt
venv=${RING_VENV:-.venv}
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "python-env: installing $req into $venv (first run takes a few minutes)"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
echo "$want" > "$stamp"
