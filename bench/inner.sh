#!/usr/bin/env bash
# inner.sh - the benchmark itself; runs as root inside the test kernel (User-Mode Linux):
#   Tests/kernel/run-in-uml.sh -- bench/inner.sh [--quick] [--reps N] --out DIR [...]
# bench/run.sh builds everything and calls this; Tests/kernel/t_bench_smoke.sh runs it --quick.
#
#   --quick          1 repetition, small devices (the smoke mode, well under a minute)
#   --reps N         repetitions of every case (default 5; --quick: 1)
#   --out DIR        where raw.jsonl, meta.json, traces/ and, via report.py, results.json and
#                    table.md go (created)
#   --bin DIR        directory with dmsnap and dmsnap-probe (default .build/release)
#   --writer PATH    bench-writer binary (default .build/bench/bench-writer, compiled from
#                    bench/writer.c when missing or older)
#   --prefix P       name prefix of every dm device, loop file, mount and VG (default dmsb-)
#   --work DIR       scratch directory (default /var/tmp/dmsnap-bench/run-…; removed at the end)
#   --backing hostfs|tmpfs
#                    where the loop devices' backing files live: hostfs (default; the fixture
#                    directory on the host's disk: every flush is a host fsync, as for
#                    fixtures/loopdev.sh) or a tmpfs inside the test kernel (no host disk in the
#                    numbers: less noise, but flushes cost nothing; boot with --mem 2G)
#
# Cases (every repetition runs each contender once, in a rotating order):
#   take   writer stall and wall time of one take: dmsnap take | lvcreate -s | the kernel floor
#          (dmsnap-probe floor); plus "idle": the writer's worst write in 1 s (0.3 s --quick)
#          with nothing happening
#   scale  stall and wall time of dmsnap take for sets of 1, 4 and 16 devices (writer on #1), and
#          the kernel floor of the 16-device take (dmsnap-probe floor with 16 devices)
#   merge  64 MiB of changes (8 MiB --quick), then: dmsnap merge (online, mounted) | the kernel
#          merge floor (dmsnap-probe mergefloor) | lvconvert --merge (unmounted origin)
# Everything it creates is named with the prefix and removed at the end, also on failure.
set -euo pipefail
shopt -s inherit_errexit

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(cd "$here/.." && pwd -P)
T_START=$EPOCHREALTIME
say() {
    local t=${EPOCHREALTIME//[.,]/} s=${T_START//[.,]/}
    printf 'bench: [%5.1fs] %s\n' "$(((t - s) / 1000))e-3" "$*" >&2
}
die() {
    say "error: $*"
    exit 1
}

quick=0 reps='' out='' bin=$repo/.build/release writer=$repo/.build/bench/bench-writer prefix=dmsb- work='' backing=hostfs
while (($#)); do
    case $1 in
    --quick) quick=1; shift ;;
    --reps) reps=${2:?--reps needs a number}; shift 2 ;;
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --bin) bin=${2:?--bin needs a directory}; shift 2 ;;
    --writer) writer=${2:?--writer needs a path}; shift 2 ;;
    --prefix) prefix=${2:?--prefix needs a value}; shift 2 ;;
    --work) work=${2:?--work needs a directory}; shift 2 ;;
    --backing) backing=${2:?--backing needs hostfs or tmpfs}; shift 2 ;;
    -h | --help) sed -n '2,29s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
done
[[ -n $out ]] || die "--out DIR is required"
[[ $backing == hostfs || $backing == tmpfs ]] || die "--backing: hostfs or tmpfs, not '$backing'"
if [[ -z $reps ]]; then
    reps=5
    ((quick)) && reps=1
fi
[[ $reps =~ ^[1-9][0-9]*$ ]] || die "--reps: bad number '$reps'"
[[ $prefix =~ ^[A-Za-z0-9_+][A-Za-z0-9._+-]{0,40}$ ]] || die "--prefix: bad prefix '$prefix'"
[[ $EUID -eq 0 && -e /dev/mapper/control ]] ||
    die "must run as root in a kernel with device-mapper: Tests/kernel/run-in-uml.sh -- bench/inner.sh ..."
DMSNAP=$bin/dmsnap
PROBE=$bin/dmsnap-probe
[[ -x $DMSNAP && -x $PROBE ]] || die "$bin: no dmsnap / dmsnap-probe (build first: swift build -c release)"

if ((quick)); then
    take_size=64M take_cow=32M change_mb=8 set_dev=16M set_cow=8M region=$((1 << 20)) settle=0.1 idle=0.3
else
    take_size=256M take_cow=128M change_mb=64 set_dev=32M set_cow=16M region=$((4 << 20)) settle=0.2 idle=1
fi
set_sizes=(1 4 16)
set_max=16

if [[ ! -x $writer || $here/writer.c -nt $writer ]]; then
    mkdir -p "$(dirname "$writer")"
    cc=$(command -v cc || command -v gcc || command -v clang || true)
    [[ -n $cc ]] || die "no C compiler to build $here/writer.c"
    tmp=$writer.tmp.$$.$RANDOM
    "$cc" -O2 -pthread -o "$tmp" "$here/writer.c" && mv -f "$tmp" "$writer" || die "cannot compile $here/writer.c"
fi

if [[ -z $work ]]; then
    boot=$(cut -c1-8 /proc/sys/kernel/random/boot_id 2>/dev/null || echo $RANDOM)
    work=/var/tmp/dmsnap-bench/run-$boot-$$
fi
work_created=0
[[ -e $work ]] || work_created=1
mkdir -p "$work" "$out/traces"
work=$(cd "$work" && pwd -P)
out=$(cd "$out" && pwd -P)
export DMSNAP_FIXTURE_DIR=${DMSNAP_FIXTURE_DIR:-$work/fixtures}
tmpfs_dir=''
export DMSNAP_STATE_DIR=$work/state
fixdir=$DMSNAP_FIXTURE_DIR
export DM_DISABLE_UDEV=1 LVM_SUPPRESS_FD_WARNINGS=1
unset DMSNAP_TRACE DMSNAP_DEBUG DMSNAP_TEST_FAULT
raw=$out/raw.jsonl
: >"$raw"
log=$out/bench.log
: >"$log"
fx() { "$repo/fixtures/loopdev.sh" "$@"; }

# ---- LVM (restricted to our own loop device, no udev, no backups on the shared root) ----
vg=${prefix}vg
vg_dm=${vg//-/--}
pv=''
lvm_conf() {
    printf '%s' "activation { udev_sync=0 udev_rules=0 monitoring=0 } global { use_lvmpolld=0 } \
backup { backup=0 archive=0 } devices { obtain_device_list_from_udev=0 use_devicesfile=0 hints=\"none\" \
filter=[ \"a|^${pv}\$|\", \"r|.*|\" ] global_filter=[ \"a|^${pv}\$|\", \"r|.*|\" ] }"
}
lvmx() { lvm "$1" --config "$(lvm_conf)" "${@:2}"; }

# ---- cleanup: LVM first (its dm names do not start with the prefix), then our own devices in
# bulk (few forks), then fixtures/loopdev.sh sweep as the safety net ----
cleanup() {
    local rc=$? n mp
    local -a mps=() dms=() loops=()
    set +e
    [[ -n ${wfd:-} ]] && exec {wfd}>&-
    [[ -n ${rfd:-} ]] && exec {rfd}<&-
    if [[ -n ${WRITER_PID:-} ]]; then
        kill "$WRITER_PID" 2>/dev/null
        wait "$WRITER_PID" 2>/dev/null
    fi
    while read -r _ mp _; do
        [[ $mp == "$work/"* && $mp != "$tmpfs_dir" ]] && mps+=("$mp")
    done </proc/self/mounts
    if ((rc != 0)); then
        for mp in "${mps[@]}"; do fsfreeze -u "$mp" >/dev/null 2>&1; done
    fi
    ((${#mps[@]})) && umount "${mps[@]}" >>"$log" 2>&1
    if [[ -n $pv ]]; then
        lvmx vgremove -f -y "$vg" >>"$log" 2>&1 && lvmx pvremove -ff -y "$pv" >>"$log" 2>&1 || {
            # whatever lvm left: snapshots before the devices they hold
            for _ in 1 2 3; do
                while read -r n _; do
                    [[ $n == "$vg_dm"-* ]] && dmsetup remove "$n" >>"$log" 2>&1
                done < <(dmsetup ls 2>/dev/null | sort -r)
            done
        }
    fi
    # our dm devices: the live ones first (a snapshot holds its base open)
    local -a bases=()
    while read -r n _; do
        [[ $n == "$prefix"* ]] || continue
        if [[ $n == *-base ]]; then bases+=("$n"); else dms+=("$n"); fi
    done < <(dmsetup ls 2>/dev/null)
    dms+=("${bases[@]}")
    ((${#dms[@]})) && dmsetup remove "${dms[@]}" >>"$log" 2>&1
    for n in /sys/block/loop*; do
        [[ -r $n/loop/backing_file && $(<"$n/loop/backing_file") == "$fixdir/$prefix"* ]] && loops+=("/dev/${n##*/}")
    done
    ((${#loops[@]})) && losetup -d "${loops[@]}" >>"$log" 2>&1
    rm -f "$fixdir/$prefix"*.img
    if leftovers; then
        fx sweep "$prefix" >>"$log" 2>&1 || say "warning: sweep $prefix reported problems (see $log)"
    fi
    if [[ -n $tmpfs_dir ]] && mountpoint -q "$tmpfs_dir"; then
        umount "$tmpfs_dir" || say "warning: cannot unmount $tmpfs_dir"
    fi
    if ((work_created)) && ! grep -qF " $work" /proc/self/mounts; then
        rm -rf --one-file-system "$work"
    fi
    ((rc == 0)) && say "cleaned up" || say "failed (exit $rc); log: $log"
    exit "$rc"
}
# leftovers: true when a dm device, loop, mount or fixture file of ours exists (cheap: one fork)
leftovers() {
    local n mp
    while read -r n _; do [[ $n == "$prefix"* || $n == "$vg_dm"-* ]] && return 0; done < <(dmsetup ls 2>/dev/null)
    for n in /sys/block/loop*; do
        [[ -r $n/loop/backing_file && $(<"$n/loop/backing_file") == *"/$prefix"* ]] && return 0
    done
    while read -r _ mp _; do [[ $mp == *"/$prefix"* && $mp != "$tmpfs_dir" ]] && return 0; done </proc/self/mounts
    for n in "$fixdir/$prefix"*; do [[ -e $n ]] && return 0; done
    return 1
}
trap cleanup EXIT
trap 'say "error: line $LINENO: command failed (exit $?): $BASH_COMMAND"' ERR
trap 'exit 130' INT
trap 'exit 143' TERM
if leftovers; then fx sweep "$prefix" >>"$log" 2>&1 || true; fi
if [[ $backing == tmpfs ]]; then
    # a fresh directory of our own (never over scripts or outputs: the host root is shared)
    tmpfs_dir=$work/${prefix}tmpfs
    mkdir -p "$tmpfs_dir"
    mount -t tmpfs -o mode=700 "${prefix}tmpfs" "$tmpfs_dir"
    export DMSNAP_FIXTURE_DIR=$tmpfs_dir/fixtures
    fixdir=$DMSNAP_FIXTURE_DIR
fi

# ---- helpers ----------------------------------------------------------------------------
now_us() { local t=${EPOCHREALTIME//[.,]/}; printf -v "$1" '%s' $((10#$t)); }
us_to_ms() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); }

# writer_start DIR: the writer on DIR/bench-writer.dat, as a coprocess
WRITER_PID=''
writer_start() {
    coproc BW { exec "$writer" "$1/bench-writer.dat" "$region" 2>>"$log"; }
    WRITER_PID=$BW_PID
    exec {wfd}>&"${BW[1]}" {rfd}<&"${BW[0]}"
    local line=''
    read -r -t 60 -u "$rfd" line || true
    [[ $line == ready ]] || die "writer did not start on $1: '$line'"
    sleep "$settle" # let it settle into its rhythm
}
# writer_cmd m|r: prints the writer's answer
writer_cmd() {
    local line=''
    printf '%s\n' "$1" >&"$wfd"
    read -r -t 120 -u "$rfd" line || true
    [[ $line == marked || $line == report* ]] || die "writer answered '$line' to '$1'"
    printf '%s' "$line"
}
writer_stop() {
    local line='' rc=0
    printf 'q\n' >&"$wfd"
    read -r -t 60 -u "$rfd" line || true
    exec {wfd}>&- {rfd}<&-
    wfd='' rfd=''
    wait "$WRITER_PID" || rc=$?
    WRITER_PID=''
    ((rc == 0)) || die "writer failed (exit $rc): a write failed during the benchmark"
}

# kv TEXT KEY: the value of KEY=VALUE in TEXT
kv() { [[ $1 =~ (^|[[:space:]])$2=([^[:space:]]+) ]] && printf '%s' "${BASH_REMATCH[2]}"; }

# record CASE CONTENDER REP STALL_MS WALL_MS [EXTRA_JSON_OBJECT_BODY]
record() {
    local stall=${4:-null}
    printf '{"case":"%s","contender":"%s","rep":%d,"stall_ms":%s,"wall_ms":%s%s}\n' \
        "$1" "$2" "$3" "$stall" "$5" "${6:+,$6}" >>"$raw"
    say "$1 $2 rep $3: stall ${stall} ms, wall $5 ms"
}

# timed OUTFILE CMD...: runs CMD with stdout+stderr into OUTFILE; sets WALL (ms)
timed() {
    local o=$1 a b rc=0
    shift
    now_us a
    "$@" >"$o" 2>&1 || rc=$?
    now_us b
    WALL=$(us_to_ms $((b - a)))
    if ((rc != 0)); then
        sed 's/^/    | /' "$o" >&2
        die "failed (exit $rc): $*"
    fi
}

# measure CASE CONTENDER REP MOUNT TRACEFILE CMD...: runs CMD while the writer runs on MOUNT;
# records the writer's worst write in the window around CMD and CMD's wall time
measure() {
    local c=$1 who=$2 rep=$3 mnt=$4 trace=$5 rep_line extra
    shift 5
    writer_start "$mnt"
    writer_cmd m >/dev/null
    timed "$trace" "$@"
    rep_line=$(writer_cmd r)
    writer_stop
    extra="\"writer_ops\":$(kv "$rep_line" ops),\"trace\":\"${trace#"$out"/}\""
    record "$c" "$who" "$rep" "$(kv "$rep_line" max_ms)" "$WALL" "$extra"
}

# rotate N ITEMS...: ITEMS rotated left by N
rotate() {
    local n=$1
    shift
    local -a a=("$@")
    n=$((n % ${#a[@]}))
    printf '%s\n' "${a[@]:n}" "${a[@]:0:n}"
}

# ---- meta ----------------------------------------------------------------------------------
cat >"$out/meta.json" <<EOF
{"mode":"$( ((quick)) && echo quick || echo full)","reps":$reps,"backing":"$backing","kernel":"$(uname -r)","uml_mem_kb":$(awk '/MemTotal/{print $2}' /proc/meminfo),
 "take_size":"$take_size","take_cow":"$take_cow","change_mib":$change_mb,"set_device_size":"$set_dev","set_cow":"$set_cow",
 "set_sizes":[1,4,16],"writer_region_bytes":$region,"dmsnap":"$DMSNAP","lvm":"$(lvm version 2>/dev/null | awk '/LVM version/{print $3}')",
 "started":"$(date -u +%Y-%m-%dT%H:%M:%SZ)"}
EOF

# ---- devices -----------------------------------------------------------------------------
# Every live device has the structure fixtures/loopdev.sh create builds (sparse file in the
# fixture directory -> loop device -> dm linear over the whole loop -> ext4, mounted), made in
# bulk by bench/mkdevs.py from one ext4 image per size: fork+exec costs 50-150 ms under UML,
# and loopdev.sh takes ~2 s per device.
mkdir -p "$fixdir"
declare -A LOOP=()
# make_live SIZE NAME...: dm devices NAME (ext4), mounted at $work/${prefix}mnt-NAME-without-prefix
make_live() {
    local size=$1 n tmpl=$fixdir/${prefix}template-$1.img name loop
    local -a args=()
    shift
    if [[ ! -e $tmpl ]]; then
        truncate -s "$size" "$tmpl"
        mkfs.ext4 -q -F "$tmpl"
    fi
    for n in "$@"; do args+=("$n=$work/${prefix}mnt-${n#"$prefix"}"); done
    while read -r name loop; do LOOP[$name]=$loop; done < <(python3 "$here/mkdevs.py" live "$fixdir" "$tmpl" "${args[@]}")
    for n in "$@"; do [[ -n ${LOOP[$n]:-} && -b /dev/mapper/$n ]] || die "could not make device $n"; done
}
# make_cow SIZE NAME...: loop devices over sparse files NAME.img; LOOP[NAME] is the path
make_cow() {
    local size=$1 n name loop
    shift
    while read -r name loop; do LOOP[$name]=$loop; done < <(python3 "$here/mkdevs.py" cow "$fixdir" "$(numfmt --from=iec "$size")" "$@")
    for n in "$@"; do [[ -b ${LOOP[$n]:-} ]] || die "could not make loop device $n"; done
}

say "setting up devices (take/merge: ${take_size} ext4 x3; scale: ${set_max} x ${set_dev} ext4)"
ds=${prefix}ds fl=${prefix}fl
m_ds=$work/${prefix}mnt-ds m_fl=$work/${prefix}mnt-fl m_lvm=$work/${prefix}mnt-lvm
make_live "$take_size" "$ds" "$fl"
say "take devices made"
make_cow "$take_cow" "${prefix}ds-cow" "${prefix}fl-cow"
cow_ds=${LOOP[${prefix}ds-cow]} cow_fl=${LOOP[${prefix}fl-cow]}
# LVM: a VG on its own loop device; the LV has the same size, fs and backing as the others
pv_mb=$(($(numfmt --from=iec "$take_size") / 1048576 + $(numfmt --from=iec "$take_cow") / 1048576 + 16))
make_cow "${pv_mb}M" "${prefix}pv"
pv=${LOOP[${prefix}pv]}
lvmx vgcreate -q -y "$vg" "$pv" >>"$log" 2>&1
lvmx lvcreate -q -y -Wn -L "$take_size" -n lv "$vg" >>"$log" 2>&1
lv_dev=/dev/mapper/$vg_dm-lv
[[ -b $lv_dev ]] || die "$lv_dev did not appear"
dd if="$fixdir/${prefix}template-$take_size.img" of="$lv_dev" bs=1M conv=sparse,fsync status=none
mkdir -p "$m_lvm"
mount "$lv_dev" "$m_lvm"
say "lvm made"

# the scale devices
declare -a sdev=() smnt=() scow=()
for ((i = 1; i <= set_max; i++)); do
    sdev[i]=$(printf '%ss%02d' "$prefix" "$i")
    smnt[i]=$work/${prefix}mnt-${sdev[i]#"$prefix"}
done
make_live "$set_dev" "${sdev[@]}"
make_cow "$set_cow" "${sdev[@]/%/-cow}"
for ((i = 1; i <= set_max; i++)); do scow[i]=${LOOP[${sdev[i]}-cow]}; done

# the merge case overwrites this file in place: every run changes the same blocks
head -c "$((change_mb << 20))" /dev/urandom >"$work/change.bin"
for m in "$m_ds" "$m_fl" "$m_lvm"; do
    dd if="$work/change.bin" of="$m/change.bin" bs=1M conv=fsync status=none
done
sync
say "devices ready"

# ---- case 1+2: take ------------------------------------------------------------------------
take_dmsnap() { env DMSNAP_TRACE=1 "$DMSNAP" take bt "$ds=$cow_ds"; }
take_floor() { "$PROBE" floor "$fl=$cow_fl"; }
take_lvm() { lvmx lvcreate -q -y -s -L "$take_cow" -n snap "$vg/lv"; }

for ((rep = 1; rep <= reps; rep++)); do
    while read -r -u 9 who; do
        t=$out/traces/take-$who-$rep.log
        case $who in
        dmsnap)
            measure take dmsnap "$rep" "$m_ds" "$t" take_dmsnap
            if ((!quick)); then
                # diagnostics for the wall time: the CLI's bare start-up, and the status it prints
                # and what any exec costs in this kernel (/bin/true)
                timed "$out/traces/true-$rep.log" /bin/true
                tr=$WALL
                timed "$out/traces/version-$rep.log" "$DMSNAP" --version
                v=$WALL
                timed "$out/traces/status-$rep.log" "$DMSNAP" status bt
                printf '{"case":"diag","contender":"dmsnap","rep":%d,"true_ms":%s,"version_ms":%s,"status_ms":%s}\n' "$rep" "$tr" "$v" "$WALL" >>"$raw"
            fi
            "$DMSNAP" merge bt >>"$log" 2>&1
            ;;
        floor)
            measure take floor "$rep" "$m_fl" "$t" take_floor
            "$PROBE" mergefloor "$fl" >>"$log" 2>&1
            ;;
        lvm)
            measure take lvm "$rep" "$m_lvm" "$t" take_lvm
            lvmx lvremove -q -f "$vg/snap" >>"$log" 2>&1
            ;;
        idle)
            measure take idle "$rep" "$m_ds" "$t" sleep "$idle"
            ;;
        esac
    done 9< <(rotate $((rep - 1)) dmsnap lvm floor idle)
done

# ---- case 3: set scale -----------------------------------------------------------------------
say "case scale"
for ((rep = 1; rep <= reps; rep++)); do
    while read -r -u 9 k; do
        pairs=()
        if [[ $k == floor16 ]]; then
            # the kernel floor of the same 16-device take: the planner's plan, run in-process
            for ((i = 1; i <= set_max; i++)); do pairs+=("${sdev[i]}=${scow[i]}"); done
            measure scale floor16 "$rep" "${smnt[1]}" "$out/traces/scale-floor16-$rep.log" "$PROBE" floor "${pairs[@]}"
            "$PROBE" mergefloor "${sdev[@]}" >>"$log" 2>&1
            continue
        fi
        for ((i = 1; i <= k; i++)); do pairs+=("${sdev[i]}=${scow[i]}"); done
        measure scale "set$k" "$rep" "${smnt[1]}" "$out/traces/scale-set$k-$rep.log" \
            env DMSNAP_TRACE=1 "$DMSNAP" take "bs$k" "${pairs[@]}"
        "$DMSNAP" merge "bs$k" >>"$log" 2>&1
    done 9< <(rotate $((rep - 1)) "${set_sizes[@]}" floor16)
done

# ---- case 4: merge ---------------------------------------------------------------------------
say "case merge"
# change DIR: overwrite DIR/change.bin in place with fresh data (every block becomes a COW chunk)
change() {
    dd if="$work/change.bin" of="$1/change.bin" bs=1M conv=notrunc,fsync status=none
    sync
}
for ((rep = 1; rep <= reps; rep++)); do
    while read -r -u 9 who; do
        t=$out/traces/merge-$who-$rep.log
        case $who in
        dmsnap)
            "$DMSNAP" take bm "$ds=$cow_ds" >>"$log" 2>&1
            change "$m_ds"
            timed "$t" env DMSNAP_TRACE=1 "$DMSNAP" merge bm
            record merge dmsnap "$rep" null "$WALL" "\"trace\":\"${t#"$out"/}\""
            ;;
        floor)
            "$PROBE" floor "$fl=$cow_fl" >>"$log" 2>&1
            change "$m_fl"
            timed "$t" "$PROBE" mergefloor "$fl"
            line=$(grep '^mergefloor ' "$t")
            # the floor is the kernel's merge (load → ALLOCATED == METADATA); the restore after
            # it (original table back, base removed) is kept separately
            record merge floor "$rep" null "$(kv "$line" merge_ms)" \
                "\"process_wall_ms\":$WALL,\"finish_ms\":$(kv "$line" finish_ms),\"total_ms\":$(kv "$line" total_ms),\"polls\":$(kv "$line" polls)"
            ;;
        lvm)
            lvmx lvcreate -q -y -s -L "$take_cow" -n snap "$vg/lv" >>"$log" 2>&1
            change "$m_lvm"
            umount "$m_lvm"
            timed "$t" lvmx lvconvert -q --merge -i 1 "$vg/snap"
            mount "$lv_dev" "$m_lvm"
            record merge lvm "$rep" null "$WALL" "\"interval_s\":1"
            ;;
        esac
    done 9< <(rotate $((rep - 1)) dmsnap floor lvm)
done

# ---- report ----------------------------------------------------------------------------------
say "report"
python3 "$here/report.py" --out "$out" >/dev/null
say "results: $out/results.json, $out/table.md"
