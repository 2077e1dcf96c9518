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
    local pid=$1 rc=0
    kill "$pid" 2>/dev/null || true
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
