# shellcheck shell=bash
# Bad input: one clear line, a non-zero exit, and no change to any kernel state.
# shellcheck source=Tests/kernel/common.sh
source "$T_REPO/Tests/kernel/common.sh"

# refused CODE NEEDLE -- ARGS...: dmsnap ARGS exits CODE with one line containing NEEDLE,
# and the kernel's devices, tables and mounts are exactly as before.
refused() {
    local code=$1 needle=$2
    shift 3
    local before
    before=$(kernel_state)
    assert_exit "$code" "dmsnap $*" -- "$DMSNAP" "$@"
    assert_contains "$T_OUT" "$needle" "dmsnap $*: message"
    if [[ $code == 3 || $code == 2 ]]; then
        assert_eq "$(grep -c . <<<"$T_OUT")" 1 "dmsnap $*: not one line: $T_OUT"
        assert_contains "$T_OUT" "dmsnap: " "dmsnap $*: message prefix"
    fi
    assert_eq "$(kernel_state)" "$before" "dmsnap $*: kernel state changed"
}

test_take_bad_input_changes_nothing() {
    local live=${T_PREFIX}live dev2=${T_PREFIX}two mnt=$T_DIR/mnt m2=$T_DIR/m2 cow cow2 small sig loop
    fx create "$live" 64M --fs ext4 --mount "$mnt" >/dev/null
    fx create "$dev2" 64M --fs ext4 >/dev/null
    cow=$(fx cow "${T_PREFIX}cow" 16M)
    cow2=$(fx cow "${T_PREFIX}cow2" 16M)
    small=$(fx cow "${T_PREFIX}small" 8K)
    sig=$(fx cow "${T_PREFIX}sig" 16M)
    mkfs.ext4 -q -F "$sig"
    loop=$(dmsetup deps -o devname "$live" | sed -E 's/.*\((.*)\).*/\1/')
    head -c 1M /dev/urandom >"$mnt/data"
    sync
    local sum
    sum=$(fx checksum "$mnt")

    refused 3 "no such device-mapper device" -- take s1 "${T_PREFIX}nope=$cow"
    refused 3 "not a device-mapper device" -- take s1 "/dev/$loop=$cow"
    refused 3 "given twice" -- take s1 "$live=$cow" "/dev/mapper/$live=$cow2"
    refused 3 "no COW given" -- take s1 "$live"
    refused 3 "expected DEVICE=COW" -- take s1 "=$cow"
    refused 3 "no DEVICE=COW given" -- take s1
    refused 3 "No such file or directory" -- take s1 "$live=/dev/${T_PREFIX}missing"
    touch "$T_DIR/plainfile"
    refused 3 "COW too small: 0 bytes" -- take s1 "$live=$T_DIR/plainfile"
    mkdir -p "$m2"
    mount "/dev/mapper/$dev2" "$m2"
    refused 3 "mounted on $m2" -- take s1 "$live=/dev/mapper/$dev2"
    umount "$m2"
    refused 3 "itself" -- take s1 "$live=/dev/mapper/$live"
    refused 3 "underlying" -- take s1 "$live=/dev/$loop"
    refused 3 "used twice" -- take s1 "$live=$cow" "$dev2=$cow"
    refused 3 "too small" -- take s1 "$live=$small"
    refused 3 "ext4 signature" -- take s1 "$live=$sig"
    refused 3 "power of two" -- take s1 "$live=$cow" --chunk-size 3k
    refused 3 "power of two" -- take s1 "$live=$cow" --chunk-size 1m
    refused 3 "invalid size" -- take s1 "$live=$cow" --chunk-size 4q
    refused 3 "invalid set name" -- take .hidden "$live=$cow"
    refused 3 "invalid set name" -- take a/b "$live=$cow"
    refused 3 "invalid set name" -- take "$(printf 'x%.0s' {1..65})" "$live=$cow"
    dmsetup suspend "$dev2"
    refused 3 "suspended" -- take s1 "$dev2=$cow"
    dmsetup resume "$dev2"
    # not root: the check comes before anything else
    local before
    before=$(kernel_state)
    assert_exit 3 "not root" -- setpriv --reuid=65534 --regid=65534 --clear-groups "$DMSNAP" take s1 "$live=$cow"
    assert_contains "$T_OUT" "must be run as root"
    assert_eq "$(kernel_state)" "$before"
    # a device another tool owns
    dmsetup create "${T_PREFIX}lv" -u "LVM-${T_PREFIX}xyz" --table "0 8192 zero"
    refused 3 "owned by LVM" -- take s1 "${T_PREFIX}lv=$cow"

    # with a set in place: duplicates of it are refused
    assert_exit 0 "take s1" -- "$DMSNAP" take s1 "$live=$cow"
    refused 3 "set already exists" -- take s1 "$dev2=$cow2"
    refused 3 "already in snapshot set s1" -- take s2 "$live=$cow2"
    refused 3 "already in snapshot set s1" -- take s2 "${live}-dmsnap-base=$cow2"
    refused 3 "already used by another snapshot set" -- take s2 "$dev2=$cow"
    refused 3 "no such snapshot set" -- status nope
    refused 3 "no such snapshot set" -- merge nope
    refused 3 "no such snapshot set" -- discard nope
    refused 3 "invalid set name" -- status 'bad name'
    refused 2 "Missing expected argument" -- merge
    refused 2 "Unknown option" -- take s9 --bogus
    refused 2 "unknown field" -- status -o nope
    # the signature override works (dev2 is unmounted, so discard cleans up)
    assert_exit 0 "take --force over a signature" -- "$DMSNAP" take s3 "$dev2=$sig" --force
    assert_exit 0 "discard s3" -- "$DMSNAP" discard s3
    umount "$mnt"
    assert_exit 0 "discard s1" -- "$DMSNAP" discard s1
    mount "/dev/mapper/$live" "$mnt"
    assert_eq "$(fx checksum "$mnt")" "$sum" "data changed by refused commands"
}

test_state_directory_is_private_and_guarded() {
    local live=${T_PREFIX}live cow
    fx create "$live" 32M --fs ext4 >/dev/null
    cow=$(fx cow "${T_PREFIX}cow" 8M)
    mkdir -p "$T_DIR/real"
    chmod 700 "$T_DIR/real"
    ln -s "$T_DIR/real" "$T_DIR/link"
    local before
    before=$(kernel_state)
    assert_exit 3 "symlinked state dir" -- env DMSNAP_STATE_DIR="$T_DIR/link" "$DMSNAP" take s1 "$live=$cow"
    assert_contains "$T_OUT" "symlink"
    chmod 777 "$T_DIR/real"
    assert_exit 3 "world-writable state dir" -- env DMSNAP_STATE_DIR="$T_DIR/real" "$DMSNAP" take s1 "$live=$cow"
    assert_contains "$T_OUT" "writable by others"
    assert_eq "$(kernel_state)" "$before" "refused take changed the kernel"
    # a fresh state dir is made 0700, the set file 0600
    assert_exit 0 "take" -- env DMSNAP_STATE_DIR="$T_DIR/fresh/state" "$DMSNAP" take s1 "$live=$cow"
    assert_eq "$(stat -c %a "$T_DIR/fresh/state")" 700
    assert_eq "$(stat -c %a "$T_DIR/fresh/state/s1.json")" 600
    assert_exit 0 "discard" -- env DMSNAP_STATE_DIR="$T_DIR/fresh/state" "$DMSNAP" discard s1
}
