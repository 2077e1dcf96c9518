#!/usr/bin/env bash
# cgroup.sh - the app-consistent take benchmark (issue 16): builds dmsnap (release), boots the
# test kernel and runs bench/cgroup-inner.sh there; results in bench/results/TIMESTAMP-cgroup.md
# and .json.
#   usage: bench/cgroup.sh [--reps N] [--backing tmpfs|hostfs] [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:/usr/local/sbin:/usr/sbin:/sbin:$PATH"
reps=10 build=1 backing=tmpfs
while (($#)); do
    case $1 in
    --reps) reps=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --backing) backing=$2; shift 2 ;;
    *) echo "cgroup.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
scripts/deps.sh
mkdir -p .build/bench bench/results
((build)) && swift build -c release >.build/bench/build.log 2>&1
ts=$(date -u +%Y%m%dT%H%M%SZ)
run=.build/bench/runs/$ts-cgroup
mkdir -p "$run"
Tests/kernel/run-in-uml.sh --mem 2G --timeout 1800 -- bench/cgroup-inner.sh --out "$PWD/$run" --reps "$reps" \
    --backing "$backing" --bin "$PWD/.build/release"
cp "$run/cgroup.md" "bench/results/$ts-cgroup.md"
cp "$run/cgroup.json" "bench/results/$ts-cgroup.json"
echo "cgroup.sh: results in bench/results/$ts-cgroup.md"
