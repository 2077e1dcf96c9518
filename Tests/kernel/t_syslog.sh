# shellcheck shell=bash
# The system log (issue 17): a listener on /dev/log (the socket journald and rsyslog read), and
# the shipped dmsnap: one line per state change of a set, identifier dmsnap; nothing with
# --no-syslog, nothing for a refused command, nothing from the test build.
# shellcheck source=Tests/kernel/common.sh
source "$T_REPO/Tests/kernel/common.sh"

start_syslog() { # listen on /dev/log; each datagram one line in $T_DIR/syslog
    rm -f /dev/log
    : >"$T_DIR/syslog"
    python3 -u -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
print("ready", flush=True)
out = open(sys.argv[1], "a")
while True:
    out.write(s.recv(65536).decode(errors="replace").rstrip("\n") + "\n")
    out.flush()' "$T_DIR/syslog" >"$T_DIR/syslog.ready" &
    SYSLOG_PID=$!
    local i
    for ((i = 0; i < 100; i++)); do
        [[ -s $T_DIR/syslog.ready ]] && return 0
        sleep 0.05
    done
    fail "the /dev/log listener did not start"
}

stop_syslog() {
    kill "$SYSLOG_PID" 2>/dev/null
    wait "$SYSLOG_PID" 2>/dev/null || true
    rm -f /dev/log
}

# lines from dmsnap: "<PRI>Mmm dd hh:mm:ss dmsnap[PID]: MESSAGE" -> "PRI MESSAGE"
syslog_lines() { sed -nE 's/^<([0-9]+)>.{15} dmsnap\[[0-9]+\]: (.*)$/\1 \2/p' "$T_DIR/syslog"; }

test_syslog_one_line_per_state_change() {
    setup_two
    local sum1 sum2
    start_syslog
    # refused (unknown COW): nothing changed, nothing logged
    assert_exit 3 "refused take" -- "$DMSNAP" take s1 "$D1=/dev/nonexistent"
    assert_exit 0 "take" -- "$DMSNAP" take s1 "$D1=$C1" "$D2=$C2"
    echo change >"$M1/g"
    sync
    sum1=$(fx checksum "$M1")
    sum2=$(fx checksum "$M2")
    assert_exit 0 "merge --no-wait" -- "$DMSNAP" merge s1 --no-wait
    assert_exit 0 "merge (finishes)" -- "$DMSNAP" merge s1
    assert_exit 0 "take, --no-syslog" -- "$DMSNAP" take s2 "$D1=$C1" --no-syslog
    assert_exit 0 "merge, test build" -- "$DMSNAP_TEST" merge s2
    assert_exit 0 "status (reads only)" -- "$DMSNAP" status
    sleep 0.2
    stop_syslog
    syslog_lines >"$T_DIR/lines"
    cat "$T_DIR/lines"
    # <29>: facility daemon (3) * 8 + notice (5)
    assert_eq "$(cat "$T_DIR/lines")" "29 set s1: taken: $D1=$C1, $D2=$C2
29 set s1: merge started
29 set s1: merged: every change is in the devices; set forgotten" "the system log lines"
    assert_eq "$(fx checksum "$M1")" "$sum1" "merge lost a change"
    assert_eq "$(fx checksum "$M2")" "$sum2"
}

# A warning goes to the system log too (daemon.warning), beside the state change it belongs to:
# a discard whose COW died warns that the COW still carries a snapshot header.
test_syslog_warning_of_a_dead_cow() {
    local live=${T_PREFIX}live mnt=$T_DIR/mnt cowdev=${T_PREFIX}cowdev frozen
    fx create "$live" 64M --fs ext4 --mount "$mnt" >/dev/null
    cow_device "$cowdev" 16M
    head -c 2M /dev/urandom >"$mnt/a"
    sync
    start_syslog
    assert_exit 0 "take" -- "$DMSNAP" take s1 "$live=/dev/mapper/$cowdev"
    frozen=$(fx checksum "$(base_of "$live")")
    umount "$mnt"
    set_table "$cowdev" "0 $COW_SECTORS error"
    assert_exit 0 "discard with a dead COW" -- "$DMSNAP" discard s1
    sleep 0.2
    stop_syslog
    syslog_lines >"$T_DIR/lines"
    cat "$T_DIR/lines"
    # <28>: daemon.warning
    assert_eq "$(grep -c '^28 /dev/mapper/'"$cowdev"': COW still carries a snapshot header' "$T_DIR/lines")" 1 "the warning line"
    assert_eq "$(grep -c '^29 set s1: ' "$T_DIR/lines")" 2 "the take and discard lines"
    assert_eq "$(fx checksum "/dev/mapper/$live")" "$frozen" "discard did not leave the frozen image"
}
