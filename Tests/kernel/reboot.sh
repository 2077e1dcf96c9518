#!/usr/bin/env bash
# reboot.sh - the reboot test, for real: boot the test kernel once to take a set and write,
# halt without any cleanup, boot it again over the same backing files, re-create the devices,
# 'dmsnap activate', verify the content, merge, verify. Also: a device written after the
# reboot (a stale base) is refused by activate. Ends with "reboot: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
dir=$(mktemp -d /var/tmp/dmsnap-reboot.XXXXXX)
trap 'rm -rf "$dir"' EXIT
Tests/kernel/run-in-uml.sh -- Tests/kernel/reboot-steps.sh one "$dir" >"$dir/boot1.txt" 2>&1
rc1=$?
Tests/kernel/run-in-uml.sh -- Tests/kernel/reboot-steps.sh two "$dir" >"$dir/boot2.txt" 2>&1
rc2=$?
cat "$dir/boot1.txt" "$dir/boot2.txt"
pass=$(grep -c '^PASS ' "$dir/boot2.txt")
fail=$(grep -c '^FAIL ' "$dir/boot1.txt" "$dir/boot2.txt" | awk -F: '{s += $2} END {print s + 0}')
if ((rc1 != 0 || rc2 != 0)) && ((fail == 0)); then fail=1; fi
((pass + fail > 0)) || fail=1
echo "reboot${DMSNAP_KERNEL_UDEV:+ (udev mode)}: $pass passed, $fail failed"
((fail == 0))
