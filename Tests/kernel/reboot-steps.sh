#!/usr/bin/env bash
# reboot-steps.sh one|two DIR - the two boots of Tests/kernel/reboot.sh (runs inside UML).
set -euo pipefail
cd "$(dirname "$0")/../.."
phase=$1 dir=$2
DMSNAP=$PWD/.build/debug/dmsnap
FX=$PWD/fixtures/loopdev.sh
export DMSNAP_FIXTURE_DIR=$dir/fx DMSNAP_STATE_DIR=$dir/state
A=rbt-a B=rbt-b
fail() { echo "FAIL $*"; exit 1; }

if [[ $phase == one ]]; then
    "$FX" create $A 64M --fs ext4 --mount "$dir/ma" >/dev/null
    "$FX" create $B 64M --fs ext4 --mount "$dir/mb" >/dev/null
    ca=$("$FX" cow rbt-ca 32M)
    cb=$("$FX" cow rbt-cb 32M)
    head -c 3M /dev/urandom >"$dir/ma/before"
    head -c 1M /dev/urandom >"$dir/mb/before"
    sync
    "$DMSNAP" take s1 "$A=$ca"
    "$DMSNAP" take s2 "$B=$cb"
    head -c 5M /dev/urandom >"$dir/ma/after"
    rm "$dir/ma/before"
    sync
    "$FX" checksum "$dir/ma" >"$dir/expected-a"
    "$FX" checksum "/dev/mapper/$A-dmsnap-base" >"$dir/frozen-a"
    for n in $A $B; do dmsetup table "$n" >/dev/null; done
    # what the admin's tools know: the original tables and the loop files
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(d['members'][0]['originalTable'])" "$dir/state/s1.json" >"$dir/table-a"
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(d['members'][0]['originalTable'])" "$dir/state/s2.json" >"$dir/table-b"
    losetup -l -n -O NAME,BACK-FILE >"$dir/loops"
    sync
    echo "boot one: took s1 and s2, wrote, halting without cleanup"
    exit 0
fi

# boot two: every dm device is gone. Re-attach the loops at the same paths, re-create the
# live devices with their original tables (what LVM or a boot script would do).
while read -r name file; do losetup "$name" "$file"; done <"$dir/loops"
dmsetup create $A --table "$(cat "$dir/table-a")"
dmsetup create $B --table "$(cat "$dir/table-b")"
cleanup() { "$FX" sweep rbt- >/dev/null 2>&1 || true; }
trap cleanup EXIT

# the stale-base guard: B is mounted and written directly after the reboot
mkdir -p "$dir/mb"
mount "/dev/mapper/$B" "$dir/mb"
touch "$dir/mb/written-after-reboot"
umount "$dir/mb"
out=$("$DMSNAP" activate s2 2>&1) && fail "reboot_stale_base_refused: activate accepted a changed device: $out"
rc=$?
[[ $rc == 3 && $out == *"content changed since take"* ]] || fail "reboot_stale_base_refused: exit $rc: $out"
echo "PASS reboot_stale_base_refused ($out)"

# the set comes back with every change
"$DMSNAP" activate s1 || fail "reboot_activate_merge: activate failed"
"$DMSNAP" status s1
[[ $("$FX" checksum "/dev/mapper/$A-dmsnap-base") == "$(cat "$dir/frozen-a")" ]] || fail "reboot_activate_merge: base is not the frozen image"
mount "/dev/mapper/$A" "$dir/ma"
[[ $("$FX" checksum "$dir/ma") == "$(cat "$dir/expected-a")" ]] || fail "reboot_activate_merge: content after activate differs"
"$DMSNAP" merge s1 || fail "reboot_activate_merge: merge failed"
[[ $("$FX" checksum "$dir/ma") == "$(cat "$dir/expected-a")" ]] || fail "reboot_activate_merge: content after merge differs"
umount "$dir/ma"
mount "/dev/mapper/$A" "$dir/ma"
[[ $("$FX" checksum "$dir/ma") == "$(cat "$dir/expected-a")" ]] || fail "reboot_activate_merge: content after remount differs"
umount "$dir/ma"
echo "PASS reboot_activate_merge"
