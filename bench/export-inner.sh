#!/usr/bin/env bash
# export-inner.sh - the export benchmark; runs as root inside the test kernel (bench/export.sh):
#   Tests/kernel/run-in-uml.sh -- bench/export-inner.sh --out DIR [--reps N] [--bin DIR] [--writer PATH]
# One 2 GiB ext4 device (half random data, a quarter compressible text), taken once; then, in a
# rotating order per repetition: dd of the frozen image with O_DIRECT to /dev/null (the floor),
# dmsnap export to /dev/null (and with --sha256), dd | zstd -1, dmsnap export --compress zstd
# --level 1; and a writer on the live filesystem measured for the same time alone and while an
# export runs (at its default lowered priority, and with --full-speed). Writes
# DIR/export.md and DIR/export.json.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(cd "$here/.." && pwd -P)
out='' reps=3 bin=$repo/.build/release writer=$repo/.build/bench/bench-writer
while (($#)); do
    case $1 in
    --out) out=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --writer) writer=$2; shift 2 ;;
    *) echo "export-inner: unknown argument $1" >&2; exit 2 ;;
    esac
done
[[ -n $out ]] || { echo "export-inner: --out DIR is required" >&2; exit 2; }
mkdir -p "$out"
DMSNAP=$bin/dmsnap
work=$(mktemp -d /var/tmp/dmsnap-bench-export.XXXXXX)  # pids repeat from boot to boot
export DMSNAP_FIXTURE_DIR=$work/fixtures DMSNAP_STATE_DIR=$work/state DM_DISABLE_UDEV=1
P=dmsbx-
fx() { "$repo/fixtures/loopdev.sh" "$@"; }
cleanup() {
    set +e
    [[ -n ${WPID:-} ]] && { exec {wfd}>&- {rfd}<&-; kill "$WPID" 2>/dev/null; wait "$WPID" 2>/dev/null; }
    "$DMSNAP" merge bx >/dev/null 2>&1
    fx sweep "$P" >/dev/null 2>&1
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT
live=${P}live mnt=$work/${P}mnt
fx create "$live" 2G --fs ext4 --mount "$mnt" >/dev/null
cow=$(fx cow "${P}cow" 256M)
python3 -c "
import os, sys
with open(sys.argv[1], 'wb') as f:
    for _ in range(1024): f.write(os.urandom(1 << 20))" "$mnt/random.bin"
python3 -c "
import sys
line = b'dmsnap export benchmark: a line of text that compresses well, like logs and configs do.\n'
with open(sys.argv[1], 'wb') as f:
    for _ in range((512 << 20) // len(line)): f.write(line)" "$mnt/text.txt"
sync
"$DMSNAP" take bx "$live=$cow" >/dev/null
base=/dev/mapper/$live-dmsnap-base
size=$(blockdev --getsize64 "$base")
now() { local t=${EPOCHREALTIME//[.,]/}; echo $((10#$t)); }
raw=$out/export-raw.jsonl
: >"$raw"
run() { # NAME CMD...: time CMD (output to /dev/null), record seconds
    local name=$1 a b
    shift
    sync
    echo 3 >/proc/sys/vm/drop_caches
    a=$(now)
    "$@" >/dev/null 2>>"$out/export.log"
    b=$(now)
    printf '{"case":"%s","rep":%d,"seconds":%s}\n' "$name" "$rep" "$(python3 -c "print(($b - $a) / 1e6)")" >>"$raw"
}
version() { "$DMSNAP" --version; }
ddraw() { dd if="$base" bs=1M iflag=direct status=none; }
ddzstd() { dd if="$base" bs=1M iflag=direct status=none | zstd -1 -q -c; }
expraw() { "$DMSNAP" export bx "$live"; }
expsha() { "$DMSNAP" export bx "$live" --sha256; }
expzstd() { "$DMSNAP" export bx "$live" --compress zstd --level 1; }
# one read of the whole image first: the host's cache of the loop file is then the same for every
# case (else the first case of the first repetition pays for it)
dd if="$base" of=/dev/null bs=4M iflag=direct status=none
for ((rep = 1; rep <= reps; rep++)); do
    run startup version
    order=(dd export exportsha ddzstd exportzstd)
    for ((i = 0; i < ${#order[@]}; i++)); do
        case ${order[(i + rep - 1) % ${#order[@]}]} in
        dd) run dd ddraw ;;
        export) run export expraw ;;
        exportsha) run export-sha256 expsha ;;
        ddzstd) run dd-zstd ddzstd ;;
        exportzstd) run export-zstd expzstd ;;
        esac
    done
done
# the writer on the live filesystem: ops per second alone, and while an export runs
coproc BW { exec "$writer" "$mnt/bench-writer.dat" $((4 << 20)); }
WPID=$BW_PID
exec {wfd}>&"${BW[1]}" {rfd}<&"${BW[0]}"
read -r -t 60 -u "$rfd" line
[[ $line == ready ]] || { echo "writer did not start: $line" >&2; exit 1; }
kv() { [[ $1 =~ (^|[[:space:]])$2=([^[:space:]]+) ]] && printf '%s' "${BASH_REMATCH[2]}"; }
for ((rep = 1; rep <= reps; rep++)); do
    printf 'm\n' >&"$wfd"; read -r -u "$rfd" line
    sleep 4
    printf 'r\n' >&"$wfd"; read -r -u "$rfd" line
    printf '{"case":"writer-alone","rep":%d,"ops":%s,"window_ms":%s}\n' "$rep" "$(kv "$line" ops)" "$(kv "$line" window_ms)" >>"$raw"
    for mode in default full-speed; do
        flag=()
        [[ $mode == full-speed ]] && flag=(--full-speed)
        printf 'm\n' >&"$wfd"; read -r -u "$rfd" line
        "$DMSNAP" export bx "$live" "${flag[@]}" >/dev/null
        printf 'r\n' >&"$wfd"; read -r -u "$rfd" line
        case=writer-during-export
        [[ $mode == full-speed ]] && case=writer-during-export-full-speed
        printf '{"case":"%s","rep":%d,"ops":%s,"window_ms":%s}\n' "$case" "$rep" "$(kv "$line" ops)" "$(kv "$line" window_ms)" >>"$raw"
    done
done
python3 - "$raw" "$size" "$out" <<'PY'
import json, statistics, sys
raw, size, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = [json.loads(l) for l in open(raw) if l.strip()]
def med(case, key="seconds"):
    v = [x[key] for x in s if x["case"] == case]
    return statistics.median(v) if v else None
def rate(case): return size / med(case) / (1 << 20)
def ops(case): return statistics.median([x["ops"] / x["window_ms"] * 1000 for x in s if x["case"] == case])
res = {"image_bytes": size, "startup_seconds": med("startup"),
       "mib_s": {c: round(rate(c), 1) for c in ("dd", "export", "export-sha256", "dd-zstd", "export-zstd")},
       "writer_ops_s": {c: round(ops(c), 1) for c in ("writer-alone", "writer-during-export", "writer-during-export-full-speed")},
       "samples": s}
res["targets"] = [
    {"target": "export (raw) vs dd iflag=direct", "ratio": round(rate("export") / rate("dd"), 3), "goal": 0.9},
    {"target": "export --sha256 (raw) vs dd iflag=direct (no target; the hash's cost)", "ratio": round(rate("export-sha256") / rate("dd"), 3), "goal": None},
    {"target": "export --compress zstd --level 1 vs dd | zstd -1", "ratio": round(rate("export-zstd") / rate("dd-zstd"), 3), "goal": 1.0},
    {"target": "writer throughput during export vs alone", "ratio": round(ops("writer-during-export") / ops("writer-alone"), 3), "goal": 0.8},
]
for t in res["targets"]: t["met"] = None if t["goal"] is None else t["ratio"] >= t["goal"]
json.dump(res, open(f"{out}/export.json", "w"), indent=1)
L = [f"Image: {size >> 20} MiB (ext4: {size >> 21} MiB random, {size >> 22} MiB text), loop on the host's disk; medians of {len([x for x in s if x['case']=='dd'])} runs each, page cache dropped before each.",
     f"Each time is a whole command, process start included: `dmsnap --version` takes {med('startup'):.3f} s in this kernel (User-Mode Linux makes page faults dear; 9 ms on the host).", "",
     "| what | MiB/s |", "| --- | --- |"]
for c, label in (("dd", "dd if=BASE bs=1M iflag=direct of=/dev/null"), ("export", "dmsnap export > /dev/null"), ("export-sha256", "dmsnap export --sha256 > /dev/null"),
                 ("dd-zstd", "dd … | zstd -1 > /dev/null"), ("export-zstd", "dmsnap export --compress zstd --level 1 > /dev/null")):
    L.append(f"| `{label}` | {rate(c):.1f} |")
L += ["", f"Writer (4 KiB pwrite + fdatasync on the live filesystem): {ops('writer-alone'):.1f} ops/s alone, {ops('writer-during-export'):.1f} ops/s while an export runs, {ops('writer-during-export-full-speed'):.1f} ops/s while an export --full-speed runs.", "",
      "| target | ratio | goal | met |", "| --- | --- | --- | --- |"]
for t in res["targets"]:
    goal = "—" if t["goal"] is None else f"≥ {t['goal']}"
    met = "—" if t["met"] is None else ("yes" if t["met"] else "**no**")
    L.append(f"| {t['target']} | {t['ratio']:.3f} | {goal} | {met} |")
open(f"{out}/export.md", "w").write("\n".join(L) + "\n")
print("\n".join(L))
PY
