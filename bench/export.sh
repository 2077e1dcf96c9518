#!/usr/bin/env bash
# export.sh - the export benchmark (issue 15): builds dmsnap (release) and the writer, boots the
# test kernel and runs bench/export-inner.sh there; results in bench/results/TIMESTAMP-export.md
# and .json.   usage: sudo bench/export.sh [--reps N] [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:/usr/local/sbin:/usr/sbin:/sbin:$PATH"
reps=3 build=1
while (($#)); do
    case $1 in
    --reps) reps=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    *) echo "export.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
scripts/deps.sh
mkdir -p .build/bench bench/results
((build)) && swift build -c release >.build/bench/build.log 2>&1
cc -O2 -Wall -pthread -o .build/bench/bench-writer bench/writer.c
ts=$(date -u +%Y%m%dT%H%M%SZ)
run=.build/bench/runs/$ts-export
mkdir -p "$run"
Tests/kernel/run-in-uml.sh --mem 2G --timeout 3600 -- bench/export-inner.sh --out "$PWD/$run" --reps "$reps" \
    --bin "$PWD/.build/release" --writer "$PWD/.build/bench/bench-writer"
cp "$run/export.md" "bench/results/$ts-export.md"
cp "$run/export.json" "bench/results/$ts-export.json"
echo "export.sh: results in bench/results/$ts-export.md"
