# shellcheck shell=bash
# Lifecycle tests: take / status / merge / discard on real dm devices.

DMSNAP=${DMSNAP:-$T_REPO/.build/debug/dmsnap}
PROBE=${PROBE:-$T_REPO/.build/debug/dmsnap-probe}

# start_writer DIR: appends 4 KiB records with fdatasync to DIR/writer.log until stopped;
# exits non-zero on the first failed write. Sets WRITER_PID.
start_writer() {
    local dir=$1
    (
        i=0
        while :; do
            i=$((i + 1))
            printf 'record %08d %0*d\n' "$i" 4070 0 | dd of="$dir/writer.log" bs=4096 oflag=append conv=notrunc,fdatasync status=none || exit 3
        done
    ) </dev/null >>"$T_DIR/writer.out" 2>&1 &
    WRITER_PID=$!
}

stop_writer() {
    local pid=$1 rc=0
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || rc=$?
    # killed by SIGTERM = 143; anything else (3) means a write failed
    [[ $rc == 143 || $rc == 0 ]] || fail "writer failed with status $rc"
}

json_field() { # json_field FILE PYTHON_EXPR
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"
}

test_take_merge_ext4_with_writer() {
    local live=${T_PREFIX}live mnt=$T_DIR/mnt cow
    fx create "$live" 128M --fs ext4 --mount "$mnt" >/dev/null
    cow=$(fx cow "${T_PREFIX}cow" 64M)
    head -c 8M /dev/urandom >"$mnt/before.bin"
    sync
    start_writer "$mnt"
    local pid=$WRITER_PID
    sleep 0.3
    assert_exit 0 "take" -- "$DMSNAP" take s1 "$live=$cow"
    # The frozen image: checksum of the base right after take (the writer keeps going on live).
    local base_sum
    base_sum=$(fx checksum "/dev/mapper/${live}-dmsnap-base")
    sleep 0.5
    stop_writer "$pid"
    head -c 4M /dev/urandom >"$mnt/after.bin"
    sync
    # live is still the same device, still mounted, still writable; the base did not change.
    assert_eq "$(fx checksum "/dev/mapper/${live}-dmsnap-base")" "$base_sum" "base changed after take"
    assert_contains "$(dmsetup table "$live")" "snapshot" "live does not run a snapshot table"
    assert_exit 0 "status" -- "$DMSNAP" status s1 --json
    printf '%s' "$T_OUT" >"$T_DIR/status.json"
    assert_eq "$(json_field "$T_DIR/status.json" 'd["state"]')" active
    assert_eq "$(json_field "$T_DIR/status.json" 'd["devices"][0]["device"]')" "$live"
    local live_sum
    live_sum=$(fx checksum "$mnt")
    assert_exit 0 "merge" -- "$DMSNAP" merge s1
    assert_eq "$(fx checksum "$mnt")" "$live_sum" "content changed by merge"
    assert_eq "$(dmsetup table "$live" | awk '{print $3}')" linear "original table not restored"
    assert_exit 0 "no base left" -- bash -c "! dmsetup info '${live}-dmsnap-base' >/dev/null 2>&1"
    assert_eq "$(head -c 4096 "$cow" | tr -d '\0' | wc -c)" 0 "COW header not wiped"
    assert_exit 3 "status of merged set" -- "$DMSNAP" status s1
    umount "$mnt"
    mount "/dev/mapper/$live" "$mnt"
    assert_eq "$(fx checksum "$mnt")" "$live_sum" "content lost after remount"
}

test_take_discard_restores_frozen_image() {
    local live=${T_PREFIX}live mnt=$T_DIR/mnt cow
    fx create "$live" 64M --fs ext4 --mount "$mnt" >/dev/null
    cow=$(fx cow "${T_PREFIX}cow" 32M)
    head -c 2M /dev/urandom >"$mnt/a.bin"
    sync
    assert_exit 0 "take" -- "$DMSNAP" take s1 "$live=$cow"
    local frozen
    frozen=$(fx checksum "/dev/mapper/${live}-dmsnap-base")
    head -c 3M /dev/urandom >"$mnt/b.bin"
    rm "$mnt/a.bin"
    sync
    local before
    before=$(dm_snapshot_of_all)
    assert_exit 3 "discard while mounted is refused" -- "$DMSNAP" discard s1
    assert_contains "$T_OUT" "mounted"
    assert_eq "$(dm_snapshot_of_all)" "$before" "refused discard changed the kernel"
    umount "$mnt"
    assert_exit 0 "discard" -- "$DMSNAP" discard s1
    assert_eq "$(fx checksum "/dev/mapper/$live")" "$frozen" "device is not the frozen image"
    mount "/dev/mapper/$live" "$mnt"
    assert_file_exists "$mnt/a.bin"
    assert_no_file "$mnt/b.bin"
}
