#!/usr/bin/env bash
# demo.sh - the main job, end to end: build dmsnap, boot a real Linux kernel (User-Mode
# Linux), make two loop-backed dm devices with ext4, mount them, take a set while a writer
# runs, write more, show status and checksums, merge online; take again, discard, and show
# the devices are back at the frozen image.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:/usr/local/sbin:/usr/sbin:/sbin:$PATH"
scripts/deps.sh
echo "== building dmsnap"
mkdir -p .build
rc=0
swift build --explicit-target-dependency-import-check error >.build/demo-build.log 2>&1 || rc=$?
grep -E "error|warning: |Build complete" .build/demo-build.log || true
rm -f .build/demo-build.log
((rc == 0)) && [[ -x .build/debug/dmsnap ]] || { echo "demo: build failed" >&2; exit 1; }
echo "== booting the test kernel"
exec Tests/kernel/run-in-uml.sh -- scripts/demo-inside.sh
