#!/usr/bin/env bash
# run.sh - dmsnap's benchmark, one command: builds dmsnap (release) and the writer, boots the
# test kernel (User-Mode Linux), runs bench/inner.sh there and writes the results:
#   bench/results/TIMESTAMP.md     the tables (also printed)
#   bench/results/TIMESTAMP.json   every sample, the summaries, the targets, the machine
#   .build/bench/runs/TIMESTAMP/   raw samples, dmsnap traces and the log
# A full run also refreshes the generated sections of BENCHMARKS.md.
#
# usage: sudo bench/run.sh [--quick] [--reps N] [--backing hostfs|tmpfs] [--no-build] [--no-update]
#   --quick      1 repetition, small devices (the smoke mode; results stay in .build/bench/runs)
#   --reps N     repetitions per case (default 5)
#   --backing    where the loop devices' files live: hostfs (default, like fixtures/loopdev.sh:
#                every flush is a host fsync) or tmpfs inside the test kernel (no host disk)
#   --no-build   use the existing .build/release binaries
#   --no-update  do not touch BENCHMARKS.md
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:/usr/local/sbin:/usr/sbin:/sbin:$PATH"
say() { printf 'bench: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}

quick=0 reps='' build=1 update=1 backing=hostfs
while (($#)); do
    case $1 in
    --quick) quick=1; shift ;;
    --reps) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "--reps needs a positive number"; reps=$2; shift 2 ;;
    --backing) [[ ${2:-} == hostfs || ${2:-} == tmpfs ]] || die "--backing: hostfs or tmpfs"; backing=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --no-update) update=0; shift ;;
    -h | --help) sed -n '2,17s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
done
((quick)) && update=0
[[ $EUID -eq 0 ]] || die "must run as root (it boots the test kernel); try: sudo bench/run.sh"

scripts/deps.sh
mkdir -p .build/bench bench/results
if ((build)); then
    say "building dmsnap (release)"
    ok=0
    for attempt in 1 2 3; do
        if swift build -c release >.build/bench/build.log 2>&1; then
            ok=1
            break
        fi
        # sources edited while building (others at work in the tree): try again
        grep -q 'was modified during the build' .build/bench/build.log || break
        say "sources changed during the build; retrying ($attempt)"
        sleep 5
    done
    if ((!ok)); then
        tail -30 .build/bench/build.log >&2
        die "release build failed (log: .build/bench/build.log)"
    fi
fi
for b in dmsnap dmsnap-probe; do [[ -x .build/release/$b ]] || die ".build/release/$b missing (build first)"; done
cc=$(command -v cc || command -v gcc || command -v clang || true)
[[ -n $cc ]] || die "no C compiler for bench/writer.c (apt-get install gcc, or use the Swift toolchain's clang)"
"$cc" -O2 -Wall -pthread -o .build/bench/bench-writer.tmp bench/writer.c
mv -f .build/bench/bench-writer.tmp .build/bench/bench-writer

ts=$(date -u +%Y%m%dT%H%M%SZ)
[[ $backing == tmpfs ]] && ts+=-tmpfs
((quick)) && ts+=-quick
run=.build/bench/runs/$ts
mkdir -p "$run"

# Other kernels on this machine make the numbers noisy: sample the host's load while we run.
kernels() { # top-level linux.uml processes (each kernel has one per guest process below it)
    ps -eo pid=,ppid=,comm= | awk '{c[$1]=$3; p[$1]=$2} END {n=0; for (i in c) if (c[i]=="linux.uml" && c[p[i]]!="linux.uml") n++; print n}'
}
load1() { cut -d' ' -f1 /proc/loadavg; }
kern_before=$(kernels) load_before=$(load1)
(
    while :; do
        printf '%s %s\n' "$(load1)" "$(kernels)"
        sleep 5
    done
) >"$run/host-load.txt" 2>/dev/null &
sampler=$!
trap 'kill "$sampler" 2>/dev/null || true' EXIT

args=(--out "$PWD/$run" --bin "$PWD/.build/release" --writer "$PWD/.build/bench/bench-writer" --backing "$backing")
((quick)) && args+=(--quick)
[[ -n $reps ]] && args+=(--reps "$reps")
say "booting the test kernel; results in $run"
rc=0
Tests/kernel/run-in-uml.sh --mem 2G --timeout 3600 -- bench/inner.sh "${args[@]}" || rc=$?
kill "$sampler" 2>/dev/null || true
kern_after=$(kernels) load_after=$(load1)
((rc == 0)) || die "benchmark failed (exit $rc; log: $run/bench.log)"

# host facts, then the report again with them
python3 - "$run" "$load_before" "$load_after" "$kern_before" "$kern_after" <<'EOF'
import json, os, sys
run, lb, la, kb, ka = sys.argv[1:]
samples = []
for line in open(os.path.join(run, "host-load.txt")):
    f = line.split()
    if len(f) == 2:
        samples.append((float(f[0]), int(f[1])))
mem = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
host = {"nproc": os.cpu_count(), "cpu": cpu, "mem_mib": mem // 1024, "host_kernel": os.uname().release,
        "load_before": float(lb), "load_after": float(la),
        "load_during_mean": round(sum(s[0] for s in samples) / len(samples), 2) if samples else None,
        "load_during_max": max((s[0] for s in samples), default=None),
        # our own kernel is one of them while it runs
        "other_uml_before": int(kb), "other_uml_after": int(ka),
        "other_uml_during_max": max((s[1] - 1 for s in samples), default=None)}
json.dump(host, open(os.path.join(run, "host.json"), "w"), indent=1)
EOF
report=(python3 bench/report.py --out "$run")
((update)) && report+=(--benchmarks BENCHMARKS.md)
"${report[@]}"
if ((quick)); then
    # a smoke run: its numbers are not results
    say "results: $run/table.md, $run/results.json"
    exit 0
fi
cp "$run/results.json" "bench/results/$ts.json"
cp "$run/table.md" "bench/results/$ts.md"
say "results: bench/results/$ts.md, bench/results/$ts.json (raw: $run)"
((update)) && say "BENCHMARKS.md updated"
exit 0
