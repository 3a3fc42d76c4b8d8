#!/usr/bin/env bash
# Headless Chromium and ffmpeg for the replay page's tests and `exp rollout video` (issue 18):
# Debian's `chromium` and `ffmpeg` packages, installed with apt-get when missing (sudo when not
# root). Idempotent: when both commands are found it only prints their paths.
#
#   scripts/browser-env.sh        install when missing, then print `chromium=<path>` and `ffmpeg=<path>`
#
# Exit codes: 0 both available; 3 they cannot be installed here (no apt-get, not root and no
# sudo, apt failed): tests skip with the printed reason; 1 anything else.
# RING_CHROMIUM / RING_FFMPEG name other binaries (checked, never installed).
set -euo pipefail

say() { echo "browser-env: $*" >&2; }
unavailable() {
  say "unavailable: $*"
  exit 3
}

find_chromium() {
  if [ -n "${RING_CHROMIUM:-}" ]; then
    [ -x "$RING_CHROMIUM" ] && echo "$RING_CHROMIUM"
    return
  fi
  command -v chromium || command -v chromium-browser || command -v google-chrome || true
}
find_ffmpeg() {
  if [ -n "${RING_FFMPEG:-}" ]; then
    [ -x "$RING_FFMPEG" ] && echo "$RING_FFMPEG"
    return
  fi
  command -v ffmpeg || true
}

chromium_bin="$(find_chromium || true)"
ffmpeg_bin="$(find_ffmpeg || true)"
if [ -z "$chromium_bin" ] || [ -z "$ffmpeg_bin" ] || ! command -v ffprobe >/dev/null; then
  [ -z "${RING_CHROMIUM:-}${RING_FFMPEG:-}" ] || unavailable "RING_CHROMIUM/RING_FFMPEG name a binary that is not executable"
  command -v apt-get >/dev/null || unavailable "chromium/ffmpeg not found and no apt-get to install them"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      SUDO="sudo -n"
    else
      unavailable "chromium/ffmpeg not found; installing them needs root (or password-less sudo)"
    fi
  fi
  log="${TMPDIR:-/tmp}/ring-browser-env-apt.log"
  say "installing chromium and ffmpeg with apt-get (first run only; log in $log)"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >"$log" 2>&1 || unavailable "apt-get update failed (see $log)"
  $SUDO apt-get install -y -qq --no-install-recommends chromium ffmpeg fonts-dejavu-core >>"$log" 2>&1 ||
    unavailable "apt-get install chromium ffmpeg failed (see $log)"
  chromium_bin="$(find_chromium || true)"
  ffmpeg_bin="$(find_ffmpeg || true)"
  [ -n "$chromium_bin" ] && [ -n "$ffmpeg_bin" ] || {
    say "failed: apt-get installed the packages but chromium/ffmpeg are still not on PATH"
    exit 1
  }
fi
echo "chromium=$chromium_bin"
echo "ffmpeg=$ffmpeg_bin"
