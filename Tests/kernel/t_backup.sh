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
