#!/usr/bin/env bash
# test.sh - every test: host unit tests (swift test), the kernel suite inside a real
# Linux 6.1 kernel (User-Mode Linux) against real dm devices on loop devices, and the install
# tests (release build, Debian package, manual pages, completions, systemd unit).
# Ends with one summary line: "total: N passed, N failed". Exit 0 only if all passed
# and the kernel suite really ran.
#   scripts/test.sh [KERNEL_FILTER]      (KERNEL_FILTER: regex over kernel test names)
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:/usr/local/sbin:/usr/sbin:/sbin:$PATH"

scripts/deps.sh || exit 1

log=.build/test-logs
mkdir -p "$log"

echo "== build"
# The import check makes an import across the layers that Package.swift does not declare a
# build error (it is reported after "Build complete!", so the exit status decides).
swift build --build-tests --explicit-target-dependency-import-check error 2>&1 | tee "$log/build.txt" |
    grep -E "error|warning: |Compiling dmsnap|Build complete"
build_rc=${PIPESTATUS[0]}
if ((build_rc != 0)) || ! grep -q "Build complete" "$log/build.txt"; then
    echo "build failed (see $log/build.txt)"
    echo "total: 0 passed, 1 failed"
    exit 1
fi

echo "== unit tests (swift test)"
swift test --skip-build 2>&1 | tee "$log/unit.txt" | grep -E "^(✘|✔ Suite|.*Test run with)|error:" || true
unit_pass=$(grep -E "^✔ Test .* passed" "$log/unit.txt" | grep -cv "Test run with" || true)
unit_fail=$(grep -cE "^✘ Test .* failed" "$log/unit.txt" || true)
if ! grep -qE "Test run with [0-9]+ tests? .* passed" "$log/unit.txt"; then
    # the runner crashed or reported failure without per-test lines
    ((unit_fail == 0)) && unit_fail=1
fi
echo "unit: $unit_pass passed, $unit_fail failed"

# The kernel suite runs in $SHARDS test kernels at once (one per core); they share the
# tests through a queue directory, each test in the first kernel that claims it. Beside them, a
# kernel in udev mode (systemd-udevd running in it; a udev cookie left is a failure) runs the
# lifecycle, bad-input and udev tests, which the others leave out.
SHARDS=${DMSNAP_KERNEL_SHARDS:-$(nproc)}
((SHARDS >= 1)) || SHARDS=1
udev_set='^t_(lifecycle|badinput|udev)$'
exclude=$udev_set
(($#)) && exclude=''
echo "== kernel suite ($SHARDS User-Mode Linux kernels, and one in udev mode)"
queue=$(mktemp -d /var/tmp/dmsnap-queue.XXXXXX)
pids=()
for ((i = 1; i <= SHARDS; i++)); do
    DMSNAP_SUITE_EXCLUDE=$exclude DMSNAP_SUITE_QUEUE=$queue Tests/kernel/run-in-uml.sh -- Tests/kernel/suite.sh "$@" \
        >"$log/kernel-$i.txt" 2>&1 &
    pids+=($!)
done
udev_rc=0
udev_pid=''
if (($# == 0)); then
    DMSNAP_KERNEL_UDEV=1 Tests/kernel/run-in-uml.sh -- Tests/kernel/suite.sh "$udev_set" >"$log/kernel-udev.txt" 2>&1 &
    udev_pid=$!
fi
kernel_pass=0
kernel_fail=0
for ((i = 1; i <= SHARDS; i++)); do
    rc=0
    wait "${pids[i - 1]}" || rc=$?
    echo "-- kernel $i"
    cat "$log/kernel-$i.txt"
    summary=$(grep -E "^kernel: [0-9]+ passed, [0-9]+ failed" "$log/kernel-$i.txt" | tail -1 || true)
    if [[ -z $summary ]]; then
        echo "kernel $i did not run to its summary (exit $rc): that is a failure"
        kernel_fail=$((kernel_fail + 1))
        continue
    fi
    p=$(sed -E 's/^kernel: ([0-9]+) passed.*/\1/' <<<"$summary")
    f=$(sed -E 's/^kernel: [0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$summary")
    if ((rc != 0 && f == 0)); then f=1; fi
    kernel_pass=$((kernel_pass + p))
    kernel_fail=$((kernel_fail + f))
done
rm -rf "$queue"

# The reboot test, and again in udev mode, side by side.
echo "== reboot test (two boots of the test kernel over the same backing files), and in udev mode"
Tests/kernel/reboot.sh >"$log/reboot.txt" 2>&1 &
reboot_pid=$!
DMSNAP_KERNEL_UDEV=1 Tests/kernel/reboot.sh >"$log/reboot-udev.txt" 2>&1 &
reboot_udev_pid=$!
wait "$reboot_pid"
wait "$reboot_udev_pid"
[[ -z $udev_pid ]] || wait "$udev_pid" || udev_rc=$?
# count RESULT_FILE LABEL REGEX_PREFIX: adds a "PREFIX: N passed, N failed" summary to the totals
count() {
    local summary
    summary=$(grep -E "^$3: [0-9]+ passed, [0-9]+ failed" "$1" | tail -1 || true)
    if [[ -z $summary ]]; then
        echo "$2 did not run to its summary: that is a failure"
        kernel_fail=$((kernel_fail + 1))
        return
    fi
    kernel_pass=$((kernel_pass + $(sed -E "s/^$3: ([0-9]+) passed.*/\\1/" <<<"$summary")))
    kernel_fail=$((kernel_fail + $(sed -E "s/^$3: [0-9]+ passed, ([0-9]+) failed.*/\\1/" <<<"$summary")))
}
cat "$log/reboot.txt"
count "$log/reboot.txt" "the reboot test" reboot
echo "-- reboot test, udev mode"
cat "$log/reboot-udev.txt"
count "$log/reboot-udev.txt" "the reboot test in udev mode" 'reboot \(udev mode\)'
if [[ -n $udev_pid ]]; then
    echo "-- kernel, udev mode"
    cat "$log/kernel-udev.txt"
    count "$log/kernel-udev.txt" "the udev-mode kernel" kernel
    if ((udev_rc != 0)) && ! grep -qE "^kernel: [0-9]+ passed, [1-9]" "$log/kernel-udev.txt"; then
        echo "the udev-mode kernel exited $udev_rc: that is a failure"
        kernel_fail=$((kernel_fail + 1))
    fi
fi
if ((kernel_pass + kernel_fail == 0)); then
    echo "the kernel suite ran no test: that is a failure"
    kernel_fail=1
fi

echo "== install (release build, Debian package, lintian, manual pages, completions, unit)"
install_pass=0 install_fail=0
if swift build -c release --product dmsnap >"$log/release-build.txt" 2>&1; then
    Tests/install/test-install.sh "$(swift build -c release --show-bin-path)/dmsnap" 2>&1 | tee "$log/install.txt"
    summary=$(grep -E "^install: [0-9]+ passed, [0-9]+ failed" "$log/install.txt" | tail -1 || true)
    if [[ -z $summary ]]; then
        echo "the install tests did not run to their summary: that is a failure"
        install_fail=1
    else
        install_pass=$(sed -E 's/^install: ([0-9]+) passed.*/\1/' <<<"$summary")
        install_fail=$(sed -E 's/^install: [0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$summary")
    fi
else
    echo "release build failed (see $log/release-build.txt)"
    install_fail=1
fi

echo "unit: $unit_pass passed, $unit_fail failed"
echo "kernel: $kernel_pass passed, $kernel_fail failed"
echo "install: $install_pass passed, $install_fail failed"
echo "total: $((unit_pass + kernel_pass + install_pass)) passed, $((unit_fail + kernel_fail + install_fail)) failed"
((unit_fail + kernel_fail + install_fail == 0))
