#!/usr/bin/env bash
# cowfile.sh - the COW-file benchmark (issue 13): builds dmsnap (release), boots the test kernel
# and runs bench/cowfile-inner.sh there; results in bench/results/TIMESTAMP-cowfile.md and .json.
#   usage: sudo bench/cowfile.sh [--reps N] [--seconds S] [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/wrap.sh
# (fio, the workload, comes with scripts/deps.sh)
BENCH_VALUES="seconds=5" bench_options cowfile 3 "$@"
bench_run cowfile 2G bench/cowfile-inner.sh
