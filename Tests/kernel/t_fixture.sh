# shellcheck shell=bash
# Kernel tests of fixtures/loopdev.sh itself. Run through suite.sh (see lib.sh).

# _fx_state: everything a fixture can leave behind, for before/after comparisons:
# dm devices with our prefix, loops over files in the fixture dir, its files, and
# mounts under T_DIR.
_fx_state() {
    dm_snapshot_of_all
    losetup -l -n -O NAME,BACK-FILE 2>/dev/null | grep -F "$DMSNAP_FIXTURE_DIR" || true
    if [[ -d $DMSNAP_FIXTURE_DIR ]]; then
        (cd "$DMSNAP_FIXTURE_DIR" && find . -mindepth 1 | LC_ALL=C sort)
    fi
    grep -F " $T_DIR" /proc/self/mounts || true
}

_assert_nothing_left() {
    local state
    state=$(_fx_state)
    assert_eq "$state" "" "${1:-fixture left something behind}"
}

# _assert_one_error_line: $T_OUT is exactly one "loopdev: ..." line
_assert_one_error_line() {
    local lines
    lines=$(printf '%s\n' "$T_OUT" | wc -l)
    assert_eq "$lines" 1 "$1: error output is not one line: '$T_OUT'"
    assert_contains "$T_OUT" "loopdev: " "$1: error line"
}

test_create_ext4_mount_write_checksum() {
    local name=${T_PREFIX}ext4 mnt=$T_DIR/${T_PREFIX}mnt dev
    dev=$(fx create "$name" 64M --fs ext4 --mount "$mnt")
    assert_eq "$dev" "/dev/mapper/$name" "create prints the device"
    [[ -b $dev ]] || fail "$dev is not a block device"
    assert_eq "$(blockdev --getsize64 "$dev")" $((64 << 20)) "device size"
    assert_eq "$(dmsetup table "$name" | cut -d' ' -f1-3)" "0 131072 linear" "dm table"
    assert_file_exists "$DMSNAP_FIXTURE_DIR/$name.img" "backing file"
    mountpoint -q "$mnt" || fail "$mnt is not mounted"
    assert_contains "$(findmnt -n -o FSTYPE "$mnt")" ext4 "fs type"

    mkdir -p "$mnt/sub/deeper"
    printf 'hello\n' >"$mnt/a.txt"
    head -c 300000 /dev/urandom >"$mnt/sub/random.bin"
    printf 'x' >"$mnt/sub/deeper/z"
    : >"$mnt/empty"
    sync

    local dir1 dir2 dev1 dev2 dir3
    dir1=$(fx checksum "$mnt")
    [[ $dir1 =~ ^[0-9a-f]{64}$ ]] || fail "checksum of a dir is not a sha256 hex digest: '$dir1'"
    umount "$mnt"
    dev1=$(fx checksum "$dev")
    [[ $dev1 =~ ^[0-9a-f]{64}$ ]] || fail "checksum of a device is not a sha256 hex digest: '$dev1'"
    dev2=$(fx checksum "$dev")
    assert_eq "$dev2" "$dev1" "device checksum is stable"
    assert_eq "$dev1" "$(sha256sum <"$dev" | cut -d' ' -f1)" "device checksum is sha256 of the content"
    mount "$dev" "$mnt"
    dir2=$(fx checksum "$mnt")
    assert_eq "$dir2" "$dir1" "dir checksum is stable across unmount/remount"

    # the same files elsewhere (no lost+found, other creation order) hash the same
    mkdir -p "$T_DIR/copy/sub/deeper"
    printf 'x' >"$T_DIR/copy/sub/deeper/z"
    : >"$T_DIR/copy/empty"
    cp "$mnt/sub/random.bin" "$T_DIR/copy/sub/random.bin"
    printf 'hello\n' >"$T_DIR/copy/a.txt"
    assert_eq "$(fx checksum "$T_DIR/copy")" "$dir1" "same files, same dir checksum"
    printf 'hello!\n' >"$T_DIR/copy/a.txt"
    assert_ne "$(fx checksum "$T_DIR/copy")" "$dir1" "changed content changes the checksum"
    printf 'hello\n' >"$T_DIR/copy/a.txt"
    mv "$T_DIR/copy/empty" "$T_DIR/copy/empty2"
    dir3=$(fx checksum "$T_DIR/copy")
    assert_ne "$dir3" "$dir1" "renamed file changes the checksum"

    # a write through the fs changes the device checksum
    printf 'more\n' >>"$mnt/a.txt"
    umount "$mnt"
    assert_ne "$(fx checksum "$dev")" "$dev1" "device checksum after a write"

    assert_exit 0 "destroy" -- fx destroy "$name"
    assert_eq "$T_OUT" "" "destroy is quiet"
    _assert_nothing_left "destroy left something behind"
}

test_checksum_errors() {
    assert_exit '!0' "checksum of a missing path" -- fx checksum "$T_DIR/nope"
    _assert_one_error_line "checksum of a missing path"
    assert_contains "$T_OUT" "no such file" "checksum of a missing path"
    assert_exit 2 "checksum without argument" -- fx checksum
    mkdir -p "$T_DIR/e1" "$T_DIR/e2/lost+found"
    printf 'junk' >"$T_DIR/e2/lost+found/x"
    assert_eq "$(fx checksum "$T_DIR/e1")" "$(fx checksum "$T_DIR/e2")" "lost+found is skipped"
}

test_cow_gives_block_device() {
    local name=${T_PREFIX}cow loop
    loop=$(fx cow "$name" 16M)
    [[ $loop =~ ^/dev/loop[0-9]+$ ]] || fail "cow did not print a loop device: '$loop'"
    [[ -b $loop ]] || fail "$loop is not a block device"
    assert_eq "$(blockdev --getsize64 "$loop")" $((16 << 20)) "cow size"
    assert_eq "$(losetup -n -O BACK-FILE "$loop" | sed 's/ *$//')" "$DMSNAP_FIXTURE_DIR/$name.img" "cow backing file"
    assert_eq "$(dmsetup info -c --noheadings -o name | grep -Fx "$name" || true)" "" "cow makes no dm device"
    assert_eq "$(head -c 4096 "$loop" | tr -d '\0' | wc -c)" 0 "a new cow reads zeros"
    assert_exit '!0' "second cow with the same name" -- fx cow "$name" 16M
    _assert_one_error_line "second cow"
    assert_exit 0 "destroy cow" -- fx destroy "$name"
    _assert_nothing_left "destroy of a cow left something"
}

test_destroy_is_idempotent() {
    local name=${T_PREFIX}d
    assert_exit 0 "destroy of nothing" -- fx destroy "$name"
    assert_eq "$T_OUT" "" "destroy of nothing is quiet"

    fx create "$name" 64M --fs ext4 --mount "$T_DIR/m" >/dev/null
    # an extra read-only loop over the device, mounted too (as for browsing a base)
    local ro
    ro=$(losetup -r -f --show "/dev/mapper/$name")
    mkdir -p "$T_DIR/m2"
    mount -o ro,noload "$ro" "$T_DIR/m2"
    assert_exit 0 "destroy while mounted" -- fx destroy "$name"
    mountpoint -q "$T_DIR/m" && fail "$T_DIR/m is still mounted"
    mountpoint -q "$T_DIR/m2" && fail "$T_DIR/m2 is still mounted"
    [[ -r /sys/block/${ro#/dev/}/loop/backing_file ]] && fail "loop $ro over the device still attached"
    _assert_nothing_left "destroy left something"
    assert_exit 0 "destroy again" -- fx destroy "$name"
    assert_eq "$T_OUT" "" "second destroy is quiet"

    # a leftover backing file only (no devices)
    mkdir -p "$DMSNAP_FIXTURE_DIR"
    : >"$DMSNAP_FIXTURE_DIR/$name.img"
    assert_exit 0 "destroy of a lone file" -- fx destroy "$name"
    assert_no_file "$DMSNAP_FIXTURE_DIR/$name.img"
}

test_sweep_mounted_suspended() {
    local name=${T_PREFIX}left mnt=$T_DIR/${T_PREFIX}mnt
    fx create "$name" 64M --fs ext4 --mount "$mnt" >/dev/null
    printf 'data\n' >"$mnt/f"
    fx cow "${T_PREFIX}c" 8M >/dev/null
    mkdir -p "$DMSNAP_FIXTURE_DIR/${T_PREFIX}state/x"
    # frozen and suspended, as a crash in the middle of a take leaves it
    fsfreeze -f "$mnt"
    dmsetup suspend --nolockfs "$name"
    assert_contains "$(dmsetup info -c --noheadings -o suspended "$name")" Suspended "device is suspended"

    # an unrelated device must survive the sweep
    fx create "other-${T_PREFIX}keep" 1M >/dev/null

    assert_exit 0 "sweep" -- fx sweep "$T_PREFIX"
    assert_contains "$T_OUT" "unmounted $mnt" "sweep reports the unmount"
    assert_contains "$T_OUT" "removed dm device $name" "sweep reports the dm device"
    assert_contains "$T_OUT" "deleted $DMSNAP_FIXTURE_DIR/${T_PREFIX}state" "sweep reports the state dir"
    mountpoint -q "$mnt" && fail "$mnt still mounted"
    assert_eq "$(dmsetup info -c --noheadings -o name "other-${T_PREFIX}keep")" "other-${T_PREFIX}keep" "unrelated device kept"
    assert_file_exists "$DMSNAP_FIXTURE_DIR/other-${T_PREFIX}keep.img"
    fx destroy "other-${T_PREFIX}keep"
    _assert_nothing_left "sweep left something"
    assert_exit 0 "sweep of nothing" -- fx sweep "$T_PREFIX"
    assert_eq "$T_OUT" "" "sweep of nothing is quiet"
}

test_sweep_snapshot_stack() {
    # the stack dmsnap builds (see KERNEL.md): live = snapshot of base + cow, a
    # read-only loop over the base mounted, the live device frozen and suspended
    local live=${T_PREFIX}live base=${T_PREFIX}live-base cow table size
    fx create "$live" 64M --fs ext4 --mount "$T_DIR/live" >/dev/null
    printf 'before\n' >"$T_DIR/live/f"
    sync
    cow=$(fx cow "${T_PREFIX}cow" 16M)
    table=$(dmsetup table "$live")
    size=$(blockdev --getsz "/dev/mapper/$live")
    dmsetup create "$base" --table "$table"
    dmsetup load "$live" --table "0 $size snapshot /dev/mapper/$base $cow P 8"
    dmsetup suspend "$live"
    dmsetup resume "$live"
    printf 'after\n' >"$T_DIR/live/f"
    sync
    assert_contains "$(dmsetup status "$live")" snapshot "live is a snapshot"
    local ro
    ro=$(losetup -r -f --show "/dev/mapper/$base")
    mkdir -p "$T_DIR/base"
    mount -o ro,noload "$ro" "$T_DIR/base"
    assert_eq "$(cat "$T_DIR/base/f")" before "base holds the frozen image"
    fsfreeze -f "$T_DIR/live"
    dmsetup suspend --nolockfs "$live"

    assert_exit 0 "sweep of a snapshot stack" -- fx sweep "$T_PREFIX"
    assert_contains "$T_OUT" "removed dm device $base" "base removed"
    assert_contains "$T_OUT" "removed dm device $live" "live removed"
    [[ -r /sys/block/${ro#/dev/}/loop/backing_file ]] && fail "loop $ro over the base still attached"
    _assert_nothing_left "sweep left something"
}

test_sweep_busy_device_gets_error_table() {
    # a device held open by a process: sweep swaps in an error table; the device
    # goes once the holder lets go (here: sweep reports failure, then succeeds)
    local name=${T_PREFIX}busy pid
    fx create "$name" 1M >/dev/null
    sleep 30 3<"/dev/mapper/$name" &
    pid=$!
    assert_exit '!0' "sweep while a process holds the device" -- fx sweep "$T_PREFIX"
    assert_contains "$T_OUT" "loaded error table into busy dm device $name" "error table"
    assert_contains "$T_OUT" "loopdev: sweep: $name: dm device still busy" "busy reported"
    assert_contains "$(dmsetup table "$name")" error "table is error now"
    kill "$pid"
    wait "$pid" || true
    assert_exit 0 "sweep after the holder is gone" -- fx sweep "$T_PREFIX"
    _assert_nothing_left "sweep left something"
}

test_bad_inputs_fail_cleanly() {
    local before long
    long=$(printf 'a%.0s' {1..101})
    fx create "${T_PREFIX}exists" 1M >/dev/null
    before=$(_fx_state)
    local -a cases=(
        "bad name (space)|create|${T_PREFIX}a b|1M"
        "bad name (leading dot)|create|.${T_PREFIX}x|1M"
        "bad name (slash)|create|${T_PREFIX}x/y|1M"
        "bad name (101 chars)|create|$long|1M"
        "bad name (empty)|create||1M"
        "bad size (not sector multiple)|create|${T_PREFIX}x|1000"
        "bad size (zero)|create|${T_PREFIX}x|0"
        "bad size (unit)|create|${T_PREFIX}x|12X"
        "bad size (fraction)|create|${T_PREFIX}x|1.5M"
        "bad size (negative)|create|${T_PREFIX}x|-5"
        "bad size (empty)|create|${T_PREFIX}x|"
        "bad size (huge)|create|${T_PREFIX}x|99999999999T"
        "existing name|create|${T_PREFIX}exists|1M"
        "cow bad name|cow|-x|1M"
        "cow bad size|cow|${T_PREFIX}x|77"
        "destroy bad name|destroy|../x"
        "sweep bad prefix|sweep|"
        "sweep bad prefix (glob)|sweep|*"
    )
    local c label cmd a1 a2
    for c in "${cases[@]}"; do
        IFS='|' read -r label cmd a1 a2 <<<"$c"
        if [[ $cmd == create || $cmd == cow ]]; then
            assert_exit '!0' "$label" -- fx "$cmd" "$a1" "$a2"
        else
            assert_exit '!0' "$label" -- fx "$cmd" "$a1"
        fi
        _assert_one_error_line "$label"
    done
    assert_exit '!0' "unknown fs" -- fx create "${T_PREFIX}x" 1M --fs btrfs
    _assert_one_error_line "unknown fs"
    assert_contains "$T_OUT" "unknown fs" "unknown fs"
    assert_exit '!0' "xfs too small" -- fx create "${T_PREFIX}x" 64M --fs xfs
    _assert_one_error_line "xfs too small"
    assert_exit '!0' "mount without fs" -- fx create "${T_PREFIX}x" 1M --mount "$T_DIR/mm"
    _assert_one_error_line "mount without fs"
    assert_exit '!0' "existing backing file" -- fx cow "${T_PREFIX}exists" 1M
    _assert_one_error_line "existing backing file"
    assert_exit 2 "unknown command" -- fx frobnicate
    _assert_one_error_line "unknown command"
    assert_exit 2 "create without size" -- fx create "${T_PREFIX}x"
    _assert_one_error_line "create without size"
    assert_exit 2 "unknown option" -- fx create "${T_PREFIX}x" 1M --bogus
    _assert_one_error_line "unknown option"
    assert_exit 0 "help" -- fx help
    assert_contains "$T_OUT" "usage:" "help"
    assert_exit 2 "no arguments" -- fx
    assert_contains "$T_OUT" "usage:" "no arguments"

    # failure midway (mkfs done, mount point is a file): everything is undone
    : >"$T_DIR/afile"
    assert_exit '!0' "mount onto a file" -- fx create "${T_PREFIX}x" 64M --fs ext4 --mount "$T_DIR/afile"
    _assert_one_error_line "mount onto a file"
    # failure midway in mount itself (fs type mismatch is impossible here, so an
    # unmountable target: a directory on a read-only bind mount)
    mkdir -p "$T_DIR/${T_PREFIX}ro/sub"
    mount --bind "$T_DIR/${T_PREFIX}ro" "$T_DIR/${T_PREFIX}ro"
    mount -o remount,bind,ro "$T_DIR/${T_PREFIX}ro"
    assert_exit '!0' "mount below a read-only dir" -- fx create "${T_PREFIX}x" 64M --fs ext4 --mount "$T_DIR/${T_PREFIX}ro/new/dir"
    _assert_one_error_line "mount below a read-only dir"
    umount "$T_DIR/${T_PREFIX}ro"

    assert_eq "$(_fx_state)" "$before" "failed commands changed the fixture state"
    fx destroy "${T_PREFIX}exists"
    _assert_nothing_left
}

test_create_xfs() {
    local name=${T_PREFIX}xfs mnt=$T_DIR/${T_PREFIX}xfs sum1 sum2
    assert_exit 0 "create xfs" -- fx create "$name" 320M --fs xfs --mount "$mnt"
    assert_eq "$T_OUT" "/dev/mapper/$name" "create xfs prints the device"
    assert_eq "$(findmnt -n -o FSTYPE "$mnt")" xfs "fs type"
    seq 1 10000 >"$mnt/numbers"
    sum1=$(fx checksum "$mnt")
    umount "$mnt"
    mount "/dev/mapper/$name" "$mnt"
    sum2=$(fx checksum "$mnt")
    assert_eq "$sum2" "$sum1" "xfs dir checksum stable across remount"
    fx destroy "$name"
    _assert_nothing_left
}
