#!/usr/bin/env bash
# cowfile-inner.sh - the COW-file benchmark; runs as root inside the test kernel (bench/cowfile.sh):
#   Tests/kernel/run-in-uml.sh -- bench/cowfile-inner.sh --out DIR [--reps N] [--seconds S] [--bin DIR]
#       [--monitor-seconds M] [--idle-seconds I] [--prefix P] [--quick]
# In one boot, interleaved (the order rotates per repetition), fio random 4 KiB direct writes
# (iodepth 16, S seconds) on a raw 1 GiB device:
#   none          no snapshot
#   block         a dmsnap set with a block-device COW (a dm-linear device over a loop: an LV on a disk)
#   file          a dmsnap set with a COW file on ext4 on the same kind of device, loop with direct I/O
#   file-buffered the same through the page cache (--buffered-cow)
#   file-prealloc a COW file the user made with fallocate (no block allocation while writing)
#   lvm-none      an LVM LV of the same size on the same kind of backing, no snapshot
#   lvm-snap      the LV with an LVM snapshot (lvcreate -s)
# and sequential 1 MiB direct writes for block / file / file-buffered. Then the monitor: a COW
# file of 16 MiB under a writer limited to 20 MiB/s for M s (70), `dmsnap monitor --grow 16M`
# growing it, and
# `dmsnap-probe watch` (an independent observer polling the status every 1 ms) timing every
# crossing of the threshold until the kernel sees the grown size; and the monitor's CPU while
# the sets are idle for I s each (20): the grown COW, then beside it a COW file of the default 20%
# of a 64 GiB device (a production size; sparse, so it costs nothing here), then a 16 MiB one
# beside both (the worst case: a tiny COW is watched closely by design). --quick: one
# repetition of 1 s, M=8, I=3 (the kernel suite's smoke test). Writes DIR/cowfile.md and .json.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(cd "$here/.." && pwd -P)
out='' reps=3 seconds=5 bin=$repo/.build/release monitor_seconds=70 idle_seconds=20 P=dmsbc-
size_mb=1024 cow_mb=700 fs_mb=3072 big=64G
while (($#)); do
    case $1 in
    --out) out=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --monitor-seconds) monitor_seconds=$2; shift 2 ;;
    --idle-seconds) idle_seconds=$2; shift 2 ;;
    --prefix) P=$2; shift 2 ;;
    --quick) reps=1 seconds=1 monitor_seconds=8 idle_seconds=3 size_mb=256 cow_mb=200 fs_mb=768 big=2G; shift ;;
    *) echo "cowfile-inner: unknown argument $1" >&2; exit 2 ;;
    esac
done
[[ -n $out ]] || { echo "cowfile-inner: --out DIR is required" >&2; exit 2; }
mkdir -p "$out"
DMSNAP=$bin/dmsnap PROBE=$bin/dmsnap-probe
[[ -x $PROBE ]] || PROBE=$repo/.build/debug/dmsnap-probe
work=$(mktemp -d /var/tmp/dmsnap-bench-cow.XXXXXX)  # pids repeat from boot to boot
export DMSNAP_FIXTURE_DIR=$work/fixtures DMSNAP_STATE_DIR=$work/state DM_DISABLE_UDEV=1 LVM_SUPPRESS_FD_WARNINGS=1
log=$out/bench.log
: >"$log"
say() { echo "cowfile: $*" >&2; }
fx() { "$repo/fixtures/loopdev.sh" "$@"; }
vg=${P}vg vg_dm=${P//-/--}vg pv=''
lvm_conf() {
    printf '%s' "activation { udev_sync=0 udev_rules=0 monitoring=0 } global { use_lvmpolld=0 } \
backup { backup=0 archive=0 } devices { obtain_device_list_from_udev=0 use_devicesfile=0 hints=\"none\" \
filter=[ \"a|^${pv}\$|\", \"r|.*|\" ] global_filter=[ \"a|^${pv}\$|\", \"r|.*|\" ] }"
}
lvmx() { lvm "$1" --config "$(lvm_conf)" "${@:2}"; }
MON=''
cleanup() {
    set +e
    [[ -n $MON ]] && { kill "$MON" 2>/dev/null; wait "$MON" 2>/dev/null; }
    for s in bs bm bb bi; do "$DMSNAP" discard "$s" >/dev/null 2>&1; done
    lvmx vgremove -f -y "$vg" >/dev/null 2>&1
    fx sweep "$P" >/dev/null 2>&1
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT

live=${P}live dev=/dev/mapper/${P}live cf=$work/cowfs
fx create "${P}cowfs" "${fs_mb}M" --fs ext4 --mount "$cf" >/dev/null
fx create "$live" "${size_mb}M" >/dev/null
blk=$(fx create "${P}blk" "${cow_mb}M")
pv=$(fx cow "${P}pv" "$((size_mb + cow_mb + 100))M")
lvmx pvcreate -q -y "$pv" >>"$log" 2>&1
lvmx vgcreate -q -y "$vg" "$pv" >>"$log" 2>&1
lvmx lvcreate -q -y -Wn -L "${size_mb}M" -n lv "$vg" >>"$log" 2>&1
lv=/dev/mapper/$vg_dm-lv
[[ -b $lv ]] || { say "$lv did not appear"; exit 1; }
# both origins fully written once, so no write lands on a hole of the backing file
dd if=/dev/zero of="$dev" bs=4M count=$((size_mb / 4)) oflag=direct status=none
dd if=/dev/zero of="$lv" bs=4M count=$((size_mb / 4)) oflag=direct status=none
say "devices made"

raw=$out/cowfile-raw.jsonl
: >"$raw"
# fio_on DEV RW BS: IOPS and MiB/s of S seconds of direct writes on DEV
fio_on() {
    fio --name=w --filename="$1" --rw="$2" --bs="$3" --direct=1 --ioengine=libaio --iodepth=16 --size=$((size_mb / 2))M \
        --runtime="$seconds" --time_based --randrepeat=0 --norandommap --output-format=json 2>>"$log" |
        python3 -c 'import json,sys; w=json.load(sys.stdin)["jobs"][0]["write"]; print(w["iops"], w["bw"] / 1024)'
}
record() { # NAME REP RW IOPS MIBS
    printf '{"case":"%s","rep":%s,"rw":"%s","iops":%s,"mibs":%s}\n' "$1" "$2" "$3" "$4" "$5" >>"$raw"
}
measure() { # CASE REP RW BS
    local c=$1 rep=$2 rw=$3 bs=$4 r target=$dev
    case $c in
    none) ;;
    block) "$DMSNAP" take bs "$live=$blk" --no-syslog >>"$log" ;;
    file) "$DMSNAP" take bs "$live=$cf/c.cow" --cow-size "${cow_mb}M" --no-syslog >>"$log" ;;
    file-buffered) "$DMSNAP" take bs "$live=$cf/c.cow" --cow-size "${cow_mb}M" --buffered-cow --no-syslog >>"$log" ;;
    file-prealloc) fallocate -l "${cow_mb}M" "$cf/p.cow"; "$DMSNAP" take bs "$live=$cf/p.cow" --no-syslog >>"$log" ;;
    lvm-none) target=$lv ;;
    lvm-snap) target=$lv; lvmx lvcreate -q -y -s -L "${cow_mb}M" -n snap "$vg/lv" >>"$log" 2>&1 ;;
    esac
    if [[ $c == file ]]; then
        local loop
        loop=$(losetup -n -O NAME -j "$cf/c.cow")
        DIO=$(cat "/sys/block/${loop#/dev/}/loop/dio")
    fi
    sync
    r=$(fio_on "$target" "$rw" "$bs")
    record "$c" "$rep" "$rw" $r
    case $c in
    block | file | file-buffered) "$DMSNAP" discard bs --no-syslog >>"$log" ;;
    file-prealloc) "$DMSNAP" discard bs --no-syslog >>"$log"; rm -f "$cf/p.cow" ;;
    lvm-snap) lvmx lvremove -q -y "$vg/snap" >>"$log" 2>&1 ;;
    esac
}
cases=(none block file file-buffered file-prealloc lvm-none lvm-snap)
DIO=0
for ((rep = 0; rep < reps; rep++)); do
    n=${#cases[@]}
    for ((i = 0; i < n; i++)); do measure "${cases[(i + rep) % n]}" "$rep" randwrite 4k; done
    for c in block file file-buffered file-prealloc; do measure "$c" "$rep" write 1M; done
    say "repetition $((rep + 1)) of $reps done"
done

# ---- the monitor: reaction to threshold crossings, then CPU while idle ----
"$DMSNAP" take bm "$live=$cf/m.cow:16M" --no-syslog >>"$log"
"$DMSNAP" monitor --json --no-syslog --grow 16M >"$out/monitor.jsonl" 2>>"$log" &
MON=$!
sleep 1
"$PROBE" watch "$live" 70 "$((monitor_seconds + 2))" >"$out/watch.txt" &
watcher=$!
sleep 1
fio --name=r --filename="$dev" --rw=randwrite --bs=4k --direct=1 --ioengine=libaio --iodepth=4 --size="${size_mb}M" \
    --rate=20m --runtime="$monitor_seconds" --time_based --randrepeat=0 --norandommap >>"$log" 2>&1 || true
wait "$watcher"
cow_after=$(stat -c %s "$cf/m.cow")
state=$("$DMSNAP" status bm --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
# idle: the same set (its COW grown) alone; a production-sized COW file alone; a 16 MiB one beside it
ticks() { awk '{print $14 + $15}' "/proc/$MON/stat"; }
hz=$(getconf CLK_TCK)
idle() { # SECONDS -> percent of one core
    local a b t0 t1
    a=$(ticks); t0=${EPOCHREALTIME/[.,]/}
    sleep "$1"
    b=$(ticks); t1=${EPOCHREALTIME/[.,]/}
    python3 -c "print(round(($b - $a) / $hz / (($t1 - $t0) / 1e6) * 100, 3))"
}
sleep 2
idle_grown=$(idle "$idle_seconds")
"$DMSNAP" discard bm --no-syslog >>"$log"
fx create "${P}big" "$big" >/dev/null
bigfs_mb=$(( $(numfmt --from=iec "$big") / 1048576 / 4 ))
fx create "${P}bigfs" "${bigfs_mb}M" --fs ext4 --mount "$work/bigfs" >/dev/null
"$DMSNAP" take bb "${P}big=$work/bigfs/b.cow" --no-syslog >>"$log"
sleep 2
idle_large=$(idle "$idle_seconds")
fx create "${P}small" 256M >/dev/null
"$DMSNAP" take bi "${P}small=$cf/i.cow:16M" --no-syslog >>"$log"
sleep 2
idle_small=$(idle "$idle_seconds")
kill "$MON"
wait "$MON" || true
MON=''
grows=$(grep -c '"event":"grew"' "$out/monitor.jsonl" || true)
"$DMSNAP" discard bi --no-syslog >>"$log"
"$DMSNAP" discard bb --no-syslog >>"$log"

python3 "$here/cowfile-report.py" "$raw" "$out/watch.txt" "$out" "$DIO" "$idle_large" "$idle_small" "$idle_grown" "$grows" \
    "$cow_after" "$state" "$reps" "$seconds" "$monitor_seconds"
say "done"
