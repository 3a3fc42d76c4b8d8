#!/usr/bin/env bash
# A long sweep's MLflow file store, carried between machines or sessions as a small archive:
# metrics, params, tags, run metadata and small artifacts (tables, plots, summaries), without the
# binary ones (checkpoints' tensors.bin, logged models' weights.bin, recorded rollouts.arrow, videos).
#
#   bash scripts/store-snapshot.sh save <store-folder> <archive.tar.gz>
#   bash scripts/store-snapshot.sh restore <archive.tar.gz> <store-folder>
#
# After a restore, `exp sweep --resume <parent-run-id> --tracking-uri <store-folder>` reruns the
# cells that had not finished (a run still RUNNING in the snapshot counts as unfinished; without
# its checkpoint it starts again from step 0). Finished cells keep their metrics; their models
# and checkpoints are not in the archive. Stop a sweep with Ctrl-C (SIGINT) before saving, so
# its runs end KILLED rather than RUNNING mid-write.
#
# Writes are atomic: the archive goes to a temporary file that is renamed into place, and a
# restore unpacks into a temporary folder that is renamed to <store-folder>, which must not exist.
set -euo pipefail

usage() {
  echo "usage: store-snapshot.sh save <store-folder> <archive.tar.gz> | restore <archive.tar.gz> <store-folder>" >&2
  exit 2
}

[ $# -eq 3 ] || usage
case "$1" in
  save)
    store=$2 archive=$3
    if [ ! -d "$store" ]; then
      echo "store-snapshot: <store-folder> $store is not a folder" >&2
      exit 2
    fi
    # an MLflow file store has one folder per experiment, each with meta.yaml
    if ! ls "$store"/*/meta.yaml > /dev/null 2>&1; then
      echo "store-snapshot: $store holds no experiment (expected <id>/meta.yaml): not an MLflow file store" >&2
      exit 2
    fi
    tmp="$archive.tmp-$$"
    meta=$(mktemp -d)
    trap 'rm -rf "$tmp" "$meta"' EXIT
    # runs' meta.yaml name their artifact folder by absolute path: restore rewrites it from this
    realpath "$store" > "$meta/.snapshot-origin"
    tar -czf "$tmp" \
      --exclude='*.bin' --exclude='rollouts.arrow' --exclude='*.mp4' --exclude='*.gif' \
      --exclude='*.safetensors' --exclude='.lock-*' \
      -C "$store" . -C "$meta" .snapshot-origin
    mv "$tmp" "$archive"
    rm -rf "$meta"
    trap - EXIT
    echo "store-snapshot: $store → $archive ($(du -h "$archive" | cut -f1))"
    ;;
  restore)
    archive=$2 store=$3
    if [ ! -f "$archive" ]; then
      echo "store-snapshot: <archive> $archive is not a file" >&2
      exit 2
    fi
    if [ -e "$store" ]; then
      echo "store-snapshot: <store-folder> $store exists; restore writes a new folder (move it away first)" >&2
      exit 2
    fi
    tmp="$store.tmp-$$"
    trap 'rm -rf "$tmp"' EXIT
    mkdir -p "$tmp"
    if ! tar -C "$tmp" -xzf "$archive"; then
      echo "store-snapshot: $archive is not a gzip'd tar archive" >&2
      exit 2
    fi
    if [ -f "$tmp/.snapshot-origin" ]; then
      origin=$(cat "$tmp/.snapshot-origin")
      here=$(realpath -m "$store")
      rm "$tmp/.snapshot-origin"
      if [ "$origin" != "$here" ]; then
        grep -rlF --include=meta.yaml "$origin" "$tmp" | while read -r f; do
          sed -i "s#$origin#$here#g" "$f"
        done
      fi
    fi
    mv "$tmp" "$store"
    trap - EXIT
    echo "store-snapshot: $archive → $store"
    ;;
  *) usage ;;
esac
