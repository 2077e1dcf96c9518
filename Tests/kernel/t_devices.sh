# shellcheck shell=bash
# The C boundary on a real kernel: dmsnap devices, and suspend/resume through the library.
# shellcheck source=Tests/kernel/common.sh
source "$T_REPO/Tests/kernel/common.sh"

test_devices_json_reports_table() {
    local live=${T_PREFIX}live mnt=$T_DIR/mnt
    fx create "$live" 64M --fs ext4 --mount "$mnt" >/dev/null
    head -c 4M /dev/urandom >"$mnt/data.bin"
    sync
    assert_exit 0 "devices --json" -- "$DMSNAP" devices --json
    printf '%s' "$T_OUT" >"$T_DIR/d.json"
    local want
    want=$(dmsetup table "$live")
    assert_eq "$(json "$T_DIR/d.json" "[e['table'][0] for e in d['devices'] if e['name']=='$live'][0]")" "$want"
    assert_eq "$(json "$T_DIR/d.json" "[(e['open_count'], e['suspended'], e['number']) for e in d['devices'] if e['name']=='$live'][0]")" \
        "(1, False, '$(dmsetup info -c --noheadings -o major,minor --separator : "$live")')"
    assert_exit 0 "devices (text)" -- "$DMSNAP" devices
    assert_contains "$T_OUT" "$live"
    assert_exit 2 "bad option" -- "$DMSNAP" devices --bogus
    assert_eq "$(grep -c . <<<"$T_OUT")" 1 "usage error is not one line: $T_OUT"
    assert_contains "$T_OUT" "dmsnap: Unknown option"
}

test_library_suspend_resume_under_writer() {
    local live=${T_PREFIX}live mnt=$T_DIR/mnt
    fx create "$live" 64M --fs ext4 --mount "$mnt" >/dev/null
    head -c 4M /dev/urandom >"$mnt/data.bin"
    sync
    local sum
    sum=$(sha256sum <"$mnt/data.bin")
    start_writer "$mnt"
    local pid=$WRITER_PID
    sleep 0.3
    assert_exit 0 "suspend/resume cycles through the library" -- "$PROBE" cycle "$live" 50
    sleep 0.3
    log "$T_OUT"
    stop_writer "$pid"
    assert_contains "$(dmsetup info -c --noheadings -o attr "$live")" "-" "device state unreadable"
    [[ $(dmsetup info -c --noheadings -o suspended "$live") == Active ]] || fail "device left suspended"
    assert_eq "$(sha256sum <"$mnt/data.bin")" "$sum" "data changed"
    umount "$mnt"
    mount "/dev/mapper/$live" "$mnt"
    assert_eq "$(sha256sum <"$mnt/data.bin")" "$sum" "data changed after remount"
    (($(wc -l <"$mnt/writer.log") > 0)) || fail "writer made no progress"
}

test_library_take_and_status() {
    local live=${T_PREFIX}live mnt=$T_DIR/mnt cow
    fx create "$live" 64M --fs ext4 --mount "$mnt" >/dev/null
    cow=$(fx cow "${T_PREFIX}cow" 16M)
    assert_exit 0 "take through the library" -- "$PROBE" take lib1 "$live=$cow"
    assert_contains "$T_OUT" "phase=active"
    assert_exit 0 "state through the library" -- "$PROBE" state lib1
    assert_contains "$T_OUT" "$live active"
    umount "$mnt"
    assert_exit 0 "discard" -- "$DMSNAP" discard lib1
}
