# shellcheck shell=bash
# dmsnap run (issue 16): a set taken around a command. A command that succeeds leaves every
# change (merged); one that fails with --remount gets the frozen image back, mounted where and
# how it was, with its service running again; without --remount the set is kept and the message
# says what to do; signals go to the command; bad input changes nothing. Data checked by sha256.
# shellcheck source=Tests/kernel/common.sh
source "$T_REPO/Tests/kernel/common.sh"

# fake_units: a systemctl for the test kernel (no systemd runs there) first in PATH: 'stop U'
# kills the cgroup system.slice/U (cgroup.kill) and waits until it is empty (cgroup files have
# no size: they are read, not tested with -s), 'start U' runs
# $UNITS/U in it. Every call is logged to $UNITS/log.
fake_units() {
    UNITS=$T_DIR/units
    mkdir -p "$UNITS/bin" "$CGROOT/system.slice"
    cat >"$UNITS/bin/systemctl" <<EOF
#!/bin/bash
set -eu
cg=$CGROOT/system.slice/\$2
echo "\$1 \$2" >>$UNITS/log
case \$1 in
stop)
    echo 1 >"\$cg/cgroup.kill"
    for i in \$(seq 100); do [[ -n \$(cat "\$cg/cgroup.procs") ]] || exit 0; sleep 0.05; done
    exit 1 ;;
start)
    mkdir -p "\$cg"
    setsid bash -c 'echo \$\$ >"\$1/cgroup.procs"; exec "\$2"' _ "\$cg" "$UNITS/\$2" </dev/null >/dev/null 2>&1 &
    for i in \$(seq 100); do [[ -n \$(cat "\$cg/cgroup.procs") ]] && exit 0; sleep 0.05; done
    exit 1 ;;
*) exit 2 ;;
esac
EOF
    chmod +x "$UNITS/bin/systemctl"
    export PATH=$UNITS/bin:$PATH
}

# unit_writer UNIT DIR...: the unit's program: appends a line to DIR/log of each DIR, forever,
# keeping the files open (so an unmount would be refused while it runs).
unit_writer() {
    local unit=$1
    shift
    printf '#!/usr/bin/python3\nimport sys, time\nfs = [open(d + "/log", "a") for d in sys.argv[1:]]\nwhile True:\n    for f in fs:\n        f.write("x" * 100 + "\\n"); f.flush()\n    time.sleep(0.01)\n' >"$UNITS/$unit.py"
    printf '#!/bin/sh\nexec python3 %s %s\n' "$UNITS/$unit.py" "$*" >"$UNITS/$unit"
    chmod +x "$UNITS/$unit"
}

unit_cleanup() {
    local cg=$CGROOT/system.slice/$1
    [[ -d $cg ]] || return 0
    echo 0 >"$cg/cgroup.freeze" 2>/dev/null || true
    echo 1 >"$cg/cgroup.kill" 2>/dev/null || true
    local i
    for i in $(seq 50); do [[ -n $(cat "$cg/cgroup.procs") ]] || break; sleep 0.05; done
    rmdir "$cg" 2>/dev/null || true
}

# mounts_of DIR...: each mount's target, source, type and options (findmnt), for comparing.
mounts_of() {
    local d
    for d in "$@"; do findmnt -n -o TARGET,SOURCE,FSTYPE,OPTIONS --mountpoint "$d"; done
}

test_run_success_keeps_every_change() {
    setup_two
    local before2
    before2=$(fx checksum "$M2")
    assert_exit 0 "run (exits 0)" -- "$DMSNAP" run s1 "$D1=$C1" "$D2=$C2" -- \
        sh -c 'test "$DMSNAP_SET" = s1 && head -c 300K /dev/urandom >"$1/new" && sha256sum <"$1/new" >"$1/new.sum"' _ "$M1"
    assert_contains "$T_OUT" "sh exited 0; merged set s1"
    assert_exit 3 "no set left" -- "$DMSNAP" status s1
    assert_eq "$(dmsetup table "$D1" | awk '{print $3}')" linear "D1's table after run"
    umount "$M1" "$M2"
    mount "/dev/mapper/$D1" "$M1"
    mount "/dev/mapper/$D2" "$M2"
    assert_eq "$(sha256sum <"$M1/new")" "$(cat "$M1/new.sum")" "the command's file, remounted"
    assert_eq "$(fx checksum "$M2")" "$before2" "the other device, remounted"
}

test_run_failure_remount_rolls_back_and_restarts_the_service() {
    cgroup_setup
    fake_units
    setup_two
    local unit=${T_PREFIX}db.service
    # mounted with options of their own, which the rollback must keep
    umount "$M1" "$M2"
    mount -o noatime,nodev,commit=7 "/dev/mapper/$D1" "$M1"
    mount -o nosuid,nodelalloc "/dev/mapper/$D2" "$M2"
    unit_writer "$unit" "$M1" "$M2"
    systemctl start "$unit"
    local mounts s1 s2
    mounts=$(mounts_of "$M1" "$M2")
    s1=$(sha256sum <"$M1/f")
    s2=$(sha256sum <"$M2/f")
    assert_exit 5 "run (exits 5) --remount" -- "$DMSNAP" run s1 "$D1=$C1" "$D2=$C2" --freeze-unit "$unit" --remount --json -- \
        sh -c 'head -c 1M /dev/urandom >"$1/f"; head -c 1M /dev/urandom >"$2/f"; echo half-done >"$1/marker"; exit 5' _ "$M1" "$M2"
    assert_contains "$T_OUT" "sh exited 5; rolled back: set s1 discarded"
    printf '%s' "$T_OUT" | sed -n '/^{/,/^}/p' >"$T_DIR/run.json"
    assert_eq "$(json "$T_DIR/run.json" 'd["action"], d["exit_code"], d["status"]')" "discarded 5 5" "run JSON"
    assert_exit 3 "no set left" -- "$DMSNAP" status s1
    assert_eq "$(mounts_of "$M1" "$M2")" "$mounts" "mounted at the same places with the same options"
    assert_eq "$(sha256sum <"$M1/f") $(sha256sum <"$M2/f")" "$s1 $s2" "the frozen image is back"
    assert_no_file "$M1/marker"
    assert_eq "$(cat "$UNITS/log")" "start $unit
stop $unit
start $unit" "systemctl calls"
    # the service runs again, on the rolled-back filesystems
    local cg=$CGROOT/system.slice/$unit n1
    assert_eq "$(awk '$1 == "frozen" {print $2}' "$cg/cgroup.events")" 0 "the unit's cgroup is frozen"
    n1=$(wc -l <"$M1/log")
    sleep 0.5
    (($(wc -l <"$M1/log") > n1)) || fail "the service does not write after the rollback"
    unit_cleanup "$unit"
    cgroup_cleanup
}

test_run_failure_without_remount_keeps_the_set() {
    setup_two
    local s1
    s1=$(sha256sum <"$M1/f")
    assert_exit 7 "run (exits 7), mounted, no --remount" -- "$DMSNAP" run s1 "$D1=$C1" -- sh -c 'head -c 1M /dev/urandom >"$1/f"; exit 7' _ "$M1"
    assert_contains "$T_OUT" "sh exited 7; $D1: is mounted on $M1"
    assert_contains "$T_OUT" "the set is kept: unmount its filesystems and run 'dmsnap discard s1'"
    assert_exit 0 "the set is kept" -- "$DMSNAP" status s1
    # what the message says to do works
    umount "$M1"
    assert_exit 0 "discard as told" -- "$DMSNAP" discard s1
    mount "/dev/mapper/$D1" "$M1"
    assert_eq "$(sha256sum <"$M1/f")" "$s1" "the frozen image after the discard"
    # --remount, but a process keeps the filesystem busy: everything stays mounted, the set is kept
    assert_exit 1 "run --remount, busy" -- "$DMSNAP" run s2 "$D1=$C1" --remount -- sh -c 'exec 3<"$1/f"; sleep 600 </dev/null >/dev/null 2>&1 & echo $! >"$2"; exit 1' _ "$M1" "$T_DIR/holder"
    assert_contains "$T_OUT" "stop what keeps $M1 busy (fuser -vm $M1)"
    assert_contains "$T_OUT" "'dmsnap discard s2'"
    findmnt -n --mountpoint "$M1" >/dev/null || fail "$M1 is not mounted after a busy rollback"
    assert_exit 0 "the set is kept" -- "$DMSNAP" status s2
    kill "$(cat "$T_DIR/holder")"
    assert_exit 0 "merge keeps the changes" -- "$DMSNAP" merge s2
}

test_run_signal_goes_to_the_command_and_rolls_back() {
    setup_two
    local s1
    umount "$M2"
    s1=$(sha256sum <"$M1/f")
    "$DMSNAP" run s1 "$D1=$C1" --remount -- sh -c 'echo changed >"$1/f"; trap "echo got-term >&2; exit 9" TERM; while :; do sleep 0.1; done' _ "$M1" \
        >"$T_DIR/out" 2>&1 &
    local pid=$! i rc=0
    for i in $(seq 100); do grep -q "running sh" "$T_DIR/out" && [[ $(cat "$M1/f" 2>/dev/null) == changed ]] && break; sleep 0.1; done
    kill -TERM "$pid"
    wait "$pid" || rc=$?
    log "$(cat "$T_DIR/out")"
    assert_eq "$rc" 9 "dmsnap run's exit status after SIGTERM (the command's)"
    assert_contains "$(cat "$T_DIR/out")" "got-term"
    assert_contains "$(cat "$T_DIR/out")" "after dmsnap got SIGTERM and passed it on; rolled back"
    assert_eq "$(sha256sum <"$M1/f")" "$s1" "the frozen image after the rollback"
    assert_exit 3 "no set left" -- "$DMSNAP" status s1
}

test_run_bad_input() {
    setup_two
    refused 3 "no command given" -- run s1 "$D1=$C1"
    refused 3 "/nonexistent/cmd: is not an executable program" -- run s1 "$D1=$C1" -- /nonexistent/cmd
    refused 2 "--on-failure" -- run s1 "$D1=$C1" --on-failure merge -- true
    # what dmsnap runs from, on a device of the set: a rollback would pull it away
    DMSNAP_STATE_DIR=$M1/state refused 3 "holds dmsnap's state directory ($M1/state)" -- run s1 "$D1=$C1" -- true
    cp "$DMSNAP" "$M1/dmsnap"
    local before
    before=$(kernel_state)
    assert_exit 3 "run from the set" -- "$M1/dmsnap" run s1 "$D1=$C1" -- true
    assert_contains "$T_OUT" "holds dmsnap's own binary (/proc/self/exe)"
    assert_eq "$(kernel_state)" "$before" "a refused run changed the kernel"
    # keeping the set on failure is allowed there
    assert_exit 1 "run --on-failure keep" -- "$M1/dmsnap" run s1 "$D1=$C1" --on-failure keep -- false
    assert_contains "$T_OUT" "set s1 kept (--on-failure keep)"
    assert_exit 0 "merge" -- "$DMSNAP" merge s1
}
