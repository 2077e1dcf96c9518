#!/usr/bin/env bash
# server-inner.sh - the real-server window benchmark (issue 14); runs as root inside the test
# kernel: Tests/kernel/run-in-uml.sh --mem 2G -- bench/server-inner.sh --out DIR [--reps N]
# [--bin DIR] [--backing hostfs|tmpfs] (bench/server.sh builds and boots). In one boot:
#   udev  the freeze → thaw window of 'dmsnap take' (DMSNAP_TRACE) with systemd-udevd running
#         and libdevmapper synchronising with it, against the same take with no udevd running
#         (alternating, udevd started and stopped between them). Target: ≤ 1.5×.
#   busy  under a buffered writer (dd of 300 MiB at a time into a 1 GiB ext4, without stopping),
#         dmsnap's window against a bare syncfs, FIFREEZE, FITHAW on the same filesystem (its
#         FIFREEZE → FITHAW). Target: ≤ 1.2×.
# Writes raw.jsonl, server.json and server.md to DIR.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd -P)
repo=$(cd "$here/.." && pwd -P)
reps=10 out='' bin=$repo/.build/release P=dmsv- backing=hostfs
while (($#)); do
    case $1 in
    --reps) reps=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --backing) backing=$2; shift 2 ;;
    *) echo "server-inner.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[[ -n $out ]] || { echo "server-inner.sh: --out DIR is required" >&2; exit 2; }
mkdir -p "$out"
out=$(cd "$out" && pwd -P)
DMSNAP=$bin/dmsnap
say() { echo "server: $*" >&2; }
fx() { "$repo/fixtures/loopdev.sh" "$@"; }
# shellcheck source=Tests/kernel/lib.sh
source "$repo/Tests/kernel/lib.sh"
export DMSNAP_STATE_DIR=/run/dmsnap-bench-state DM_DISABLE_UDEV=1

work=$(mktemp -d /var/tmp/dmsnap-server-bench.XXXXXX)
export DMSNAP_FIXTURE_DIR=$work/fixtures
mkdir -p "$DMSNAP_FIXTURE_DIR"
[[ $backing == tmpfs ]] && mount -t tmpfs -o size=1800M none "$DMSNAP_FIXTURE_DIR"
DD=''
cleanup() {
    set +e
    [[ -n $DD ]] && { kill "$DD"; wait "$DD"; }
    "$DMSNAP" discard bs >/dev/null 2>&1
    udev_stop
    fx sweep "$P" >/dev/null 2>&1
    mountpoint -q "$DMSNAP_FIXTURE_DIR" && umount "$DMSNAP_FIXTURE_DIR"
    rm -rf --one-file-system "$work" "$DMSNAP_STATE_DIR"
}
trap cleanup EXIT

# window TRACE_FILE: dmsnap's freeze → thaw window (ms) from its trace
window() {
    awk '/trace: \+[0-9.]+ ms freeze / { if (s == "") s = $3 } /trace: \+[0-9.]+ ms done thaw / { e = $3 }
        END { printf "%.3f", e - s }' "$1"
}
raw=$out/raw.jsonl
: >"$raw"
rec() { printf '{"case":"%s","contender":"%s","rep":%d,"window_ms":%s}\n' "$1" "$2" "$3" "$4" >>"$raw"; say "$1 $2 rep $3: window $4 ms"; }

# ---- udev -----------------------------------------------------------------------------------
m=$work/m
fx create "${P}live" 256M --fs ext4 --mount "$m" >/dev/null
cow=$(fx cow "${P}cow" 64M)
for ((rep = 1; rep <= reps; rep++)); do
    order=(udev noudev)
    ((rep % 2 == 0)) && order=(noudev udev)
    for who in "${order[@]}"; do
        # udevd running (libdevmapper synchronising with it), or not running at all
        if [[ $who == udev ]]; then
            udev_start || { say "systemd-udevd did not start"; exit 1; }
        else
            udev_stop
            export DM_DISABLE_UDEV=1
        fi
        # a little to freeze, written back beforehand: the window then holds the kernel's work
        # and what udev does meanwhile, not a host fsync of this data
        head -c 256K /dev/urandom >"$m/f$rep"
        sync -f "$m"
        [[ $who == noudev ]] || udevadm settle --timeout=60
        env DMSNAP_TRACE=1 "$DMSNAP" take bs "${P}live=$cow" >"$work/trace" 2>&1
        rec udev "$who" "$rep" "$(window "$work/trace")"
        "$DMSNAP" merge bs >/dev/null
        [[ $who == noudev ]] || udevadm settle --timeout=60
    done
done
udev_stop
umount "$m"

# ---- busy -----------------------------------------------------------------------------------
b=$work/b
fx create "${P}busy" 1G --fs ext4 --mount "$b" >/dev/null
# (room for what the writer puts in the COW between a take and its merge)
bcow=$(fx cow "${P}bcow" 768M)
# the bare sequence: one syncfs, then FIFREEZE and FITHAW, timed from the freeze to the thaw
bare() {
    python3 - "$b" <<'EOF'
import ctypes, fcntl, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open(sys.argv[1], os.O_RDONLY)
libc.syncfs(fd)
t0 = time.monotonic()
fcntl.ioctl(fd, 0xC0045877, 0)  # FIFREEZE
fcntl.ioctl(fd, 0xC0045878, 0)  # FITHAW
print("%.3f" % ((time.monotonic() - t0) * 1000))
EOF
}
bash -c 'while :; do dd if=/dev/zero of="$1/big" bs=1M count=300 status=none; rm -f "$1/big"; done' _ "$b" &
DD=$!
sleep 3
for ((rep = 1; rep <= reps; rep++)); do
    order=(dmsnap bare)
    ((rep % 2 == 0)) && order=(bare dmsnap)
    for who in "${order[@]}"; do
        if [[ $who == dmsnap ]]; then
            env DMSNAP_TRACE=1 "$DMSNAP" take bs "${P}busy=$bcow" >"$work/trace" 2>&1
            rec busy dmsnap "$rep" "$(window "$work/trace")"
            grep -o 'synced [0-9]* times, the last in [0-9]* ms' "$work/trace" | head -1 >&2 || true
            "$DMSNAP" merge bs >/dev/null
        else
            rec busy bare "$rep" "$(bare)"
        fi
        sleep 1
    done
done
kill "$DD"
wait "$DD" 2>/dev/null || true
DD=''

python3 - "$raw" "$out" "$reps" "$(uname -r)" "$backing" <<'EOF'
import json, statistics, sys
raw, out, reps, kernel, backing = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
rows = [json.loads(l) for l in open(raw)]
def w(case, who):
    return [r["window_ms"] for r in rows if r["case"] == case and r["contender"] == who]
def mmm(v):
    return "%.1f / %.1f / %.1f" % (min(v), statistics.median(v), max(v))
cases = [("udev", "udev", "noudev", 1.5, "with systemd-udevd vs without"), ("busy", "dmsnap", "bare", 1.2, "dmsnap vs bare FIFREEZE→FITHAW under a writer")]
res = {"kernel": kernel, "reps": reps, "backing": backing, "cases": {}}
md = ["| case | contender | window ms (min / median / max) | ratio of medians | target | verdict |", "| --- | --- | --- | --- | --- | --- |"]
for case, num, den, target, what in cases:
    a, b = w(case, num), w(case, den)
    ratio = statistics.median(a) / statistics.median(b)
    res["cases"][case] = {num: a, den: b, "ratio": round(ratio, 3), "target": target, "met": ratio <= target}
    md.append("| %s (%s) | %s | %s | **%.2f** | ≤ %.1f× | %s |" % (case, what, num, mmm(a), ratio, target, "met" if ratio <= target else "missed"))
    md.append("| | %s | %s | | | |" % (den, mmm(b)))
md += ["", "%d repetitions per contender, loop files on %s, kernel %s" % (reps, backing, kernel)]
json.dump(res, open(out + "/server.json", "w"), indent=1)
open(out + "/server.md", "w").write("\n".join(md) + "\n")
print("\n".join(md))
EOF
