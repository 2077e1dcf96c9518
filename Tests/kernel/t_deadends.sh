# shellcheck shell=bash
# No dead ends (issue 12): every state a set can reach on a real kernel has a way out that works.
# Data is checked by checksum in every test; every dmsnap call runs under a timeout.
# shellcheck source=Tests/kernel/common.sh
source "$T_REPO/Tests/kernel/common.sh"

# ds ARGS...: dmsnap under a timeout (a hang fails the test instead of wedging the suite)
ds() { timeout -k 5 120 "$DMSNAP" "$@"; }

# A dead COW (the disk is gone: its dm device now runs the error target): discard still ends,
# forgets the set, leaves the device at the frozen image, and one warning names the COW. The
# device can join a new set right away.
test_dead_cow_discard_finishes_with_a_warning() {
    local live=${T_PREFIX}live mnt=$T_DIR/mnt loop cowdev=${T_PREFIX}cowdev sectors frozen
    fx create "$live" 64M --fs ext4 --mount "$mnt" >/dev/null
    loop=$(fx cow "${T_PREFIX}cow" 16M)
    sectors=$(blockdev --getsz "$loop")
    dmsetup create "$cowdev" --table "0 $sectors linear $loop 0"
    head -c 2M /dev/urandom >"$mnt/a"
    sync
    assert_exit 0 "take" -- ds take s1 "$live=/dev/mapper/$cowdev"
    frozen=$(fx checksum "$(base_of "$live")")
    head -c 1M /dev/urandom >"$mnt/b"
    sync
    umount "$mnt"
    # the disk dies
    dmsetup load "$cowdev" --table "0 $sectors error"
    dmsetup suspend "$cowdev"
    dmsetup resume "$cowdev"
    assert_exit 0 "discard with a dead COW" -- ds discard s1
    assert_eq "$(grep -c . <<<"$T_OUT")" 2 "expected one warning and the result line: $T_OUT"
    assert_contains "$T_OUT" "dmsnap: warning: /dev/mapper/$cowdev: COW still carries a snapshot header; wipe its first chunk before reusing it"
    assert_exit 3 "the set is forgotten" -- ds status s1
    assert_eq "$(fx checksum "/dev/mapper/$live")" "$frozen" "not the frozen image"
    assert_exit '!0' "base removed" -- dmsetup info "${live}-dmsnap-base"
    # the device joins a new set at once
    local cow2
    cow2=$(fx cow "${T_PREFIX}cow2" 16M)
    assert_exit 0 "take again with another COW" -- ds take s2 "$live=$cow2"
    assert_exit 0 "discard" -- ds discard s2
    assert_eq "$(fx checksum "/dev/mapper/$live")" "$frozen" "data changed"
    dmsetup remove "$cowdev"
}

# The same COW every night: take, write, merge, three times, ext4 and xfs origins, never --force.
# A COW dmsnap released carries no signature; one with a foreign signature is still refused.
cow_reused_every_night() {
    local fs=$1 size=$2 live=${T_PREFIX}live mnt=$T_DIR/mnt cow n sum i
    fx create "$live" "$size" --fs "$fs" --mount "$mnt" >/dev/null
    cow=$(fx cow "${T_PREFIX}cow" 128M)
    for n in 1 2 3; do
        assert_exit 0 "night $n: take (no --force)" -- ds take "night$n" "$live=$cow"
        # metadata first (xfs: log records are the first chunks copied into the COW's data area,
        # where libblkid looks for an external log), then data
        mkdir -p "$mnt/meta$n"
        for ((i = 0; i < 40; i++)); do : >"$mnt/meta$n/f$i"; sync -f "$mnt"; done
        rm -f "$mnt"/night*.bin "$mnt"/copy*.bin
        head -c 16M /dev/urandom >"$mnt/night$n.bin"
        cp "$mnt/night$n.bin" "$mnt/copy$n.bin"
        sync
        sum=$(fx checksum "$mnt")
        assert_exit 0 "night $n: merge" -- ds merge "night$n"
        assert_eq "$(fx checksum "$mnt")" "$sum" "night $n: merge lost data"
        assert_eq "$(blkid -p -o value -s TYPE "$cow" 2>/dev/null || true)" "" "night $n: the released COW still carries a signature"
        header_is_zero "$cow" || fail "night $n: COW header not wiped"
    done
    umount "$mnt"
    mount "/dev/mapper/$live" "$mnt"
    assert_eq "$(fx checksum "$mnt")" "$sum" "content lost across remount"
    umount "$mnt"
    # a foreign signature is still refused
    mkfs.ext4 -q -F "$cow"
    assert_exit 3 "a COW with a foreign signature" -- ds take s9 "$live=$cow"
    assert_contains "$T_OUT" "ext4 signature"
}

test_cow_reused_every_night_ext4() { cow_reused_every_night ext4 128M; }
test_cow_reused_every_night_xfs() { cow_reused_every_night xfs 320M; }

# A merge stopped by COW I/O errors: the COW is a dm device, slow while the merge runs (dm-delay),
# then failing every I/O (dm-flakey): the kernel stops the merge. The set is merge-failed, the
# device stays usable, merge while mounted says to unmount; with the COW healthy again and the
# device closed, merge resumes (interim table, fresh snapshot-merge) and every byte is there.
test_failed_merge_resumes_once_the_cow_works() {
    local live=${T_PREFIX}live mnt=$T_DIR/mnt loop cowdev=${T_PREFIX}cowdev sectors sum
    modprobe dm-delay
    fx create "$live" 64M --fs ext4 --mount "$mnt" >/dev/null
    loop=$(fx cow "${T_PREFIX}cow" 32M)
    sectors=$(blockdev --getsz "$loop")
    dmsetup create "$cowdev" --table "0 $sectors linear $loop 0"
    head -c 8M /dev/urandom >"$mnt/data"
    sync
    assert_exit 0 "take" -- ds take s1 "$live=/dev/mapper/$cowdev"
    # every other 4 KiB block of the file: 1024 chunks that are not next to each other, so the
    # merge copies them one by one
    python3 - "$mnt/data" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
for i in range(0, 2048, 2):
    os.pwrite(fd, os.urandom(4096), i * 4096)
os.fsync(fd)
os.close(fd)
PY
    sync
    sum=$(fx checksum "$mnt")
    cow_set() {
        dmsetup load "$cowdev" --table "0 $sectors $1"
        dmsetup suspend "$cowdev"
        dmsetup resume "$cowdev"
    }
    cow_set "delay $loop 0 40"
    assert_exit 0 "merge --no-wait" -- ds merge s1 --no-wait
    sleep 0.5
    cow_set "flakey $loop 0 0 1000"
    # merge again: it sees the kernel stop the merge (while waiting: exit 1; already stopped: 3)
    assert_exit '!0' "merge on a failing COW" -- ds merge s1
    ((T_RC == 1 || T_RC == 3)) || fail "merge on a failing COW: exit $T_RC"
    assert_contains "$T_OUT" "the merge stopped on an I/O error"
    assert_contains "$T_OUT" "dmsnap merge s1"
    assert_exit 0 "status" -- ds status s1 --json
    printf '%s' "$T_OUT" >"$T_DIR/s.json"
    assert_eq "$(json "$T_DIR/s.json" 'd["state"], d["hint"]')" "merge-failed dmsnap merge s1"
    # merge while mounted: one line saying to unmount, nothing changed
    local before
    before=$(kernel_state)
    assert_exit 3 "merge while mounted" -- ds merge s1
    assert_contains "$T_OUT" "unmount $mnt (the failed target can only be replaced while the device is closed)"
    assert_eq "$(kernel_state)" "$before" "a refused merge changed the kernel"
    # the COW works again; unmount; merge resumes and finishes
    cow_set "linear $loop 0"
    umount "$mnt"
    assert_exit 0 "merge resumes" -- env DMSNAP_TRACE=1 timeout 120 "$DMSNAP" merge s1
    assert_contains "$T_OUT" "load error table into $live"
    assert_eq "$(dmsetup table "$live" | awk '{print $3}')" linear "original table not restored"
    assert_exit 3 "set gone" -- ds status s1
    mount "/dev/mapper/$live" "$mnt"
    assert_eq "$(fx checksum "$mnt")" "$sum" "data lost in the resumed merge"
    umount "$mnt"
    dmsetup remove "$cowdev"
}

# Another tool reloads the live device behind dmsnap's back: status says lost (with what runs
# there now), merge and discard point to forget, forget drops the set and says what the COW holds.
test_table_replaced_behind_dmsnaps_back_is_lost() {
    local live=${T_PREFIX}live mnt=$T_DIR/mnt cow loop frozen
    fx create "$live" 64M --fs ext4 --mount "$mnt" >/dev/null
    cow=$(fx cow "${T_PREFIX}cow" 16M)
    loop=$(dmsetup table "$live" | awk '{print $4}')
    head -c 1M /dev/urandom >"$mnt/a"
    sync
    assert_exit 0 "take" -- ds take s1 "$live=$cow"
    frozen=$(fx checksum "$(base_of "$live")")
    umount "$mnt"
    # e.g. an admin's script puts the device back on its disk
    dmsetup load "$live" --table "0 $(blockdev --getsz "/dev/mapper/$live") linear $loop 0"
    dmsetup suspend "$live"
    dmsetup resume "$live"
    assert_exit 0 "status" -- ds status s1 --json
    printf '%s' "$T_OUT" >"$T_DIR/s.json"
    assert_eq "$(json "$T_DIR/s.json" 'd["state"], d["hint"]')" "lost dmsnap forget s1"
    assert_contains "$(json "$T_DIR/s.json" 'd["devices"][0]["reason"]')" "runs its original table again"
    assert_exit 3 "merge of a lost set" -- ds merge s1
    assert_contains "$T_OUT" "run 'dmsnap forget s1'"
    assert_exit 3 "discard of a lost set" -- ds discard s1
    assert_contains "$T_OUT" "run 'dmsnap forget s1'"
    assert_exit 0 "forget" -- ds forget s1
    assert_contains "$T_OUT" "$cow still holds $live's changes made since take; it was not wiped"
    assert_exit 3 "the set is gone" -- ds status s1
    assert_exit '!0' "the unused base is removed" -- dmsetup info "${live}-dmsnap-base"
    assert_eq "$(fx checksum "/dev/mapper/$live")" "$frozen" "the device's data changed"
}
