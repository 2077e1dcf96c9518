#!/usr/bin/env bash
# demo-inside.sh - the demo's steps; runs as root in a kernel with device-mapper (see demo.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
DMSNAP=$PWD/.build/debug/dmsnap
FX=$PWD/fixtures/loopdev.sh
export DMSNAP_FIXTURE_DIR=/var/tmp/dmsnap-demo
export DMSNAP_STATE_DIR=/var/tmp/dmsnap-demo/state
P=demo-
cleanup() { "$FX" sweep "$P" 2>/dev/null || true; }
trap cleanup EXIT
cleanup
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
say() { printf '\n# %s\n' "$*"; }

say "Two loop-backed dm devices with ext4, mounted, with some data"
for d in db logs; do
    "$FX" create "$P$d" 128M --fs ext4 --mount "/var/tmp/dmsnap-demo/mnt-$d" >/dev/null
    head -c 16M /dev/urandom >"/var/tmp/dmsnap-demo/mnt-$d/data.bin"
done
sync
cow_db=$("$FX" cow "${P}cow-db" 64M)
cow_logs=$("$FX" cow "${P}cow-logs" 64M)
step "$DMSNAP" devices
sum() { "$FX" checksum "$1" | cut -c1-16; }
echo "checksums at take time: db=$(sum /var/tmp/dmsnap-demo/mnt-db) logs=$(sum /var/tmp/dmsnap-demo/mnt-logs)"

say "A writer keeps appending to db while the set is taken (one freeze window for both)"
( while :; do date +%s.%N >>/var/tmp/dmsnap-demo/mnt-db/journal; sync -f /var/tmp/dmsnap-demo/mnt-db/journal; done ) &
writer=$!
sleep 0.3
step env DMSNAP_TRACE=1 "$DMSNAP" take nightly "${P}db=$cow_db" "${P}logs=$cow_logs"
sleep 0.3
kill $writer; wait $writer 2>/dev/null || true
echo "frozen images (hidden base devices) : db=$(sum /dev/mapper/${P}db-dmsnap-base) logs=$(sum /dev/mapper/${P}logs-dmsnap-base)"

say "The live filesystems keep running; their writes go to the COWs"
head -c 24M /dev/urandom >/var/tmp/dmsnap-demo/mnt-db/new.bin
rm /var/tmp/dmsnap-demo/mnt-logs/data.bin
sync
step "$DMSNAP" status
step "$DMSNAP" status nightly --json
echo "live checksums now: db=$(sum /var/tmp/dmsnap-demo/mnt-db) logs=$(sum /var/tmp/dmsnap-demo/mnt-logs)"
live_db=$(sum /var/tmp/dmsnap-demo/mnt-db)
live_logs=$(sum /var/tmp/dmsnap-demo/mnt-logs)

say "Merge every change back into the devices, online (still mounted)"
step "$DMSNAP" merge nightly
echo "after merge: db=$(sum /var/tmp/dmsnap-demo/mnt-db) logs=$(sum /var/tmp/dmsnap-demo/mnt-logs) (expected db=$live_db logs=$live_logs)"
step "$DMSNAP" status

say "Take again, change things, then discard: back to the frozen image"
step "$DMSNAP" take trial "${P}db=$cow_db"
frozen=$(sum /dev/mapper/${P}db-dmsnap-base)
rm -f /var/tmp/dmsnap-demo/mnt-db/*.bin
sync
echo "db after rm: $(sum /dev/mapper/${P}db)  (frozen image: $frozen)"
echo "discard while mounted is refused:"
"$DMSNAP" discard trial || echo "(exit status $?)"
umount /var/tmp/dmsnap-demo/mnt-db
step "$DMSNAP" discard trial
echo "db after discard: $(sum /dev/mapper/${P}db)  (frozen image: $frozen)"
[[ $(sum /dev/mapper/${P}db) == "$frozen" ]] && echo "OK: the device is exactly the frozen image again"
