#!/usr/bin/env bash
# cowfile.sh - the COW-file benchmark (issue 13): builds dmsnap (release), boots the test kernel
# and runs bench/cowfile-inner.sh there; results in bench/results/TIMESTAMP-cowfile.md and .json.
#   usage: sudo bench/cowfile.sh [--reps N] [--seconds S] [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:/usr/local/sbin:/usr/sbin:/sbin:$PATH"
reps=3 seconds=5 build=1
while (($#)); do
    case $1 in
    --reps) reps=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    *) echo "cowfile.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
scripts/deps.sh  # (fio among them: the workload)
mkdir -p .build/bench bench/results
((build)) && swift build -c release >.build/bench/build.log 2>&1
ts=$(date -u +%Y%m%dT%H%M%SZ)
run=.build/bench/runs/$ts-cowfile
mkdir -p "$run"
Tests/kernel/run-in-uml.sh --mem 2G --timeout 3600 -- bench/cowfile-inner.sh --out "$PWD/$run" --reps "$reps" \
    --seconds "$seconds" --bin "$PWD/.build/release"
cp "$run/cowfile.md" "bench/results/$ts-cowfile.md"
cp "$run/cowfile.json" "bench/results/$ts-cowfile.json"
echo "cowfile.sh: results in bench/results/$ts-cowfile.md"
