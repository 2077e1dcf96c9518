# shellcheck shell=bash
# Helpers shared by the dmsnap kernel tests (sourced by suite.sh after lib.sh, via t_*.sh).

DMSNAP=${DMSNAP:-$T_REPO/.build/debug/dmsnap}
# the same commands with the fault-injection hook (DMSNAP_TEST_FAULT); never shipped
DMSNAP_TEST=${DMSNAP_TEST:-$T_REPO/.build/debug/dmsnap-test}
PROBE=${PROBE:-$T_REPO/.build/debug/dmsnap-probe}

# start_writer DIR: appends 4 KiB records with fdatasync to DIR/writer.log until stopped;
# exits 3 on the first failed write. Sets WRITER_PID.
start_writer() {
    local dir=$1
    (
        # on SIGTERM the write under way ends first (else its dd could keep the file open and the
        # filesystem busy for a moment after stop_writer returns)
        trap 'exit 0' TERM
        i=0
        while :; do
            i=$((i + 1))
            printf 'record %08d %0*d\n' "$i" 4079 0 | dd of="$dir/writer.log" bs=4096 oflag=append conv=notrunc,fdatasync status=none || exit 3
        done
    ) </dev/null >>"$T_DIR/writer.out" 2>&1 &
    WRITER_PID=$!
}

# stop_writer PID: stops the writer and fails the test if any of its writes failed.
stop_writer() {
    local pid=$1 rc=0 i
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        pkill -KILL -P "$pid" 2>/dev/null || true
        kill -KILL "$pid" 2>/dev/null || true
        fail "the writer did not stop within 10 s: a write is blocked (a filesystem frozen, a device suspended?)"
    fi
    wait "$pid" 2>/dev/null || rc=$?
    [[ $rc == 143 || $rc == 0 ]] || fail "writer failed with status $rc: $(cat "$T_DIR/writer.out" 2>/dev/null)"
}

# json FILE PYTHON_EXPR: evaluates EXPR with d = the parsed JSON file.
json() {
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"
}

# kernel_state: every dm device's info and table plus the mount table lines of our prefix,
# for "nothing changed" comparisons.
kernel_state() {
    dmsetup info -c --noheadings -o name,major,minor,attr,open,segments,uuid 2>/dev/null | sort
    dmsetup table 2>/dev/null | sort
    grep -F "$T_PREFIX" /proc/self/mounts | sort || true
}

# base_of NAME: the hidden base device dmsnap makes for NAME.
base_of() { printf '/dev/mapper/%s-dmsnap-base' "$1"; }

# mount_base_ro NAME DIR: mounts the frozen image of NAME (read-only loop over its base).
mount_base_ro() {
    local loop fstype
    loop=$(losetup -r -f --show "$(base_of "$1")")
    fstype=$(blkid -o value -s TYPE "$loop")
    mkdir -p "$2"
    case $fstype in
    xfs) mount -o ro,norecovery,nouuid "$loop" "$2" ;;
    *) mount -o ro,noload "$loop" "$2" ;;
    esac
}

umount_base_ro() {
    local loop
    loop=$(findmnt -n -o SOURCE "$1")
    umount "$1"
    losetup -d "$loop"
}

# header_is_zero PATH: true when the first 4 KiB of PATH are zero.
header_is_zero() {
    [[ $(head -c 4096 "$1" | tr -d '\0' | wc -c) == 0 ]]
}

# setup_two: two mounted ext4 devices D1, D2 (at M1, M2) with 1 MiB of data each, and two COWs
# C1, C2 (16 MiB).
setup_two() {
    D1=${T_PREFIX}a D2=${T_PREFIX}b M1=$T_DIR/ma M2=$T_DIR/mb
    fx create "$D1" 64M --fs ext4 --mount "$M1" >/dev/null
    fx create "$D2" 64M --fs ext4 --mount "$M2" >/dev/null
    C1=$(fx cow "${T_PREFIX}c1" 16M)
    C2=$(fx cow "${T_PREFIX}c2" 16M)
    head -c 1M /dev/urandom >"$M1/f"
    head -c 1M /dev/urandom >"$M2/f"
    sync
}

# set_table NAME TABLE: replace NAME's table (load, suspend, resume), e.g. to make a COW fail.
set_table() {
    dmsetup load "$1" --table "$2"
    dmsetup suspend "$1"
    dmsetup resume "$1"
}

# scatter_writes FILE: overwrite every other 4 KiB block of FILE's first 8 MiB (1024 chunks that
# are not next to each other: a merge copies them one by one), then fsync.
scatter_writes() {
    python3 - "$1" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT)
for i in range(0, 2048, 2):
    os.pwrite(fd, os.urandom(4096), i * 4096)
os.fsync(fd)
os.close(fd)
PY
}

# cow_device NAME SIZE [TABLE_TAIL]: a loop device over a fixture file and a dm device NAME over
# it (linear, or "0 SECTORS TABLE_TAIL" with LOOP substituted), so a test can make the COW slow
# or failing later (set_table). Sets COW_LOOP and COW_SECTORS.
cow_device() {
    COW_LOOP=$(fx cow "$1-file" "$2")
    COW_SECTORS=$(blockdev --getsz "$COW_LOOP")
    local tail=${3:-linear LOOP 0}
    dmsetup create "$1" --table "0 $COW_SECTORS ${tail//LOOP/$COW_LOOP}"
}

# cgroup_setup: the cgroup2 hierarchy (mounted if the test kernel has not yet) and a cgroup CG
# for this test; CGROOT is the mount.
cgroup_setup() {
    CGROOT=/sys/fs/cgroup
    mountpoint -q "$CGROOT" || mount -t cgroup2 none "$CGROOT"
    CG=$CGROOT/${T_PREFIX}app
    mkdir -p "$CG"
}

# cgroup_cleanup: moves every process of CG back to the root and removes it.
cgroup_cleanup() {
    [[ -d ${CG:-} ]] || return 0
    echo 0 >"$CG/cgroup.freeze" 2>/dev/null || true
    local p
    while read -r p; do echo "$p" >"$CGROOT/cgroup.procs" 2>/dev/null || true; done <"$CG/cgroup.procs"
    rmdir "$CG" 2>/dev/null || true
}

frozen() { awk '$1 == "frozen" {print $2}' "$CG/cgroup.events"; }
