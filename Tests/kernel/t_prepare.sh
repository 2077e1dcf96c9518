# shellcheck shell=bash
# Prepared volumes (issue 14): 'dmsnap prepare' wraps a plain loop device in a dm linear device
# recorded by its filesystem's UUID; the wrapper takes, merges and discards like any dm device;
# with udev and the shipped rule, /dev/disk/by-uuid points at the wrapper; 'unprepare' gives the
# device back with its data; bad input changes nothing. Data checked by sha256. (The two-boot
# test is reboot-steps.sh: s7.)
# shellcheck source=Tests/kernel/common.sh
source "$T_REPO/Tests/kernel/common.sh"

test_prepare_take_merge_discard_unprepare() {
    local loop vol=${T_PREFIX}vol m=$T_DIR/mv cow uuid s0 s1
    loop=$(fx cow "${T_PREFIX}raw" 64M)
    cow=$(fx cow "${T_PREFIX}c1" 16M)
    mkfs.ext4 -q "$loop"
    uuid=$(blkid -o value -s UUID "$loop")
    assert_exit 0 "prepare" -- "$DMSNAP" prepare "$loop" --name "$vol" --json
    assert_contains "$T_OUT" "\"identity\" : \"UUID=$uuid\""
    assert_eq "$(dmsetup table "$vol")" "0 131072 linear $(lsblk -dno MAJ:MIN "$loop" | tr -d ' ') 0" "the wrapper's table"
    assert_eq "$(dmsetup info -c --noheadings -o uuid "$vol")" "DMSNAP-vol-$vol" "the wrapper's uuid"
    assert_file_exists "$DMSNAP_STATE_DIR/volumes/$vol.json"
    mkdir -p "$m"
    mount "/dev/mapper/$vol" "$m"
    head -c 1M /dev/urandom >"$m/f"
    sync
    s0=$(sha256sum <"$m/f")
    # a take with a writer, merged online
    start_writer "$m"
    assert_exit 0 "take the wrapper" -- "$DMSNAP" take s1 "$vol=$cow"
    head -c 1M /dev/urandom >"$m/f"
    assert_exit 3 "unprepare while in a set" -- "$DMSNAP" unprepare "$vol"
    assert_contains "$T_OUT" "$vol: is in set s1; merge or discard the set first"
    assert_exit 0 "merge" -- "$DMSNAP" merge s1
    stop_writer "$WRITER_PID"
    s1=$(sha256sum <"$m/f")
    # a take, then a discard: the frozen image back
    assert_exit 0 "take again" -- "$DMSNAP" take s2 "$vol=$cow"
    head -c 1M /dev/urandom >"$m/f"
    umount "$m"
    assert_exit 0 "discard" -- "$DMSNAP" discard s2
    mount "/dev/mapper/$vol" "$m"
    assert_eq "$(sha256sum <"$m/f")" "$s1" "the frozen image after discard"
    assert_exit 3 "unprepare while mounted" -- "$DMSNAP" unprepare "$vol"
    assert_contains "$T_OUT" "$vol: is mounted on $m; unmount it first"
    umount "$m"
    assert_exit 0 "unprepare" -- "$DMSNAP" unprepare "$vol"
    assert_exit '!0' "no wrapper left" -- dmsetup info "$vol"
    assert_no_file "$DMSNAP_STATE_DIR/volumes/$vol.json"
    # the device itself holds everything
    mount "$loop" "$m"
    assert_eq "$(sha256sum <"$m/f")" "$s1" "the device after unprepare"
    [[ $s1 != "$s0" ]] || fail "the test wrote nothing"
    umount "$m"
}

test_prepare_udev_links_point_at_the_wrapper() {
    udev_start || fail "systemd-udevd did not start"
    local loop vol=${T_PREFIX}vol uuid node
    loop=$(fx cow "${T_PREFIX}raw" 64M)
    mkfs.ext4 -q -L "${T_PREFIX:0:12}" "$loop"
    udevadm settle --timeout=60
    uuid=$(blkid -o value -s UUID "$loop")
    assert_eq "$(readlink -f "/dev/disk/by-uuid/$uuid")" "$loop" "by-uuid before prepare"
    assert_exit 0 "prepare with udev" -- "$DMSNAP" prepare "$loop" --name "$vol"
    udevadm settle --timeout=60
    node=/dev/dm-$(dmsetup info -c --noheadings -o minor "$vol" | tr -d ' ')
    assert_eq "$(readlink -f "/dev/disk/by-uuid/$uuid")" "$node" "by-uuid after prepare: the wrapper"
    assert_eq "$(readlink -f "/dev/disk/by-label/${T_PREFIX:0:12}")" "$node" "by-label after prepare: the wrapper"
    assert_eq "$(udev_cookies)" "" "udev cookies"
    assert_exit 0 "unprepare with udev" -- "$DMSNAP" unprepare "$vol"
    udevadm settle --timeout=60
    assert_eq "$(readlink -f "/dev/disk/by-uuid/$uuid")" "$loop" "by-uuid after unprepare: the device again"
    udev_stop
}

test_prepare_bad_input() {
    local loop vol=${T_PREFIX}vol bare lvmloop m=$T_DIR/m dmdev=${T_PREFIX}dm
    loop=$(fx cow "${T_PREFIX}raw" 32M)
    mkfs.ext4 -q "$loop"
    bare=$(fx cow "${T_PREFIX}bare" 8M)
    fx create "$dmdev" 32M >/dev/null
    mkdir -p "$m"
    mount "$loop" "$m"
    refused 3 "$loop: is mounted on $m; unmount it first" -- prepare "$loop" --name "$vol"
    umount "$m"
    dmsetup create "${T_PREFIX}holder" --table "0 8 linear $loop 0"
    refused 3 "$loop: is in use: ${T_PREFIX}holder is stacked on it" -- prepare "$loop" --name "$vol"
    dmsetup remove "${T_PREFIX}holder"
    refused 3 "is a device-mapper device ($dmdev) already" -- prepare "/dev/mapper/$dmdev" --name "$vol"
    refused 3 "$dmdev: a device-mapper device of that name exists" -- prepare "$loop" --name "$dmdev"
    refused 3 "$bare: has nothing that identifies it across reboots" -- prepare "$bare" --name "$vol"
    refused 3 "not a block device" -- prepare "$T_DIR" --name "$vol"
    refused 3 "not a prepared volume" -- unprepare "${T_PREFIX}nope"
    lvmloop=$(fx cow "${T_PREFIX}pv" 16M)
    lvm pvcreate -q -y --config "devices { filter=[ \"a|^$lvmloop\$|\", \"r|.*|\" ] use_devicesfile=0 } global { use_lvmpolld=0 }" "$lvmloop" >/dev/null
    refused 3 "carries a LVM2_member signature" -- prepare "$lvmloop" --name "$vol"
    # a RAID member (mdadm's superblock, its array stopped): refused; the array itself would not be
    local r1 r2 md=/dev/md/${T_PREFIX}md
    r1=$(fx cow "${T_PREFIX}r1" 16M)
    r2=$(fx cow "${T_PREFIX}r2" 16M)
    mdadm --create "$md" --run --quiet --level=1 --raid-devices=2 --metadata=1.2 --assume-clean "$r1" "$r2" 2>/dev/null ||
        fail "mdadm --create failed"
    mdadm --stop --quiet "$md"
    refused 3 "$r1: carries a linux_raid_member signature" -- prepare "$r1" --name "$vol"
    mdadm --zero-superblock "$r1" "$r2"
    assert_exit 0 "prepare" -- "$DMSNAP" prepare "$loop" --name "$vol"
    refused 3 "$vol: is a prepared volume already" -- prepare "$loop" --name "$vol"
    refused 3 "$loop: is prepared already, as $vol" -- prepare "$loop" --name "${T_PREFIX}other"
    assert_exit 0 "unprepare" -- "$DMSNAP" unprepare "$vol"
}
