# shellcheck shell=bash
# Backup from the frozen image (issue 15): changes since take, export, mount.
# shellcheck source=Tests/kernel/common.sh
source "$T_REPO/Tests/kernel/common.sh"

ds() { timeout -k 5 300 "$DMSNAP" "$@"; }

# Writes at known offsets of a device (no filesystem): `changes` reports exactly those chunks,
# chunk-rounded, sorted and coalesced; changed_bytes is the COW's used sectors minus metadata.
# 4 KiB and 64 KiB chunks; enough chunks for several metadata areas.
test_changes_reports_exactly_the_chunks_written() {
    local live=${T_PREFIX}live cow chunk
    fx create "$live" 256M >/dev/null
    cow=$(fx cow "${T_PREFIX}cow" 128M)
    for chunk in 4k 64k; do
        assert_exit 0 "take ($chunk chunks)" -- ds take s1 "$live=$cow" --chunk-size "$chunk"
        python3 - "/dev/mapper/$live" "$chunk" "$T_DIR/expected.json" <<'PY'
import json, os, sys
dev, chunk = sys.argv[1], {"4k": 4096, "64k": 65536}[sys.argv[2]]
writes = [(1 << 20, 8192), (5 * (1 << 20) + 100, 1), (7 * (1 << 20) - 10, 20), (100 * (1 << 20), 65536 * 3)]
# 600 scattered single bytes: more exceptions than one metadata area holds at 4 KiB chunks
writes += [((120 << 20) + i * 3 * chunk, 1) for i in range(600)]
fd = os.open(dev, os.O_WRONLY)
for off, n in writes:
    os.pwrite(fd, os.urandom(n), off)
os.fsync(fd)
os.close(fd)
chunks = sorted({c for off, n in writes for c in range(off // chunk, (off + n - 1) // chunk + 1)})
ranges = []
for c in chunks:
    if ranges and ranges[-1][0] + ranges[-1][1] == c * chunk:
        ranges[-1][1] += chunk
    else:
        ranges.append([c * chunk, chunk])
json.dump({"ranges": ranges, "bytes": len(chunks) * chunk}, open(sys.argv[3], "w"))
PY
        assert_exit 0 "changes ($chunk)" -- ds changes s1 --json
        printf '%s' "$T_OUT" >"$T_DIR/changes.json"
        assert_eq "$(json "$T_DIR/changes.json" '[[r["offset"], r["length"]] for r in d["devices"][0]["changed"]] == json.load(open("'"$T_DIR/expected.json"'"))["ranges"]')" True \
            "$chunk: the ranges are not exactly the chunks written"
        assert_eq "$(json "$T_DIR/changes.json" 'd["devices"][0]["changed_bytes"]')" "$(json "$T_DIR/expected.json" 'd["bytes"]')" "$chunk: changed_bytes"
        assert_eq "$(json "$T_DIR/changes.json" 'd["devices"][0]["ranges"] == len(d["devices"][0]["changed"])')" True
        assert_exit 0 "status" -- ds status s1 --json
        printf '%s' "$T_OUT" >"$T_DIR/status.json"
        assert_eq "$(json "$T_DIR/status.json" '(d["devices"][0]["cow_used_sectors"] - d["devices"][0]["metadata_sectors"]) * 512')" \
            "$(json "$T_DIR/changes.json" 'd["devices"][0]["changed_bytes"]')" "$chunk: changed_bytes is not the COW's used data sectors"
        assert_exit 0 "changes (text)" -- ds changes s1 "$live"
        assert_contains "$T_OUT" "$live: $(json "$T_DIR/expected.json" 'd["bytes"]') bytes changed"
        assert_exit 0 "discard" -- ds discard s1
    done
}

# export of each device of a set: raw to a file (sparse: fewer blocks than the image on a mostly
# empty filesystem), zstd and gzip to stdout and to a file; every sha256 (decompressed where
# compressed) equals the base's, while a writer runs on the live device; a killed export leaves
# nothing under the requested name; the bad inputs change nothing.
test_export_streams_the_frozen_image() {
    local a=${T_PREFIX}a b=${T_PREFIX}b ma=$T_DIR/ma mb=$T_DIR/mb ca cb out=$T_DIR/out base_a base_b pid i
    fx create "$a" 64M --fs ext4 --mount "$ma" >/dev/null
    fx create "$b" 96M --fs ext4 --mount "$mb" >/dev/null
    ca=$(fx cow "${T_PREFIX}ca" 32M)
    cb=$(fx cow "${T_PREFIX}cb" 32M)
    head -c 3M /dev/urandom >"$ma/data"
    head -c 40M /dev/urandom >"$mb/data"
    sync
    assert_exit 0 "take" -- ds take s1 "$a=$ca" "$b=$cb"
    base_a=$(fx checksum "$(base_of "$a")")
    base_b=$(fx checksum "$(base_of "$b")")
    start_writer "$ma"
    local writer=$WRITER_PID
    mkdir -p "$out"
    assert_exit 0 "export raw to a file" -- ds export s1 "$a" -o "$out/a.img" --json
    assert_eq "$(sha256sum <"$out/a.img" | cut -d' ' -f1)" "$base_a" "raw export differs from the base"
    assert_eq "$(json <(printf '%s' "$T_OUT") 'd["sha256"], d["bytes_read"]')" "$base_a $((64 << 20))" "JSON summary"
    local blocks size
    blocks=$(stat -c %b "$out/a.img")
    size=$(stat -c %s "$out/a.img")
    log "a.img: $size bytes, $((blocks * 512)) allocated"
    ((blocks * 512 < size / 2)) || fail "the raw export is not sparse: $((blocks * 512)) of $size bytes allocated"
    ds export s1 "$b" --compress zstd --level 1 >"$out/b.img.zst" 2>"$T_DIR/err" || fail "zstd export: $(cat "$T_DIR/err")"
    assert_eq "$(zstd -dc "$out/b.img.zst" | sha256sum | cut -d' ' -f1)" "$base_b" "zstd export differs from the base"
    assert_exit 0 "gzip export to a file" -- ds export s1 "/dev/mapper/$b" --compress gzip -o "$out/b.img.gz"
    assert_eq "$(gzip -dc "$out/b.img.gz" | sha256sum | cut -d' ' -f1)" "$base_b" "gzip export differs from the base"
    stop_writer "$writer"
    # a killed export leaves nothing under the requested name: killed once it writes its output
    # (an open file in the output directory), before it is done
    "$DMSNAP" export s1 "$b" -o "$out/killed.img" &
    pid=$!
    local writing=0 fd
    for ((i = 0; i < 400 && !writing; i++)); do
        for fd in /proc/"$pid"/fd/*; do
            [[ $(readlink "$fd" 2>/dev/null) == "$out/"* ]] && writing=1
        done
        ((writing)) || sleep 0.01
    done
    ((writing)) || fail "the export never opened its output"
    kill -9 "$pid"
    wait "$pid" 2>/dev/null || true
    assert_no_file "$out/killed.img" "a killed export left its output"
    # (where the filesystem has no O_TMPFILE, as hostfs here, a hidden temporary name stays until
    # the next export to that name removes it)
    log "after the kill: $(ls -A "$out" | tr '\n' ' ')"
    assert_exit 0 "export again to the same name" -- ds export s1 "$b" -o "$out/killed.img"
    assert_eq "$(sha256sum <"$out/killed.img" | cut -d' ' -f1)" "$base_b"
    assert_eq "$(ls -A "$out" | grep -c dmsnap-export || true)" 0 "a temporary file of the killed export is left"
    # bad inputs: one line, nothing written, the kernel unchanged
    local before
    before=$(kernel_state)
    refused_export() {
        assert_exit "$1" "$2" -- ds "${@:4}"
        assert_contains "$T_OUT" "$3"
        assert_eq "$(grep -c . <<<"$T_OUT")" 1 "$2: not one line: $T_OUT"
        assert_eq "$(kernel_state)" "$before" "$2: kernel state changed"
    }
    refused_export 3 "unknown set" "no such snapshot set" export nope "$a" -o "$out/x.img"
    refused_export 3 "unknown device" "not a device of set s1" export s1 "${T_PREFIX}zz" -o "$out/x.img"
    refused_export 3 "output exists" "exists; refusing to overwrite it (use --force)" export s1 "$a" -o "$out/a.img"
    refused_export 3 "output inside the set" "is on a filesystem of set s1" export s1 "$a" -o "$ma/backup.img"
    refused_export 3 "missing directory" "does not exist" export s1 "$a" -o "$T_DIR/nodir/x.img"
    refused_export 2 "unknown compression" "compress" export s1 "$a" --compress lz4 -o "$out/x.img"
    refused_export 3 "bad level" "takes a level from 1 to 19" export s1 "$a" --compress zstd --level 30 -o "$out/x.img"
    assert_no_file "$out/x.img"
    assert_no_file "$ma/backup.img"
    assert_exit 0 "--force replaces" -- ds export s1 "$a" -o "$out/a.img" --force
    assert_eq "$(sha256sum <"$out/a.img" | cut -d' ' -f1)" "$base_a"
    assert_exit 0 "merge --no-wait" -- ds merge s1 --no-wait
    before=$(kernel_state)
    refused_export 3 "a merging set" "set is merging: the merge writes into the frozen image" export s1 "$a" -o "$out/y.img"
    assert_exit 0 "merge" -- ds merge s1
}

# mount shows exactly the frozen content (ext4 and xfs), while a writer runs on the live device;
# a second mount/umount cycle works; the base is never written (journal replay included); merge
# and discard wait for umount; merge afterwards keeps every change; bad inputs change nothing.
mount_frozen_image() {
    local fs=$1 size=$2 live=${T_PREFIX}live mnt=$T_DIR/mnt cow img=$T_DIR/img frozen base_sum live_sum
    fx create "$live" "$size" --fs "$fs" --mount "$mnt" >/dev/null
    cow=$(fx cow "${T_PREFIX}cow" 64M)
    mkdir -p "$mnt/tree"
    for i in 1 2 3; do head -c $((i * 700000)) /dev/urandom >"$mnt/tree/f$i"; done
    sync
    frozen=$(fx checksum "$mnt/tree")
    start_writer "$mnt"
    local writer=$WRITER_PID
    sleep 0.3
    # an open-and-unlinked file at take: the image needs a replay (orphan / log) to be clean
    exec {held}>"$mnt/held"
    rm "$mnt/held"
    assert_exit 0 "take" -- ds take s1 "$live=$cow"
    exec {held}>&-
    base_sum=$(fx checksum "$(base_of "$live")")
    mkdir -p "$img"
    local shmem0 shmem1
    shmem0=$(awk '/^Shmem:/ {print $2}' /proc/meminfo)
    for round in 1 2; do
        assert_exit 0 "mount ($round)" -- ds mount s1 "$img" --json
        assert_eq "$(json <(printf '%s' "$T_OUT") 'd["mounts"]')" "['$img']"
        findmnt -n -o OPTIONS "$img" | grep -q '^ro' || fail "the image is not mounted read-only: $(findmnt -n -o OPTIONS "$img")"
        assert_eq "$(fx checksum "$img/tree")" "$frozen" "round $round: the mounted image is not the frozen content"
        cmp -n "$(stat -c %s "$img/writer.log")" "$img/writer.log" "$mnt/writer.log" || fail "the frozen writer log is not a prefix of the live one"
        shmem1=$(awk '/^Shmem:/ {print $2}' /proc/meminfo)
        log "round $round: scratch in memory after the mount: $((shmem1 - shmem0)) KiB"
        assert_exit 0 "status" -- ds status s1 --json
        assert_eq "$(json <(printf '%s' "$T_OUT") 'd["devices"][0].get("image_mount")')" "$img"
        assert_exit 3 "merge while mounted" -- ds merge s1
        assert_contains "$T_OUT" "frozen image is mounted on $img (dmsnap mount); run 'dmsnap umount s1' first"
        assert_exit 3 "mount again" -- ds mount s1 "$T_DIR"
        assert_contains "$T_OUT" "mounted on $img already"
        assert_exit 0 "umount ($round)" -- ds umount s1 "$img"
        mountpoint -q "$img" && fail "still mounted"
        assert_exit '!0' "the view is gone" -- dmsetup info "${live}-dmsnap-view"
    done
    stop_writer "$writer"
    assert_eq "$(fx checksum "$(base_of "$live")")" "$base_sum" "the base was written (a replay reached it)"
    # bad inputs: one line, nothing changed
    local before
    before=$(kernel_state)
    mkdir -p "$T_DIR/full"
    touch "$T_DIR/full/x" "$T_DIR/afile"
    refused_mount() {
        assert_exit "$1" "$2" -- ds "${@:4}"
        assert_contains "$T_OUT" "$3"
        assert_eq "$(grep -c . <<<"$T_OUT")" 1 "$2: not one line: $T_OUT"
        assert_eq "$(kernel_state)" "$before" "$2: kernel state changed"
    }
    refused_mount 3 "unknown set" "no such snapshot set" mount nope "$img"
    refused_mount 3 "unknown device" "not a device of set s1" mount s1 "${T_PREFIX}zz" "$img"
    refused_mount 3 "missing dir" "does not exist or is not a directory" mount s1 "$T_DIR/none"
    refused_mount 3 "a file" "does not exist or is not a directory" mount s1 "$T_DIR/afile"
    refused_mount 3 "not empty" "is not empty" mount s1 "$T_DIR/full"
    mkdir -p "$mnt/inside"
    refused_mount 3 "inside the set" "is on a filesystem of set s1" mount s1 "$mnt/inside"
    refused_mount 3 "umount of nothing" "no frozen image of set s1 is mounted" umount s1
    refused_mount 3 "umount of something else" "not an image dmsnap mounted" umount s1 "$T_DIR/full"
    rmdir "$mnt/inside"
    # merge afterwards keeps every change
    sync
    live_sum=$(fx checksum "$mnt")
    assert_exit 0 "merge" -- ds merge s1
    assert_eq "$(fx checksum "$mnt")" "$live_sum" "merge lost data"
}

test_mount_frozen_image_ext4() { mount_frozen_image ext4 128M; }
test_mount_frozen_image_xfs() { mount_frozen_image xfs 320M; }

# several devices: each under DIR/DEVICE; umount by DIR takes them all down; a discard waits
test_mount_every_device_of_a_set() {
    local img=$T_DIR/img sa sb
    setup_two
    sa=$(fx checksum "$M1")
    sb=$(fx checksum "$M2")
    assert_exit 0 "take" -- ds take s1 "$D1=$C1" "$D2=$C2"
    head -c 1M /dev/urandom >"$M1/after"
    mkdir -p "$img"
    assert_exit 0 "mount all" -- ds mount s1 "$img"
    assert_eq "$(fx checksum "$img/$D1") $(fx checksum "$img/$D2")" "$sa $sb" "the images are not the frozen content"
    umount "$M1" "$M2"
    assert_exit 3 "discard while the images are mounted" -- ds discard s1
    assert_contains "$T_OUT" "run 'dmsnap umount s1' first"
    assert_exit 0 "umount by the directory" -- ds umount s1 "$img"
    assert_eq "$(ls -A "$img")" "" "the directories dmsnap made are left"
    assert_exit 0 "discard" -- ds discard s1
    mount "/dev/mapper/$D1" "$M1"
    assert_eq "$(fx checksum "$M1")" "$sa" "discard did not restore the frozen image"
}
