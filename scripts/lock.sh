#!/usr/bin/env bash
# Resolve the project's dependencies once, for every platform and supported Python, into
# uv.lock, and write from it the files pip installs (requirements/*.txt: pinned, hashed):
#   build.txt    what builds the project (setuptools)
#   runtime.txt  what running a stage needs (make run, the images)
#   bench.txt    runtime + the bench extra (make bench)
#   dev.txt      runtime + bench + the test tools (make test)
# `scripts/lock.sh` writes them (make lock); `scripts/lock.sh --check` fails when uv.lock no
# longer matches pyproject.toml or a requirements file no longer matches uv.lock.
# docs/decisions.md says why uv's lock, exported for pip.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-uv}

export_to() {  # export_to FOLDER: write the four requirements files into FOLDER
  local out=$1
  mkdir -p "$out"
  local common=(--frozen --no-emit-project --no-header --format requirements-txt --quiet)
  "$UV" export "${common[@]}" --only-group build >"$out/build.txt.body"
  "$UV" export "${common[@]}" --no-dev >"$out/runtime.txt.body"
  "$UV" export "${common[@]}" --no-dev --extra bench >"$out/bench.txt.body"
  "$UV" export "${common[@]}" --no-dev --extra dev >"$out/dev.txt.body"
  for name in build runtime bench dev; do
    {
      echo "# Generated from uv.lock by scripts/lock.sh (make lock): do not edit by hand."
      echo "# Install with: pip install --require-hashes --no-deps -r requirements/$name.txt"
      cat "$out/$name.txt.body"
    } >"$out/$name.txt"
    rm "$out/$name.txt.body"
  done
}

if [ "${1:-}" = "--check" ]; then
  "$UV" lock --check --quiet || {
    echo "uv.lock does not match pyproject.toml: run make lock" >&2
    exit 1
  }
  fresh=$(mktemp -d)
  trap 'rm -rf "$fresh"' EXIT
  export_to "$fresh"
  for name in build runtime bench dev; do
    if ! cmp -s "$fresh/$name.txt" "requirements/$name.txt"; then
      echo "requirements/$name.txt does not match uv.lock: run make lock" >&2
      diff -u "requirements/$name.txt" "$fresh/$name.txt" | head -20 >&2 || true
      exit 1
    fi
  done
  echo "the locks match pyproject.toml"
else
  "$UV" lock ${UPGRADE:+--upgrade}
  export_to requirements
  echo "wrote uv.lock and requirements/{build,runtime,bench,dev}.txt"
fi
