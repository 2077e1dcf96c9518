# shellcheck shell=bash
# Lifecycle: take / status / merge / discard on real dm devices, data checked by checksum.
# shellcheck source=Tests/kernel/common.sh
source "$T_REPO/Tests/kernel/common.sh"

# take_with_writer FS SIZE: take while a writer runs; the writer never errors, the base
# holds the image of take time, the live fs sees every later write; then merge online.
take_merge_with_writer() {
    local fs=$1 size=$2 live=${T_PREFIX}live mnt=$T_DIR/mnt img=$T_DIR/img cow
    fx create "$live" "$size" --fs "$fs" --mount "$mnt" >/dev/null
    cow=$(fx cow "${T_PREFIX}cow" 64M)
    head -c 8M /dev/urandom >"$mnt/before.bin"
    sync
    start_writer "$mnt"
    local pid=$WRITER_PID
    sleep 0.3
    assert_exit 0 "take" -- env DMSNAP_TRACE=1 "$DMSNAP" take s1 "$live=$cow"
    local records_at_take
    sleep 0.5
    stop_writer "$pid"
    # The frozen image is a clean filesystem with before.bin and a prefix of the writer's log.
    local base_sum
    base_sum=$(fx checksum "$(base_of "$live")")
    mount_base_ro "$live" "$img"
    assert_eq "$(sha256sum <"$img/before.bin")" "$(sha256sum <"$mnt/before.bin")" "before.bin differs in the frozen image"
    cp "$img/writer.log" "$T_DIR/frozen-writer.log"
    umount_base_ro "$img"
    records_at_take=$(wc -l <"$T_DIR/frozen-writer.log")
    log "records in frozen image: $records_at_take, on live: $(wc -l <"$mnt/writer.log")"
    (($(wc -l <"$mnt/writer.log") > records_at_take)) || fail "writer made no progress after take"
    cmp -n "$((records_at_take * 4096))" "$mnt/writer.log" "$T_DIR/frozen-writer.log" ||
        fail "frozen log is not a prefix of the live log"
    head -c 4M /dev/urandom >"$mnt/after.bin"
    sync
    assert_eq "$(fx checksum "$(base_of "$live")")" "$base_sum" "base changed while live was written"
    assert_contains "$(dmsetup table "$live")" " snapshot " "live does not run a snapshot table"
    # merge online, with the writer running again
    start_writer "$mnt"
    pid=$WRITER_PID
    assert_exit 0 "merge" -- "$DMSNAP" merge s1
    stop_writer "$pid"
    sync
    local live_sum
    live_sum=$(fx checksum "$mnt")
    assert_eq "$(dmsetup table "$live" | awk '{print $3}')" linear "original table not restored"
    assert_exit '!0' "base removed" -- dmsetup info "${live}-dmsnap-base"
    header_is_zero "$cow" || fail "COW header not wiped after merge"
    assert_exit 3 "status of a merged set" -- "$DMSNAP" status s1
    assert_contains "$T_OUT" "no such snapshot set"
    umount "$mnt"
    mount "/dev/mapper/$live" "$mnt"
    assert_eq "$(fx checksum "$mnt")" "$live_sum" "content lost across remount after merge"
}

test_take_merge_ext4_with_writer() { take_merge_with_writer ext4 128M; }
test_take_merge_xfs_with_writer() { take_merge_with_writer xfs 320M; }

test_take_discard_restores_frozen_image() {
    local live=${T_PREFIX}live mnt=$T_DIR/mnt cow
    fx create "$live" 64M --fs ext4 --mount "$mnt" >/dev/null
    cow=$(fx cow "${T_PREFIX}cow" 32M)
    head -c 2M /dev/urandom >"$mnt/a.bin"
    sync
    assert_exit 0 "take" -- "$DMSNAP" take s1 "/dev/mapper/$live=$cow" --chunk-size 8k
    local frozen
    frozen=$(fx checksum "$(base_of "$live")")
    head -c 3M /dev/urandom >"$mnt/b.bin"
    rm "$mnt/a.bin"
    sync
    local before
    before=$(kernel_state)
    assert_exit 3 "discard while mounted is refused" -- "$DMSNAP" discard s1
    assert_contains "$T_OUT" "mounted on $mnt"
    assert_eq "$(kernel_state)" "$before" "refused discard changed the kernel"
    umount "$mnt"
    assert_exit 0 "discard" -- "$DMSNAP" discard s1 --json
    assert_contains "$T_OUT" '"discarded"'
    assert_eq "$(fx checksum "/dev/mapper/$live")" "$frozen" "device is not the frozen image"
    assert_exit '!0' "base removed" -- dmsetup info "${live}-dmsnap-base"
    header_is_zero "$cow" || fail "COW header not wiped after discard"
    mount "/dev/mapper/$live" "$mnt"
    assert_file_exists "$mnt/a.bin"
    assert_no_file "$mnt/b.bin"
}

# Three devices, one freeze window: a writer appends the same sequence number to all three
# filesystems in order (1, 2, 3). In a consistent set the frozen images satisfy
# seq1 >= seq2 >= seq3 >= seq1 - 1.
test_three_device_set_is_consistent() {
    local i devs=() mnts=() cows=() pairs=()
    for i in 1 2 3; do
        devs[i]=${T_PREFIX}d$i
        mnts[i]=$T_DIR/m$i
        fx create "${devs[i]}" 64M --fs ext4 --mount "${mnts[i]}" >/dev/null
        cows[i]=$(fx cow "${T_PREFIX}c$i" 16M)
        pairs+=("${devs[i]}=${cows[i]}")
    done
    (
        n=0
        while :; do
            n=$((n + 1))
            for i in 1 2 3; do
                printf '%d\n' "$n" | dd of="${mnts[i]}/seq" bs=64 oflag=append conv=notrunc,fdatasync status=none || exit 3
            done
        done
    ) </dev/null >>"$T_DIR/writer.out" 2>&1 &
    local pid=$!
    sleep 0.5
    assert_exit 0 "take 3-device set" -- env DMSNAP_TRACE=1 "$DMSNAP" take set3 "${pairs[@]}"
    sleep 0.3
    stop_writer "$pid"
    # One window: every freeze, then every suspend, then every resume, then every thaw.
    local order
    order=$(grep -oE 'trace: \+[0-9.]+ ms (freeze|suspend|resume|thaw|create|load|sync)' <<<"$T_OUT" | awk '{print $4}' | uniq | tr '\n' ' ')
    assert_eq "$order" "create load sync freeze suspend resume thaw " "kernel steps not in one window"
    local seq=()
    for i in 1 2 3; do
        mount_base_ro "${devs[i]}" "$T_DIR/img$i"
        seq[i]=$(tail -n1 "$T_DIR/img$i/seq")
        umount_base_ro "$T_DIR/img$i"
    done
    log "frozen sequence numbers: ${seq[1]} ${seq[2]} ${seq[3]}"
    ((seq[1] >= seq[2] && seq[2] >= seq[3] && seq[3] >= seq[1] - 1)) ||
        fail "frozen images inconsistent: ${seq[1]} ${seq[2]} ${seq[3]}"
    assert_exit 0 "status" -- "$DMSNAP" status set3 --json
    printf '%s' "$T_OUT" >"$T_DIR/s.json"
    assert_eq "$(json "$T_DIR/s.json" 'len(d["devices"])')" 3
    local sums=()
    for i in 1 2 3; do sums[i]=$(fx checksum "${mnts[i]}"); done
    assert_exit 0 "merge" -- "$DMSNAP" merge set3
    for i in 1 2 3; do
        assert_eq "$(fx checksum "${mnts[i]}")" "${sums[i]}" "device $i changed by merge"
        assert_eq "$(dmsetup table "${devs[i]}" | awk '{print $3}')" linear
    done
    assert_eq "$(dmsetup ls | grep -c dmsnap-base || true)" 0 "base devices left behind"
}

test_status_json_and_usage_grows() {
    local live=${T_PREFIX}live mnt=$T_DIR/mnt cow
    fx create "$live" 64M --fs ext4 --mount "$mnt" >/dev/null
    cow=$(fx cow "${T_PREFIX}cow" 32M)
    assert_exit 0 "take" -- "$DMSNAP" take s1 "$live=$cow"
    assert_exit 0 "status" -- "$DMSNAP" status s1 --json
    printf '%s' "$T_OUT" >"$T_DIR/a.json"
    assert_eq "$(json "$T_DIR/a.json" 'sorted(d.keys())')" "['created', 'devices', 'name', 'state']"
    assert_eq "$(json "$T_DIR/a.json" 'sorted(k for k in d["devices"][0].keys() if k != "reason")')" \
        "['base', 'chunk_sectors', 'cow', 'cow_kind', 'cow_total_sectors', 'cow_used_sectors', 'device', 'metadata_sectors', 'monitored', 'state', 'used_percent']"
    assert_eq "$(json "$T_DIR/a.json" 'd["name"], d["state"], d["devices"][0]["state"], d["devices"][0]["chunk_sectors"]')" "s1 active active 8"
    assert_eq "$(json "$T_DIR/a.json" 'all(isinstance(d["devices"][0][k], (int, float)) for k in ("cow_total_sectors","cow_used_sectors","metadata_sectors","used_percent"))')" True
    local p0 p1
    p0=$(json "$T_DIR/a.json" 'd["devices"][0]["used_percent"]')
    head -c 8M /dev/urandom >"$mnt/x.bin"
    sync
    assert_exit 0 "status" -- "$DMSNAP" status --json
    printf '%s' "$T_OUT" >"$T_DIR/b.json"
    p1=$(json "$T_DIR/b.json" '[s for s in d["sets"] if s["name"]=="s1"][0]["devices"][0]["used_percent"]')
    log "used_percent $p0 -> $p1"
    python3 -c "import sys; sys.exit(0 if float('$p1') > float('$p0') + 20 else 1)" || fail "used_percent did not grow: $p0 -> $p1"
    # text output for people and for scripts
    assert_exit 0 "status text" -- "$DMSNAP" status
    assert_contains "$T_OUT" "USED PERCENT"
    assert_exit 0 "status -o" -- "$DMSNAP" status s1 --noheadings -o device,state
    assert_eq "$(tr -s ' ' <<<"$T_OUT")" "$live active"
    umount "$mnt"
    assert_exit 0 "discard" -- "$DMSNAP" discard s1
}

test_merge_no_wait_then_finish() {
    local live=${T_PREFIX}live mnt=$T_DIR/mnt cow
    fx create "$live" 128M --fs ext4 --mount "$mnt" >/dev/null
    cow=$(fx cow "${T_PREFIX}cow" 96M)
    assert_exit 0 "take" -- "$DMSNAP" take s1 "$live=$cow"
    head -c 48M /dev/urandom >"$mnt/big.bin"
    sync
    local sum
    sum=$(fx checksum "$mnt")
    assert_exit 0 "merge --no-wait" -- "$DMSNAP" merge s1 --no-wait
    assert_contains "$(dmsetup table "$live")" "snapshot-merge"
    assert_exit 0 "status while merging" -- "$DMSNAP" status s1 -o state --noheadings
    assert_contains "$T_OUT" "merging"
    assert_exit 3 "discard of a merging set is refused" -- "$DMSNAP" discard s1
    assert_exit 0 "merge (finish)" -- "$DMSNAP" merge s1 --json
    assert_contains "$T_OUT" '"merged"'
    assert_eq "$(fx checksum "$mnt")" "$sum" "content changed"
    umount "$mnt"
    mount "/dev/mapper/$live" "$mnt"
    assert_eq "$(fx checksum "$mnt")" "$sum" "content lost after remount"
}
