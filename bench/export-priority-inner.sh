#!/usr/bin/env bash
# export-priority-inner.sh - why the export runs at nice 19: a writer's ops/s on the live
# filesystem while different readers of the frozen image loop for 3 s (dd at 4M/1M/256k, with
# ionice -c3, with nice -n 19; dmsnap export at its default priority and with --full-speed),
# two rounds in one boot. Runs inside the test kernel, after a release build and bench/export.sh
# (for the writer):
#   Tests/kernel/run-in-uml.sh --mem 2G -- bench/export-priority-inner.sh
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
DMSNAP=$repo/.build/release/dmsnap
work=$(mktemp -d /var/tmp/dmsnap-bench-prio.XXXXXX)
export DMSNAP_FIXTURE_DIR=$work/fixtures DMSNAP_STATE_DIR=$work/state DM_DISABLE_UDEV=1
fx() { "$repo/fixtures/loopdev.sh" "$@"; }
trap 'kill $WPID 2>/dev/null; "$DMSNAP" merge bx >/dev/null 2>&1; fx sweep dmsbp- >/dev/null 2>&1; rm -rf --one-file-system "$work"' EXIT
fx create dmsbp-live 512M --fs ext4 --mount "$work/mnt" >/dev/null
cow=$(fx cow dmsbp-cow 256M)
python3 -c "
import os
with open('$work/mnt/r.bin','wb') as f:
    for _ in range(384): f.write(os.urandom(1<<20))"
sync
"$DMSNAP" take bx "dmsbp-live=$cow" >/dev/null
base=/dev/mapper/dmsbp-live-dmsnap-base
coproc BW { exec $repo/.build/bench/bench-writer "$work/mnt/w.dat" $((4 << 20)); }
WPID=$BW_PID
exec {wfd}>&"${BW[1]}" {rfd}<&"${BW[0]}"
read -r -t 60 -u "$rfd" line
measure() { # NAME CMD: writer ops/s over 3 s while CMD loops
    local name=$1; shift
    printf 'm\n' >&"$wfd"; read -r -u "$rfd" line
    if [[ $name != alone ]]; then
        ( end=$((SECONDS + 3)); while ((SECONDS < end)); do "$@" >/dev/null 2>&1; done ) 
    else sleep 3; fi
    printf 'r\n' >&"$wfd"; read -r -u "$rfd" line
    echo "$name $line"
}
for r in 1 2; do
measure alone true
measure dd4M dd if=$base bs=4M iflag=direct status=none
measure dd1M dd if=$base bs=1M iflag=direct status=none
measure dd256k dd if=$base bs=256k iflag=direct status=none
measure nicedd1M nice -n 19 dd if=$base bs=1M iflag=direct status=none
measure ionicedd1M ionice -c3 dd if=$base bs=1M iflag=direct status=none
measure export "$DMSNAP" export bx dmsbp-live
measure exportfull "$DMSNAP" export bx dmsbp-live --full-speed
done
