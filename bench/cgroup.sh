#!/usr/bin/env bash
# cgroup.sh - the app-consistent take benchmark (issue 16): builds dmsnap (release), boots the
# test kernel and runs bench/cgroup-inner.sh there; results in bench/results/TIMESTAMP-cgroup.md
# and .json.
#   usage: bench/cgroup.sh [--reps N] [--backing tmpfs|hostfs] [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/wrap.sh
BENCH_VALUES="backing=tmpfs" bench_options cgroup 10 "$@"
bench_run cgroup 2G bench/cgroup-inner.sh
