#!/usr/bin/env bash
# server.sh - the real-server window benchmark (issue 14): builds dmsnap (release), boots the
# test kernel and runs bench/server-inner.sh there (udev: the window with and without udev
# synchronisation; busy: dmsnap's window under a buffered writer against a bare FIFREEZE/FITHAW);
# results in bench/results/TIMESTAMP-server.md and .json.
#   usage: bench/server.sh [--reps N] [--backing hostfs|tmpfs] [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/wrap.sh
BENCH_VALUES="backing=hostfs" bench_options server 10 "$@"
bench_run server 2G bench/server-inner.sh
