#!/usr/bin/env bash
# Makes the project's Python environment `.venv` with the packages the tests use as
# interoperability checks (scripts/requirements-test.txt), idempotently.
#
# The environment itself lives in a per-user cache keyed by the requirements file's hash
# (~/.cache/ring-harness/venv-<hash>, or RING_VENV_CACHE), and `.venv` links to it: a fresh clone
# on a machine that already built it (CI, a second checkout) reuses it instead of reinstalling
# several GB (torch). A venv is built in place (its scripts hard-code their path) and marked
# complete only at the end, so an interrupted build is redone, never used.
# RING_VENV=<dir> keeps the old behaviour: a plain venv in that folder.
set -euo pipefail
cd "$(dirname "$0")/.."
req=scripts/requirements-test.txt
want=$(sha256sum "$req" | cut -d' ' -f1)

install_into() {
  local venv=$1
  echo "python-env: installing $req into $venv (first run takes a few minutes)"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  echo "$want" > "$venv/.requirements.sha256"
}

if [ -n "${RING_VENV:-}" ]; then
  if [ ! -f "$RING_VENV/.requirements.sha256" ] || [ "$(cat "$RING_VENV/.requirements.sha256")" != "$want" ]; then
    install_into "$RING_VENV"
  fi
  exit 0
fi

cache=${RING_VENV_CACHE:-$HOME/.cache/ring-harness}
target="$cache/venv-${want:0:16}"
if [ ! -f "$target/.requirements.sha256" ] || [ "$(cat "$target/.requirements.sha256")" != "$want" ]; then
  mkdir -p "$cache"
  rm -rf "$target" # an interrupted build, never marked complete
  install_into "$target"
fi
# .venv → the cached environment (a real .venv folder from an older checkout is replaced)
if [ "$(readlink .venv 2>/dev/null)" != "$target" ]; then
  rm -rf .venv
  ln -s "$target" .venv
fi
