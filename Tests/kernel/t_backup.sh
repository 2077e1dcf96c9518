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
