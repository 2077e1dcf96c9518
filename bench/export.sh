#!/usr/bin/env bash
# export.sh - the export benchmark (issue 15): builds dmsnap (release) and the writer, boots the
# test kernel and runs bench/export-inner.sh there; results in bench/results/TIMESTAMP-export.md
# and .json.   usage: sudo bench/export.sh [--reps N] [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/wrap.sh
bench_options export 3 "$@"
mkdir -p .build/bench
cc -O2 -Wall -pthread -o .build/bench/bench-writer bench/writer.c
bench_run export 2G bench/export-inner.sh --writer "$PWD/.build/bench/bench-writer"
