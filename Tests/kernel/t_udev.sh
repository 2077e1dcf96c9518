# shellcheck shell=bash
# udev (issue 14): with systemd-udevd running, take and merge keep /dev/disk/by-uuid pointing at
# the live device, no hidden device gets a by-uuid/by-label/by-id link, no udev cookie is left,
# and the freeze window does not wait for udev (its resumes are waited for after the thaw).
# Starts systemd-udevd itself when the suite is not in udev mode. Data checked by sha256.
# shellcheck source=Tests/kernel/common.sh
source "$T_REPO/Tests/kernel/common.sh"

# window_ms TRACE: the freeze → thaw window of a take from its DMSNAP_TRACE lines (ms)
window_ms() {
    awk '/trace: \+[0-9.]+ ms freeze / { if (s == "") s = $3 } /trace: \+[0-9.]+ ms done thaw / { e = $3 }
        END { printf "%.3f", e - s }' <<<"$1"
}

# devnode NAME: the /dev/dm-N of dm device NAME
devnode() { printf '/dev/dm-%s' "$(dmsetup info -c --noheadings -o minor "$1" | tr -d ' ')"; }

# links_to NODE: the /dev/disk/by-* links that resolve to NODE, one per line
links_to() {
    local l
    for l in /dev/disk/by-*/*; do
        [[ -e $l && $(readlink -f "$l") == "$1" ]] && printf '%s\n' "$l"
    done
    return 0
}

test_udev_links_cookies_and_a_window_that_does_not_wait() {
    udev_start || fail "systemd-udevd did not start"
    local live=${T_PREFIX}live m=$T_DIR/m cow uuid base sum k
    fx create "$live" 64M --fs ext4 --mount "$m" >/dev/null
    cow=$(fx cow "${T_PREFIX}c1" 16M)
    head -c 1M /dev/urandom >"$m/f"
    sync
    udevadm settle --timeout=60
    uuid=$(blkid -o value -s UUID "/dev/mapper/$live")
    assert_eq "$(readlink -f "/dev/disk/by-uuid/$uuid")" "$(devnode "$live")" "by-uuid before take"
    local -a with=() without=()
    for k in 1 2 3 4 5; do
        start_writer "$m"
        assert_exit 0 "take $k with udev" -- env DMSNAP_TRACE=1 "$DMSNAP" take s1 "$live=$cow"
        with+=("$(window_ms "$T_OUT")")
        # the udev waits come after the last thaw
        assert_eq "$(grep -E 'trace: \+[0-9.]+ ms (done thaw|wait for udev)' <<<"$T_OUT" | tail -1 | grep -c 'wait for udev')" 1 \
            "take $k: udev waited for after the window"
        # the rule changes are done when take returns
        assert_eq "$(readlink -f "/dev/disk/by-uuid/$uuid")" "$(devnode "$live")" "by-uuid after take $k"
        base=$(devnode "$(basename "$(base_of "$live")")")
        assert_eq "$(links_to "$base")" "" "links to the hidden base after take $k"
        assert_eq "$(udev_cookies)" "" "udev cookies after take $k"
        head -c 256K /dev/urandom >"$m/g$k"
        assert_exit 0 "merge $k with udev" -- "$DMSNAP" merge s1
        stop_writer "$WRITER_PID"
        assert_eq "$(readlink -f "/dev/disk/by-uuid/$uuid")" "$(devnode "$live")" "by-uuid after merge $k"
        assert_eq "$(udev_cookies)" "" "udev cookies after merge $k"
        # the same take with libdevmapper not waiting for udev at all: the floor
        start_writer "$m"
        assert_exit 0 "take $k without udev sync" -- env DMSNAP_TRACE=1 DM_DISABLE_UDEV=1 "$DMSNAP" take s1 "$live=$cow"
        without+=("$(window_ms "$T_OUT")")
        assert_exit 0 "merge $k without udev sync" -- env DM_DISABLE_UDEV=1 "$DMSNAP" merge s1
        stop_writer "$WRITER_PID"
        udevadm settle --timeout=60
    done
    local mw mo
    mw=$(printf '%s\n' "${with[@]}" | sort -n | sed -n 3p)
    mo=$(printf '%s\n' "${without[@]}" | sort -n | sed -n 3p)
    echo "freeze→thaw window, median of 5: ${mw} ms with udev sync, ${mo} ms without (${with[*]} / ${without[*]})" >&2
    # a udev round trip inside the window took 200-480 ms here (KERNEL.md): far above this bound,
    # which leaves room for udevd's own work competing for the CPU while kernels share the cores
    awk -v a="$mw" -v b="$mo" 'BEGIN { exit !(a <= 3 * b + 100) }' || fail "the window waits for udev: ${mw} ms vs ${mo} ms"
    sum=$(fx checksum "$m")
    umount "$m"
    mount "/dev/mapper/$live" "$m"
    assert_eq "$(fx checksum "$m")" "$sum" "content after 10 merges, remounted"
    umount "$m"
    udevadm settle --timeout=60
    udev_stop
}
