# shellcheck shell=bash
# COW files (issue 13): take / merge / discard with COWs that are files dmsnap creates on another
# filesystem and runs on loop devices it attaches itself; the monitor that grows them; extend;
# every bad input refused with nothing changed and no file left behind. Data checked by sha256.
# shellcheck source=Tests/kernel/common.sh
source "$T_REPO/Tests/kernel/common.sh"

# cow_fs [SIZE]: a separate ext4 filesystem for COW files, mounted at CF.
cow_fs() {
    CF=$T_DIR/cowfs
    fx create "${T_PREFIX}cowfs" "${1:-512M}" --fs ext4 --mount "$CF" >/dev/null
}

# loops_on FILE: the loop devices attached to FILE (none: empty).
loops_on() { losetup -n -O NAME -j "$1" 2>/dev/null || true; }

# no_loops_left FILE: waits up to 2 s for the loops over FILE to detach (autoclear runs when the
# last table lets go), then fails if one is left.
no_loops_left() {
    local i
    for i in $(seq 20); do
        [[ -z $(loops_on "$1") ]] && return 0
        sleep 0.1
    done
    fail "loop left attached to $1: $(loops_on "$1")"
}

# merge_keeps SET DIR: merges SET and checks that DIR's content is what it was before the merge.
merge_keeps() {
    local sum
    sum=$(fx checksum "$2")
    assert_exit 0 "merge $1" -- "$DMSNAP" merge "$1"
    assert_eq "$(fx checksum "$2")" "$sum" "content after merge of $1"
}

cowfile_take_merge() {
    local fs=$1 size=$2 live=${T_PREFIX}live mnt=$T_DIR/mnt img=$T_DIR/img
    cow_fs
    fx create "$live" "$size" --fs "$fs" --mount "$mnt" >/dev/null
    head -c 8M /dev/urandom >"$mnt/before.bin"
    sync
    local cow=$CF/live.cow
    start_writer "$mnt"
    local pid=$WRITER_PID
    sleep 0.3
    assert_exit 0 "take with a COW file" -- "$DMSNAP" take s1 "$live=$cow" --json
    assert_eq "$(json <(printf '%s' "$T_OUT") 'd["devices"][0]["cow_kind"]')" file "cow_kind"
    local loop
    loop=$(json <(printf '%s' "$T_OUT") 'd["devices"][0]["cow_loop"]')
    assert_eq "$(loops_on "$cow")" "$loop" "the loop status names is not the one over the file"
    assert_eq "$(stat -c %a "$cow")" 600 "COW file mode"
    # 20% of the device, sparse: almost nothing allocated yet
    local fifth=$(($(blockdev --getsize64 "/dev/mapper/$live") / 5))
    assert_eq "$(stat -c %s "$cow")" "$(((fifth + 4095) / 4096 * 4096))" "default size is not 20% (in whole chunks)"
    (($(stat -c %b "$cow") * 1024 < $(stat -c %s "$cow"))) || fail "COW file is not sparse ($(stat -c %b "$cow") blocks)"
    assert_eq "$(cat "/sys/block/${loop#/dev/}/loop/dio")" 1 "loop does not use direct I/O"
    log "COW file on $loop, direct I/O $(cat "/sys/block/${loop#/dev/}/loop/dio")"
    sleep 0.5
    stop_writer "$pid"
    local base_sum
    base_sum=$(fx checksum "$(base_of "$live")")
    mount_base_ro "$live" "$img"
    assert_eq "$(sha256sum <"$img/before.bin")" "$(sha256sum <"$mnt/before.bin")" "before.bin differs in the frozen image"
    umount_base_ro "$img"
    head -c 4M /dev/urandom >"$mnt/after.bin"
    sync
    assert_eq "$(fx checksum "$(base_of "$live")")" "$base_sum" "base changed while live was written"
    start_writer "$mnt"
    pid=$WRITER_PID
    assert_exit 0 "merge" -- "$DMSNAP" merge s1
    stop_writer "$pid"
    sync
    local live_sum
    live_sum=$(fx checksum "$mnt")
    assert_eq "$(dmsetup table "$live" | awk '{print $3}')" linear "original table not restored"
    assert_no_file "$cow"
    no_loops_left "$cow"
    umount "$mnt"
    mount "/dev/mapper/$live" "$mnt"
    assert_eq "$(fx checksum "$mnt")" "$live_sum" "content lost across remount after merge"
}

test_cowfile_take_merge_ext4() { cowfile_take_merge ext4 128M; }
test_cowfile_take_merge_xfs() { cowfile_take_merge xfs 320M; }

# --cow-dir: one file per device (SET-DEVICE.cow); discard after unmount brings back the frozen
# image and deletes the files; a file the user made is kept (released: header zeroed).
test_cowfile_cow_dir_discard_and_user_file() {
    cow_fs
    setup_two
    local frozen1 frozen2
    assert_exit 0 "take with --cow-dir" -- "$DMSNAP" take s1 "$D1" "$D2" --cow-dir "$CF" --cow-size 8M
    assert_file_exists "$CF/s1-$D1.cow"
    assert_file_exists "$CF/s1-$D2.cow"
    assert_eq "$(stat -c %s "$CF/s1-$D1.cow")" $((8 << 20)) "--cow-size 8M"
    (($(stat -c %b "$CF/s1-$D1.cow") * 512 <= 1048576)) || fail "a new COW file is not sparse ($(stat -c %b "$CF/s1-$D1.cow") blocks)"
    frozen1=$(fx checksum "$(base_of "$D1")")
    frozen2=$(fx checksum "$(base_of "$D2")")
    head -c 2M /dev/urandom >"$M1/g"
    head -c 2M /dev/urandom >"$M2/g"
    sync
    umount "$M1"
    umount "$M2"
    assert_exit 0 "discard" -- "$DMSNAP" discard s1
    assert_eq "$(fx checksum "/dev/mapper/$D1")" "$frozen1" "$D1 is not the frozen image"
    assert_eq "$(fx checksum "/dev/mapper/$D2")" "$frozen2" "$D2 is not the frozen image"
    assert_no_file "$CF/s1-$D1.cow"
    assert_no_file "$CF/s1-$D2.cow"
    no_loops_left "$CF/s1-$D1.cow"
    # a file the user made: used as it is, kept afterwards with its header zeroed
    truncate -s 16M "$CF/mine.cow"
    mount "/dev/mapper/$D1" "$M1"
    assert_exit 0 "take on a user's file" -- "$DMSNAP" take s2 "$D1=$CF/mine.cow"
    assert_eq "$(json <("$DMSNAP" status s2 --json) 'd["devices"][0]["cow_total_sectors"]')" 32768 "the user's file size is not used"
    head -c 1M /dev/urandom >"$M1/h"
    sync
    merge_keeps s2 "$M1"
    assert_file_exists "$CF/mine.cow"
    header_is_zero "$CF/mine.cow" || fail "the user's COW file still has a snapshot header"
    no_loops_left "$CF/mine.cow"
    # ... and is accepted again
    assert_exit 0 "take on the released file" -- "$DMSNAP" take s3 "$D1=$CF/mine.cow"
    assert_exit 0 "merge" -- "$DMSNAP" merge s3
}

# A tmpfs COW file needs --volatile; status says the set is lost at reboot.
test_cowfile_volatile() {
    local live=${T_PREFIX}live mnt=$T_DIR/mnt tmp=$T_DIR/tmp
    fx create "$live" 64M --fs ext4 --mount "$mnt" >/dev/null
    mkdir -p "$tmp"
    mount -t tmpfs -o size=64M tmpfs "$tmp"
    refused 3 "tmpfs" -- take s1 "$live=$tmp/x.cow"
    assert_contains "$T_OUT" "--volatile"
    assert_no_file "$tmp/x.cow"
    assert_exit 0 "take --volatile" -- "$DMSNAP" take s1 "$live=$tmp/x.cow" --volatile
    # tmpfs has no direct I/O: the loop falls back to the page cache by itself
    local loop
    loop=$(loops_on "$tmp/x.cow")
    assert_eq "$(cat "/sys/block/${loop#/dev/}/loop/dio")" 0 "direct I/O on a tmpfs loop"
    assert_exit 0 "status" -- "$DMSNAP" status s1
    assert_contains "$T_OUT" "lost at reboot"
    assert_eq "$(json <("$DMSNAP" status s1 --json) 'd["devices"][0]["volatile"]')" True "volatile in JSON"
    head -c 1M /dev/urandom >"$mnt/x"
    sync
    merge_keeps s1 "$mnt"
    assert_no_file "$tmp/x.cow"
    umount "$tmp"
}

# extend: grows a COW file while the device is written; the kernel sees the new size at once.
test_cowfile_extend() {
    cow_fs
    local live=${T_PREFIX}live mnt=$T_DIR/mnt cow
    fx create "$live" 128M --fs ext4 --mount "$mnt" >/dev/null
    assert_exit 0 "take" -- "$DMSNAP" take s1 "$live=$CF/x.cow:8M"
    assert_exit 0 "extend +8M" -- "$DMSNAP" extend s1 "$live" +8M --json
    assert_eq "$(json <(printf '%s' "$T_OUT") 'd["to_bytes"]')" $((16 << 20)) "extend result"
    assert_eq "$(stat -c %s "$CF/x.cow")" $((16 << 20)) "file size after extend"
    assert_eq "$(json <("$DMSNAP" status s1 --json) 'd["devices"][0]["cow_total_sectors"]')" 32768 "kernel's COW size after extend"
    assert_exit 0 "extend to 32M" -- "$DMSNAP" extend s1 "$live" 32M
    assert_eq "$(json <("$DMSNAP" status s1 --json) 'd["devices"][0]["cow_total_sectors"]')" 65536 "kernel's COW size after extend to 32M"
    # more than the first 8 MiB can hold: the snapshot stays valid
    dd if=/dev/urandom of="$mnt/big" bs=1M count=12 conv=fsync status=none
    assert_eq "$(json <("$DMSNAP" status s1 --json) 'd["state"]')" active "snapshot after writing past the first size"
    refused 3 "already" -- extend s1 "$live" 20M
    refused 3 "not a device of set s1" -- extend s1 nope +1M
    refused 3 "invalid size" -- extend s1 "$live" +abc
    cow=$(fx cow "${T_PREFIX}blk" 16M)
    local live2=${T_PREFIX}two
    fx create "$live2" 64M >/dev/null
    assert_exit 0 "take with a block COW" -- "$DMSNAP" take s2 "$live2=$cow"
    refused 3 "block device" -- extend s2 "$live2" +8M
    assert_exit 0 "discard s2" -- "$DMSNAP" discard s2
    merge_keeps s1 "$mnt"
}

# overflow_run MONITOR: a 16 MiB COW file under a writer that writes 64 MiB (4x) at full speed,
# with or without `dmsnap monitor`. Sets PEAK (the largest use the sampler saw, percent).
overflow_run() {
    local monitor=$1 live=${T_PREFIX}live mnt=$T_DIR/mnt
    cow_fs 768M
    fx create "$live" 256M --fs ext4 --mount "$mnt" >/dev/null
    head -c 64M /dev/urandom >/run/"$T_PREFIX"data
    head -c 1M /dev/urandom >"$mnt/before"
    sync
    local frozen mon=
    if [[ $monitor == yes ]]; then
        # started before the set exists: it picks up sets taken later
        "$DMSNAP" monitor --json >"$T_DIR/mon.out" 2>"$T_DIR/mon.err" &
        mon=$!
        sleep 0.5
    fi
    assert_exit 0 "take" -- "$DMSNAP" take s1 "$live=$CF/x.cow:16M"
    frozen=$(fx checksum "$(base_of "$live")")
    [[ -z $mon ]] || sleep 0.5
    # a sampler of the kernel's own numbers, independent of the monitor
    (
        while :; do dmsetup status "$live" | awk '{split($4, a, "/"); if (a[2] > 0) print a[1] * 100 / a[2]}'; sleep 0.01; done
    ) >"$T_DIR/samples" 2>/dev/null &
    local sampler=$!
    dd if=/run/"$T_PREFIX"data of="$mnt/big" bs=4M oflag=direct conv=fsync status=none 2>"$T_DIR/dd.err" || true
    sync
    kill "$sampler"
    wait "$sampler" 2>/dev/null || true
    rm -f /run/"$T_PREFIX"data
    PEAK=$(sort -g "$T_DIR/samples" | tail -1)
    STATE=$(json <("$DMSNAP" status s1 --json) 'd["state"]')
    if [[ -n $mon ]]; then
        kill -0 "$mon" 2>/dev/null || fail "the monitor is not running: $(cat "$T_DIR/mon.out" "$T_DIR/mon.err")"
        kill -TERM "$mon"
        wait "$mon" || fail "monitor exited with $?: $(cat "$T_DIR/mon.err")"
    fi
    FROZEN=$frozen LIVE=$live MNT=$mnt
}

test_cowfile_monitor_grows_before_overflow() {
    overflow_run yes
    assert_eq "$STATE" active "the snapshot did not survive the writer with the monitor running"
    local grew peak
    grew=$(grep -c '"event":"grew"' "$T_DIR/mon.out" || true)
    peak=$(json <(grep '"event":"peak"' "$T_DIR/mon.out") 'd["used_percent"]')
    ((grew >= 1)) || fail "the monitor never grew the COW: $(cat "$T_DIR/mon.out" "$T_DIR/mon.err")"
    log "monitor grew the COW $grew times; largest use seen: $PEAK% (sampler), $peak% (monitor); file now $(stat -c %s "$CF/x.cow") bytes"
    echo "largest COW use with the monitor: $PEAK% (sampler), $peak% (monitor), $grew grows"
    awk -v p="$PEAK" 'BEGIN { exit !(p < 100) }' || fail "the COW reached $PEAK%"
    merge_keeps s1 "$MNT"
    assert_no_file "$CF/x.cow"
}

test_cowfile_without_monitor_overflows() {
    overflow_run no
    assert_eq "$STATE" invalid "without the monitor the 16 MiB COW should overflow"
    umount "$MNT"
    assert_exit 0 "discard the invalid set" -- "$DMSNAP" discard s1
    assert_eq "$(fx checksum "/dev/mapper/$LIVE")" "$FROZEN" "not the frozen image after discard"
    assert_no_file "$CF/x.cow"
    no_loops_left "$CF/x.cow"
}

# Every bad input about COW files: one line, exit 3 (2 for usage), the kernel unchanged and no
# file left behind.
test_cowfile_bad_input() {
    cow_fs 128M
    local live=${T_PREFIX}live mnt=$T_DIR/mnt before_files
    fx create "$live" 128M --fs ext4 --mount "$mnt" >/dev/null
    head -c 64K /dev/urandom >"$CF/data.bin"
    touch "$CF/plain"
    ln -s "$CF/target.cow" "$CF/link.cow"
    truncate -s 16M "$CF/att.cow" "$CF/open.cow"
    losetup -f "$CF/att.cow"
    sleep 300 <"$CF/open.cow" &
    local holder=$!
    before_files=$(ls -la "$CF" | sort)
    refused 3 "does not exist" -- take s1 "$live=$CF/nope/x.cow"
    refused 3 "not a dmsnap COW" -- take s1 "$live=$CF/data.bin"
    refused 3 "on a filesystem of the set" -- take s1 "$live=$mnt/x.cow"
    refused 3 "below the minimum" -- take s1 "$live=$CF/x.cow:4k"
    refused 3 "not enough space" -- take s1 "$live=$CF/x.cow" --cow-size 100%
    assert_contains "$T_OUT" "5% margin"
    refused 3 "invalid size 'abc'" -- take s1 "$live=$CF/x.cow" --cow-size abc
    refused 3 "must be more than 0" -- take s1 "$live=$CF/x.cow" --cow-size 0
    refused 3 "at most 100" -- take s1 "$live=$CF/x.cow" --cow-size 150%
    refused 3 "--cow-dir is not a directory" -- take s1 "$live" --cow-dir "$CF/plain"
    refused 3 "no COW given" -- take s1 "$live"
    refused 3 "attached to /dev/loop" -- take s1 "$live=$CF/att.cow"
    refused 3 "open by another process" -- take s1 "$live=$CF/open.cow"
    refused 3 "symbolic link" -- take s1 "$live=$CF/link.cow"
    refused 3 "nope: no such snapshot set" -- monitor nope
    # the same file twice, spelled two ways
    local two=${T_PREFIX}two
    fx create "$two" 64M >/dev/null
    before_files=$(ls -la "$CF" | sort)
    refused 3 "used twice" -- take s1 "$live=$CF/x.cow" "$two=$CF/./x.cow"
    # a COW file on a filesystem stacked on the set (a loop over a file on it, mounted)
    truncate -s 32M "$mnt/inner.img"
    mkfs.ext4 -q "$mnt/inner.img"
    mkdir -p "$T_DIR/inner"
    mount -o loop "$mnt/inner.img" "$T_DIR/inner"
    refused 3 "on a loop over $mnt/inner.img" -- take s1 "$live=$T_DIR/inner/x.cow"
    umount "$T_DIR/inner"
    assert_eq "$(ls -la "$CF" | sort)" "$before_files" "a refused take left a file behind"
    assert_no_file "$mnt/x.cow"
    kill "$holder"
    losetup -d "$(loops_on "$CF/att.cow")"
    # --force takes a file that holds data; merge keeps the user's file, released
    assert_exit 0 "--force" -- "$DMSNAP" take s1 "$live=$CF/data.bin" --force
    assert_exit 0 "merge" -- "$DMSNAP" merge s1
    assert_file_exists "$CF/data.bin"
    header_is_zero "$CF/data.bin" || fail "the user's file still has a snapshot header"
}
