#!/usr/bin/env bash
# cgroup-inner.sh - the app-consistent take benchmark (issue 16); runs as root inside the test
# kernel: Tests/kernel/run-in-uml.sh -- bench/cgroup-inner.sh --out DIR [--reps N] [--bin DIR]
# (bench/cgroup.sh builds and boots). In one boot, on one mounted ext4:
#   - an application in a cgroup writes to the filesystem (buffered 4 KiB appends, 1 ms apart);
#   - a victim outside the cgroup (bench/writer.c: pwrite + fdatasync of 4 KiB) writes to the
#     same filesystem and records its longest write around each take: the stall;
#   - each repetition runs 'dmsnap take' plain and with --freeze-cgroup (rotating order), then
#     merges; an idle window of the same length is the noise floor.
# --backing tmpfs (default) puts the loop files in memory; hostfs on the host's disk.
# Reports the victim's stall (min/median/max) per contender, the ratio of medians (target:
# --freeze-cgroup ≤ 1.2× plain) and how long take's JSON says the cgroup was frozen.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd -P)
repo=$(cd "$here/.." && pwd -P)
reps=10 out='' bin=$repo/.build/release writer=$repo/.build/bench/bench-writer P=dmsc- backing=tmpfs
while (($#)); do
    case $1 in
    --reps) reps=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --writer) writer=$2; shift 2 ;;
    --backing) backing=$2; shift 2 ;;
    *) echo "cgroup-inner.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[[ -n $out ]] || { echo "cgroup-inner.sh: --out DIR is required" >&2; exit 2; }
mkdir -p "$out"
out=$(cd "$out" && pwd -P)
DMSNAP=$bin/dmsnap
say() { echo "cgroup: $*" >&2; }
fx() { "$repo/fixtures/loopdev.sh" "$@"; }
export DM_DISABLE_UDEV=1 DMSNAP_STATE_DIR=/run/dmsnap-bench-state

if [[ ! -x $writer || $here/writer.c -nt $writer ]]; then
    mkdir -p "$(dirname "$writer")"
    cc=$(command -v cc || command -v gcc || command -v clang) || { say "no C compiler for writer.c"; exit 1; }
    "$cc" -O2 -pthread -o "$writer.tmp.$$" "$here/writer.c" && mv -f "$writer.tmp.$$" "$writer"
fi

work=$(mktemp -d /var/tmp/dmsnap-cgroup-bench.XXXXXX)
export DMSNAP_FIXTURE_DIR=$work/fixtures
mkdir -p "$DMSNAP_FIXTURE_DIR"
# tmpfs (default): the loop files in memory, so a host fsync is not the noise floor; hostfs: on
# the host's disk like fixtures/loopdev.sh
[[ $backing == tmpfs ]] && mount -t tmpfs -o size=600M none "$DMSNAP_FIXTURE_DIR"
CGROOT=/sys/fs/cgroup
mountpoint -q "$CGROOT" || mount -t cgroup2 none "$CGROOT"
CG=$CGROOT/${P}app
APP='' WPID=''
cleanup() {
    set +e
    [[ -n $WPID ]] && { printf 'q\n' >&"${BW[1]}"; wait "$WPID"; }
    echo 0 >"$CG/cgroup.freeze" 2>/dev/null
    [[ -n $APP ]] && { kill "$APP"; wait "$APP"; }
    rmdir "$CG" 2>/dev/null
    "$DMSNAP" discard bc >/dev/null 2>&1
    fx sweep "$P" >/dev/null 2>&1
    mountpoint -q "$DMSNAP_FIXTURE_DIR" && umount "$DMSNAP_FIXTURE_DIR"
    rm -rf --one-file-system "$work" "$DMSNAP_STATE_DIR"
}
trap cleanup EXIT

m=$work/m
fx create "${P}live" 256M --fs ext4 --mount "$m" >/dev/null
cow=$(fx cow "${P}cow" 128M)
mkdir -p "$CG"
# the application: appends 4 KiB records to its own file, 1 ms apart, without fsync
bash -c 'echo $$ >"$1/cgroup.procs"; exec python3 -c "
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
rec = b\"r\" * 4096
n = 0
while True:
    os.write(fd, rec)
    n += 1
    if n % 4096 == 0:
        os.ftruncate(fd, 0)
    time.sleep(0.001)
" "$2"' _ "$CG" "$m/app.dat" </dev/null >/dev/null 2>&1 &
APP=$!
coproc BW { exec "$writer" "$m/victim.dat" $((4 << 20)); }
WPID=$BW_PID
read -r -t 60 -u "${BW[0]}" line && [[ $line == ready ]] || { say "victim writer did not start: '$line'"; exit 1; }
sleep 0.5
wcmd() {
    local line=''
    printf '%s\n' "$1" >&"${BW[1]}"
    read -r -t 120 -u "${BW[0]}" line
    printf '%s' "$line"
}
kv() { [[ $1 =~ (^|[[:space:]])$2=([^[:space:]]+) ]] && printf '%s' "${BASH_REMATCH[2]}"; }

raw=$out/raw.jsonl
: >"$raw"
for ((rep = 1; rep <= reps; rep++)); do
    order=(plain cgroup idle)
    ((rep % 2 == 0)) && order=(cgroup plain idle)
    for who in "${order[@]}"; do
        wcmd m >/dev/null
        frozen=null
        case $who in
        plain) "$DMSNAP" take bc "${P}live=$cow" --json >"$work/take.json" ;;
        cgroup)
            "$DMSNAP" take bc "${P}live=$cow" --freeze-cgroup "$CG" --json >"$work/take.json"
            frozen=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["cgroups_frozen_ms"])' "$work/take.json")
            ;;
        idle) sleep 0.3 ;;
        esac
        r=$(wcmd r)
        [[ $who == idle ]] || "$DMSNAP" merge bc >/dev/null
        printf '{"contender":"%s","rep":%d,"stall_ms":%s,"cgroup_frozen_ms":%s}\n' "$who" "$rep" "$(kv "$r" max_ms)" "$frozen" >>"$raw"
        say "rep $rep $who: victim stall $(kv "$r" max_ms) ms, cgroup frozen $frozen ms"
    done
done
kill -0 "$APP" || { say "the application died"; exit 1; }
python3 - "$raw" "$out" "$reps" "$(uname -r)" "$backing" <<'EOF'
import json, statistics, sys
raw, out, reps, kernel, backing = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
rows = [json.loads(l) for l in open(raw)]
def col(who, key):
    return [r[key] for r in rows if r["contender"] == who and r[key] is not None]
def mmm(v):
    return "%.1f / %.1f / %.1f" % (min(v), statistics.median(v), max(v))
stall = {w: col(w, "stall_ms") for w in ("plain", "cgroup", "idle")}
ratio = statistics.median(stall["cgroup"]) / statistics.median(stall["plain"])
frozen = col("cgroup", "cgroup_frozen_ms")
res = {"kernel": kernel, "reps": reps, "backing": backing, "ratio_cgroup_vs_plain": round(ratio, 3), "target": 1.2, "met": ratio <= 1.2,
       "stall_ms": {w: {"min": min(v), "median": statistics.median(v), "max": max(v)} for w, v in stall.items()},
       "cgroup_frozen_ms": {"min": min(frozen), "median": statistics.median(frozen), "max": max(frozen)}}
json.dump(res, open(out + "/cgroup.json", "w"), indent=1)
md = ["| victim stall (ms): min / median / max | %d reps, loop files on %s |" % (reps, backing), "| --- | --- |"]
md += ["| idle (noise floor) | %s |" % mmm(stall["idle"]), "| dmsnap take | %s |" % mmm(stall["plain"]),
       "| dmsnap take --freeze-cgroup | %s |" % mmm(stall["cgroup"])]
md += ["", "ratio of medians, --freeze-cgroup / plain: **%.3f** (target ≤ 1.2: %s)" % (ratio, "met" if ratio <= 1.2 else "missed"),
       "", "cgroup frozen (take JSON `cgroups_frozen_ms`): %s ms (min / median / max); kernel %s" % (mmm(frozen), kernel)]
open(out + "/cgroup.md", "w").write("\n".join(md) + "\n")
print("\n".join(md))
EOF
