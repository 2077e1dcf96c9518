# shellcheck shell=bash
# Stacks (issue 14, first part): a LUKS2 device (cryptsetup's default keyring mode) is
# snapshotted through the dm device below it, its key never read, written or printed; a PV's
# device is taken with every filesystem on its LVs frozen in the window; an LV open without a
# filesystem is refused; striped and multi-segment origins take, merge and discard. Data checked
# by sha256.
# shellcheck source=Tests/kernel/common.sh
source "$T_REPO/Tests/kernel/common.sh"

PASS_PHRASE=dmsnap-test-only

# luks_open LOWER NAME [format]: a LUKS2 container on /dev/mapper/LOWER (or a path) opened as
# NAME, the passphrase on stdin only (fast PBKDF: a test key).
luks_open() {
    local dev=$1
    [[ $dev == /* ]] || dev=/dev/mapper/$dev
    if [[ ${3:-} == format ]]; then
        printf '%s' "$PASS_PHRASE" | cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
            --key-file=- "$dev" || fail "luksFormat $dev"
    fi
    printf '%s' "$PASS_PHRASE" | cryptsetup open --key-file=- "$dev" "$2" || fail "cryptsetup open $dev"
}

test_stack_crypt_device_is_taken_through_the_layer_below() {
    local low=${T_PREFIX}low cr=${T_PREFIX}cr m=$T_DIR/mc out=$T_DIR/dmsnap-output cow key s0 s1
    fx create "$low" 64M >/dev/null
    cow=$(fx cow "${T_PREFIX}c1" 16M)
    luks_open "$low" "$cr" format
    key=$(printf '%s' "$PASS_PHRASE" | cryptsetup luksDump -q --dump-volume-key --key-file=- "/dev/mapper/$low" |
        sed -n '/MK dump:/,$p' | sed 's/MK dump://' | tr -d ' \t\n')
    ((${#key} >= 64)) || fail "could not read the volume key for the check (${#key} hex digits)"
    mkfs.ext4 -q "/dev/mapper/$cr"
    mkdir -p "$m"
    mount "/dev/mapper/$cr" "$m"
    head -c 1M /dev/urandom >"$m/f"
    sync
    s0=$(sha256sum <"$m/f")
    start_writer "$m"
    assert_exit 0 "take of the crypt device" -- env DMSNAP_TRACE=1 "$DMSNAP" take s1 "$cr=$cow"
    printf '%s\n' "$T_OUT" >>"$out"
    assert_contains "$T_OUT" "$cr is a dm-crypt device: snapshotted $low, the layer below it"
    assert_contains "$T_OUT" "freeze $m"
    assert_eq "$(dmsetup table "$low" | awk '{print $3}')" snapshot "the layer below runs the snapshot"
    assert_eq "$(dmsetup table "$cr" | awk '{print $3}')" crypt "the crypt device is untouched"
    head -c 1M /dev/urandom >"$m/f"
    sync
    # the frozen image: the base holds the container as it was (the snapshot holds the base
    # itself exclusively: opened through a read-only loop over it)
    local imgloop
    imgloop=$(losetup -r -f --show "$(base_of "$low")")
    printf '%s' "$PASS_PHRASE" | cryptsetup open --readonly --key-file=- "$imgloop" "${T_PREFIX}img" || fail "open the frozen container"
    mkdir -p "$T_DIR/img"
    mount -o ro,noload "/dev/mapper/${T_PREFIX}img" "$T_DIR/img"
    assert_eq "$(sha256sum <"$T_DIR/img/f")" "$s0" "the frozen image, decrypted"
    umount "$T_DIR/img"
    cryptsetup close "${T_PREFIX}img"
    losetup -d "$imgloop"
    assert_exit 0 "status" -- "$DMSNAP" status s1 --json
    printf '%s\n' "$T_OUT" >>"$out"
    assert_exit 0 "merge with the writer" -- "$DMSNAP" merge s1
    printf '%s\n' "$T_OUT" >>"$out"
    stop_writer "$WRITER_PID"
    s1=$(sha256sum <"$m/f")
    umount "$m"
    cryptsetup close "$cr"
    assert_eq "$(dmsetup table "$low" | awk '{print $3}')" linear "the layer below after merge"
    luks_open "$low" "$cr"
    mount "/dev/mapper/$cr" "$m"
    assert_eq "$(sha256sum <"$m/f")" "$s1" "after merge, closed and opened again"
    # discard: the container closed first (it holds the layer below open)
    assert_exit 0 "take again" -- "$DMSNAP" take s2 "$cr=$cow"
    printf '%s\n' "$T_OUT" >>"$out"
    head -c 1M /dev/urandom >"$m/f"
    umount "$m"
    assert_exit 3 "discard with the container open" -- "$DMSNAP" discard s2
    assert_contains "$T_OUT" "$low: is open ($cr on it); close them before discarding"
    printf '%s\n' "$T_OUT" >>"$out"
    cryptsetup close "$cr"
    assert_exit 0 "discard" -- "$DMSNAP" discard s2
    printf '%s\n' "$T_OUT" >>"$out"
    luks_open "$low" "$cr"
    mount "/dev/mapper/$cr" "$m"
    assert_eq "$(sha256sum <"$m/f")" "$s1" "the frozen image after discard"
    umount "$m"
    cryptsetup close "$cr"
    # the key is nowhere dmsnap wrote, nor in what it printed
    local hits
    hits=$({ grep -rilF -e "$key" -e "${key:0:32}" "$DMSNAP_STATE_DIR" "$out" 2>/dev/null || true; } | wc -l)
    assert_eq "$hits" 0 "files holding the volume key"
    echo "volume key (${#key} hex digits) found in 0 files of the state directory and 0 outputs" >&2
}

test_stack_crypt_on_a_plain_device_is_refused() {
    local loop cr=${T_PREFIX}cr before
    loop=$(fx cow "${T_PREFIX}raw" 32M)
    luks_open "$loop" "$cr" format
    local cow
    cow=$(fx cow "${T_PREFIX}c1" 16M)
    before=$(kernel_state)
    refused 3 "$cr: is a dm-crypt device on $loop, which is not a device-mapper device" -- take s1 "$cr=$cow"
    assert_eq "$(kernel_state)" "$before" "a refused take changed the kernel"
    cryptsetup close "$cr"
}

# lvm_config REGEX [DEVICES...]: LVM's configuration without udev (the test kernel runs none),
# scanning only the /dev/mapper names that match ^REGEX, plus DEVICES settings
lvm_config() {
    local f="[ \"a|^/dev/mapper/$1|\", \"r|.*|\" ]"
    printf 'activation { udev_sync=0 udev_rules=0 monitoring=0 } global { use_lvmpolld=0 } backup { backup=0 archive=0 } devices { obtain_device_list_from_udev=0 use_devicesfile=0 hints="none" filter=%s global_filter=%s %s }' \
        "$f" "$f" "${*:2}"
}
# lvmx: LVM on the one PV of the test
lvmx() { lvm "$1" --config "$(lvm_config "$PV\$")" "${@:2}"; }

test_stack_pv_device_freezes_every_lv_filesystem() {
    PV=${T_PREFIX}pv VG=${T_PREFIX//[-_]/}vg
    local vg=$VG ma=$T_DIR/la mb=$T_DIR/lb cow sa sb
    # the LVs' dm names do not carry the test's prefix: the sweep would not find them
    trap 'umount "$T_DIR/la" "$T_DIR/lb" 2>/dev/null || true; lvmx vgchange -q -an "$VG" >/dev/null 2>&1 || true' EXIT
    fx create "$PV" 200M >/dev/null
    cow=$(fx cow "${T_PREFIX}c1" 32M)
    lvmx pvcreate -q -y "/dev/mapper/$PV" >/dev/null
    lvmx vgcreate -q -y "$vg" "/dev/mapper/$PV" >/dev/null
    lvmx lvcreate -q -y -Wn -L 64M -n a "$vg" >/dev/null
    lvmx lvcreate -q -y -Wn -L 64M -n b "$vg" >/dev/null
    mkdir -p "$ma" "$mb"
    mkfs.ext4 -q "/dev/mapper/$vg-a"
    mkfs.ext4 -q "/dev/mapper/$vg-b"
    mount "/dev/mapper/$vg-a" "$ma"
    mount "/dev/mapper/$vg-b" "$mb"
    head -c 1M /dev/urandom >"$ma/f"
    head -c 1M /dev/urandom >"$mb/f"
    sync
    sa=$(sha256sum <"$ma/f")
    sb=$(sha256sum <"$mb/f")
    # an LV named directly: refused, pointing below
    refused 3 "name the device below it (the physical volume's) instead" -- take s1 "$vg-a=$cow"
    # an LV open without a filesystem (a swap, a VM disk): refused, named
    lvmx lvcreate -q -y -Wn -L 16M -n raw "$vg" >/dev/null
    exec {fd}<"/dev/mapper/$vg-raw"
    refused 3 "$vg-raw is stacked on it and open, but not by a mounted filesystem" -- take s1 "$PV=$cow"
    exec {fd}<&-
    start_writer "$ma"
    assert_exit 0 "take of the PV's device" -- env DMSNAP_TRACE=1 "$DMSNAP" take s1 "$PV=$cow"
    assert_not_contains "$T_OUT" "warning"
    assert_eq "$(dmsetup info -c --noheadings -o uuid "$PV-dmsnap-base" | cut -c1-11)" LVM-DMSNAP_ "the base's uuid"
    # and libblkid still reads it (a '-' after LVM- would make it a private device to libblkid)
    assert_eq "$(blkid -p -o value -s TYPE "/dev/mapper/$PV-dmsnap-base")" LVM2_member "blkid on the base"
    # LVM scanning every device of the test (the base too, which carries the PV's label): one PV,
    # no duplicate warning, with devices/scan_lvs off (the default) and on
    local lvms
    for lvms in scan_lvs=0 scan_lvs=1; do
        assert_exit 0 "pvs ($lvms)" -- lvm pvs --noheadings -o pv_name --config "$(lvm_config "$PV" "$lvms")"
        assert_eq "$(xargs <<<"$T_OUT")" "/dev/mapper/$PV" "pvs ($lvms) lists the PV once"
        assert_not_contains "$T_OUT" "WARNING"
    done
    assert_exit 0 "lvs while the set exists" -- lvmx lvs --noheadings -o lv_name "$vg"
    assert_eq "$(tr -s ' \n' ' ' <<<"$T_OUT" | xargs)" "a b raw" "LVM still sees its LVs"
    head -c 1M /dev/urandom >"$mb/f"
    stop_writer "$WRITER_PID"
    # discard: every LV closed first; the VG deactivated and activated again while the set
    # exists (LVM refuses that when it sees a PV twice)
    umount "$ma" "$mb"
    assert_exit 0 "vgchange -an while the set exists" -- lvm vgchange -an --config "$(lvm_config "$PV")" "$vg"
    assert_exit 0 "vgchange -ay while the set exists" -- lvm vgchange -ay --config "$(lvm_config "$PV")" "$vg"
    assert_not_contains "$T_OUT" "WARNING"
    assert_contains "$T_OUT" "3 logical volume(s) in volume group \"$vg\" now active"
    assert_exit 0 "vgchange -an while the set exists" -- lvm vgchange -an --config "$(lvm_config "$PV")" "$vg"
    assert_exit 0 "discard" -- "$DMSNAP" discard s1
    lvmx vgchange -ay "$vg"
    mount "/dev/mapper/$vg-a" "$ma"
    mount "/dev/mapper/$vg-b" "$mb"
    assert_eq "$(sha256sum <"$ma/f") $(sha256sum <"$mb/f")" "$sa $sb" "both LVs hold the frozen image after discard"
    # merge, the LVs mounted and written
    start_writer "$ma"
    assert_exit 0 "take again" -- "$DMSNAP" take s2 "$PV=$cow"
    head -c 1M /dev/urandom >"$mb/f"
    assert_exit 0 "merge, mounted" -- "$DMSNAP" merge s2
    stop_writer "$WRITER_PID"
    sa=$(sha256sum <"$ma/f")
    sb=$(sha256sum <"$mb/f")
    umount "$ma" "$mb"
    lvmx vgchange -an "$vg"
    lvmx vgchange -ay "$vg"
    mount "/dev/mapper/$vg-a" "$ma"
    mount "/dev/mapper/$vg-b" "$mb"
    assert_eq "$(sha256sum <"$ma/f") $(sha256sum <"$mb/f")" "$sa $sb" "after merge, reactivated"
    umount "$ma" "$mb"
    lvmx vgchange -an "$vg"
    trap - EXIT
}

test_stack_striped_and_multi_segment_origins() {
    local l1 l2 l3 l4 str=${T_PREFIX}str seg=${T_PREFIX}seg m1=$T_DIR/ms m2=$T_DIR/mg c1 c2 s1 s2
    l1=$(fx cow "${T_PREFIX}l1" 32M)
    l2=$(fx cow "${T_PREFIX}l2" 32M)
    l3=$(fx cow "${T_PREFIX}l3" 16M)
    l4=$(fx cow "${T_PREFIX}l4" 16M)
    c1=$(fx cow "${T_PREFIX}c1" 16M)
    c2=$(fx cow "${T_PREFIX}c2" 16M)
    dmsetup create "$str" --table "0 131072 striped 2 128 $l1 0 $l2 0"
    dmsetup create "$seg" --table "0 32768 linear $l3 0
32768 32768 linear $l4 0"
    mkdir -p "$m1" "$m2"
    mkfs.ext4 -q "/dev/mapper/$str"
    mkfs.ext4 -q "/dev/mapper/$seg"
    mount "/dev/mapper/$str" "$m1"
    mount "/dev/mapper/$seg" "$m2"
    head -c 4M /dev/urandom >"$m1/f"
    head -c 4M /dev/urandom >"$m2/f"
    sync
    s1=$(sha256sum <"$m1/f")
    s2=$(sha256sum <"$m2/f")
    assert_exit 0 "take striped + two segments" -- "$DMSNAP" take s1 "$str=$c1" "$seg=$c2"
    head -c 4M /dev/urandom >"$m1/f"
    head -c 4M /dev/urandom >"$m2/f"
    umount "$m1" "$m2"
    assert_exit 0 "discard" -- "$DMSNAP" discard s1
    assert_eq "$(dmsetup table "$seg" | wc -l)" 2 "two segments again"
    mount "/dev/mapper/$str" "$m1"
    mount "/dev/mapper/$seg" "$m2"
    assert_eq "$(sha256sum <"$m1/f") $(sha256sum <"$m2/f")" "$s1 $s2" "the frozen images after discard"
    start_writer "$m1"
    assert_exit 0 "take again" -- "$DMSNAP" take s2 "$str=$c1" "$seg=$c2"
    head -c 4M /dev/urandom >"$m2/f"
    assert_exit 0 "merge" -- "$DMSNAP" merge s2
    stop_writer "$WRITER_PID"
    s1=$(sha256sum <"$m1/f")
    s2=$(sha256sum <"$m2/f")
    assert_eq "$(dmsetup table "$str" | awk '{print $3}')" striped "striped table after merge"
    umount "$m1" "$m2"
    mount "/dev/mapper/$str" "$m1"
    mount "/dev/mapper/$seg" "$m2"
    assert_eq "$(sha256sum <"$m1/f") $(sha256sum <"$m2/f")" "$s1 $s2" "after merge, remounted"
    umount "$m1" "$m2"
}

# LVM on a LUKS container on a dm linear device (the installer's "encrypted LVM"): naming the
# container takes the layer below it, and the filesystem on the LV two layers up is frozen.
test_stack_lvm_on_luks_is_taken_below_the_container() {
    PV=${T_PREFIX}cr VG=${T_PREFIX//[-_]/}vg
    local low=${T_PREFIX}low vg=$VG m=$T_DIR/lv cow s0 s1
    trap 'umount "$T_DIR/lv" 2>/dev/null || true; lvmx vgchange -q -an "$VG" >/dev/null 2>&1 || true; cryptsetup close "$PV" 2>/dev/null || true' EXIT
    fx create "$low" 128M >/dev/null
    cow=$(fx cow "${T_PREFIX}c1" 32M)
    luks_open "$low" "$PV" format
    lvmx pvcreate -q -y "/dev/mapper/$PV" >/dev/null
    lvmx vgcreate -q -y "$vg" "/dev/mapper/$PV" >/dev/null
    lvmx lvcreate -q -y -Wn -L 64M -n root "$vg" >/dev/null
    mkfs.ext4 -q "/dev/mapper/$vg-root"
    mkdir -p "$m"
    mount "/dev/mapper/$vg-root" "$m"
    head -c 1M /dev/urandom >"$m/f"
    sync
    s0=$(sha256sum <"$m/f")
    start_writer "$m"
    assert_exit 0 "take of the container" -- env DMSNAP_TRACE=1 "$DMSNAP" take s1 "$PV=$cow"
    assert_contains "$T_OUT" "$PV is a dm-crypt device: snapshotted $low, the layer below it"
    assert_contains "$T_OUT" "freeze $m"
    head -c 1M /dev/urandom >"$m/f"
    assert_exit 0 "merge, mounted" -- "$DMSNAP" merge s1
    stop_writer "$WRITER_PID"
    s1=$(sha256sum <"$m/f")
    [[ $s1 != "$s0" ]] || fail "the test wrote nothing"
    umount "$m"
    lvmx vgchange -q -an "$vg" >/dev/null
    cryptsetup close "$PV"
    luks_open "$low" "$PV"
    lvmx vgchange -q -ay "$vg" >/dev/null
    mount "/dev/mapper/$vg-root" "$m"
    assert_eq "$(sha256sum <"$m/f")" "$s1" "after merge, the container closed and opened again"
    # discard: refused while the VG is active on the container (named), then with everything
    # closed the frozen image comes back
    assert_exit 0 "take again" -- "$DMSNAP" take s2 "$PV=$cow"
    head -c 1M /dev/urandom >"$m/f"
    umount "$m"
    assert_exit 3 "discard with the container open" -- "$DMSNAP" discard s2
    assert_contains "$T_OUT" "$low: is open ($PV"
    lvmx vgchange -q -an "$vg" >/dev/null
    cryptsetup close "$PV"
    assert_exit 0 "discard, the container closed" -- "$DMSNAP" discard s2
    luks_open "$low" "$PV"
    lvmx vgchange -q -ay "$vg" >/dev/null
    mount "/dev/mapper/$vg-root" "$m"
    assert_eq "$(sha256sum <"$m/f")" "$s1" "after discard: the frozen image"
    umount "$m"
    lvmx vgchange -q -an "$vg" >/dev/null
    cryptsetup close "$PV"
    trap - EXIT
}
