#!/usr/bin/env bash
# export-inner.sh - the export benchmark; runs as root inside the test kernel (bench/export.sh):
#   Tests/kernel/run-in-uml.sh -- bench/export-inner.sh --out DIR [--reps N] [--bin DIR] [--writer PATH]
# One 512 MiB ext4 device (half random data, a quarter compressible text), taken once; then, in a
# rotating order per repetition: dd of the frozen image with O_DIRECT to /dev/null (the floor),
# dmsnap export to /dev/null, dd | zstd -1, dmsnap export --compress zstd --level 1; and a writer
# on the live filesystem measured for the same time alone and while an export runs. Writes
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
work=/var/tmp/dmsnap-bench-export-$$
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
mkdir -p "$work"
live=${P}live mnt=$work/${P}mnt
fx create "$live" 512M --fs ext4 --mount "$mnt" >/dev/null
cow=$(fx cow "${P}cow" 256M)
head -c 256M /dev/urandom >"$mnt/random.bin"
python3 -c "
import sys
line = b'dmsnap export benchmark: a line of text that compresses well, like logs and configs do.\n'
with open(sys.argv[1], 'wb') as f:
    for _ in range((128 << 20) // len(line)): f.write(line)" "$mnt/text.txt"
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
ddraw() { dd if="$base" bs=1M iflag=direct status=none; }
ddzstd() { dd if="$base" bs=1M iflag=direct status=none | zstd -1 -q -c; }
expraw() { "$DMSNAP" export bx "$live"; }
expzstd() { "$DMSNAP" export bx "$live" --compress zstd --level 1; }
for ((rep = 1; rep <= reps; rep++)); do
    order=(dd export ddzstd exportzstd)
    for ((i = 0; i < ${#order[@]}; i++)); do
        case ${order[(i + rep - 1) % ${#order[@]}]} in
        dd) run dd ddraw ;;
        export) run export expraw ;;
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
    printf 'm\n' >&"$wfd"; read -r -u "$rfd" line
    a=$(now)
    "$DMSNAP" export bx "$live" >/dev/null
    b=$(now)
    printf 'r\n' >&"$wfd"; read -r -u "$rfd" line
    printf '{"case":"writer-during-export","rep":%d,"ops":%s,"window_ms":%s}\n' "$rep" "$(kv "$line" ops)" "$(kv "$line" window_ms)" >>"$raw"
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
res = {"image_bytes": size,
       "mib_s": {c: round(rate(c), 1) for c in ("dd", "export", "dd-zstd", "export-zstd")},
       "writer_ops_s": {c: round(ops(c), 1) for c in ("writer-alone", "writer-during-export")},
       "samples": s}
res["targets"] = [
    {"target": "export (raw) vs dd iflag=direct", "ratio": round(rate("export") / rate("dd"), 3), "goal": 0.9},
    {"target": "export --compress zstd --level 1 vs dd | zstd -1", "ratio": round(rate("export-zstd") / rate("dd-zstd"), 3), "goal": 1.0},
    {"target": "writer throughput during export vs alone", "ratio": round(ops("writer-during-export") / ops("writer-alone"), 3), "goal": 0.8},
]
for t in res["targets"]: t["met"] = t["ratio"] >= t["goal"]
json.dump(res, open(f"{out}/export.json", "w"), indent=1)
L = [f"Image: {size >> 20} MiB (ext4: 256 MiB random, 128 MiB text), loop on the host's disk; medians of {len([x for x in s if x['case']=='dd'])} runs each, page cache dropped before each.", "",
     "| what | MiB/s |", "| --- | --- |"]
for c, label in (("dd", "dd if=BASE bs=1M iflag=direct of=/dev/null"), ("export", "dmsnap export > /dev/null"),
                 ("dd-zstd", "dd … | zstd -1 > /dev/null"), ("export-zstd", "dmsnap export --compress zstd --level 1 > /dev/null")):
    L.append(f"| `{label}` | {rate(c):.1f} |")
L += ["", f"Writer (4 KiB pwrite + fdatasync on the live filesystem): {ops('writer-alone'):.1f} ops/s alone, {ops('writer-during-export'):.1f} ops/s while an export runs.", "",
      "| target | ratio | goal | met |", "| --- | --- | --- | --- |"]
for t in res["targets"]:
    L.append(f"| {t['target']} | {t['ratio']:.3f} | ≥ {t['goal']} | {'yes' if t['met'] else '**no**'} |")
open(f"{out}/export.md", "w").write("\n".join(L) + "\n")
print("\n".join(L))
PY
