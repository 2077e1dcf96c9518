# shellcheck shell=bash
# Freezing an application's cgroup around a take (issue 16, first part): take --freeze-cgroup
# stops the processes of a cgroup v2 directory before the filesystems are synced and frozen and
# lets them go on after the thaw; every error, every injected fault and a SIGKILL at each step
# leave the cgroup running. Data checked by sha256.
# shellcheck source=Tests/kernel/common.sh
source "$T_REPO/Tests/kernel/common.sh"

# start_app DIR1 DIR2: a process in CG writing a counter to DIR1/seq and DIR2/seq, in that
# order, forever (one pwrite each, no fsync). Sets APP_PID.
start_app() {
    bash -c 'echo $$ >"$1/cgroup.procs"; exec python3 -c "
import os, sys
a = os.open(sys.argv[1] + \"/seq\", os.O_WRONLY | os.O_CREAT)
b = os.open(sys.argv[2] + \"/seq\", os.O_WRONLY | os.O_CREAT)
i = 0
while True:
    i += 1
    r = b\"%012d\\n\" % i
    os.pwrite(a, r, 0)
    os.pwrite(b, r, 0)
" "$2" "$3"' _ "$CG" "$1" "$2" </dev/null >/dev/null 2>&1 &
    APP_PID=$!
    local i
    for i in $(seq 50); do [[ -s $1/seq && -s $2/seq ]] && break; sleep 0.05; done
}

# start_aio_app DIR1 DIR2: a process in CG writing a counter to DIR1/seq and DIR2/seq with one
# io_submit(2) per update (Linux AIO: buffered writes are done inside the call, one after the
# other; the first file alternates): the cgroup freezer, which stops a task only on its way back
# to user space, never stops it between the two. At nice 19: it takes every idle moment without
# slowing the test (the test kernel has one CPU). Sets APP_PID.
start_aio_app() {
    bash -c 'echo $$ >"$1/cgroup.procs"; exec nice -n 19 python3 -c "
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
ctx = ctypes.c_ulong(0)
if libc.syscall(206, ctypes.c_long(2), ctypes.byref(ctx)) != 0:  # io_setup
    sys.exit(\"io_setup: errno %d\" % ctypes.get_errno())
fds = [os.open(d + \"/seq\", os.O_WRONLY | os.O_CREAT, 0o644) for d in sys.argv[1:3]]
buf = ctypes.create_string_buffer(16)
iocbs = [ctypes.create_string_buffer(64) for _ in range(2)]
ptrs = (ctypes.c_void_p * 2)(*[ctypes.addressof(c) for c in iocbs])
events = ctypes.create_string_buffer(64)
i = 0
while True:
    i += 1
    buf.value = b\"%012d\\n\" % i
    for k, fd in enumerate(fds if i % 2 else fds[::-1]):
        # struct iocb: data, key, rw_flags, opcode (1: pwrite), reqprio, fd, buf, nbytes, offset
        struct.pack_into(\"<QIIHhIQQqQII\", iocbs[k], 0, k, 0, 0, 1, 0, fd, ctypes.addressof(buf), 13, 0, 0, 0, 0)
    if libc.syscall(209, ctx, ctypes.c_long(2), ptrs) != 2:  # io_submit
        sys.exit(\"io_submit: errno %d\" % ctypes.get_errno())
    libc.syscall(208, ctx, ctypes.c_long(2), ctypes.c_long(2), events, None)  # io_getevents
" "$2" "$3"' _ "$CG" "$1" "$2" </dev/null >"$T_DIR/aio-app.log" 2>&1 &
    APP_PID=$!
    local i
    for i in $(seq 50); do [[ -s $1/seq && -s $2/seq ]] && break; sleep 0.05; done
    [[ -s $1/seq && -s $2/seq ]] || fail "the AIO writer did not start: $(cat "$T_DIR/aio-app.log")"
}

# stop_app: ends the application started by start_app.
stop_app() {
    kill "$APP_PID"
    wait "$APP_PID" 2>/dev/null || true
}

# discard_under_app WHAT SET: discard needs the filesystems closed: stop the application,
# unmount, discard SET, mount again, start the application again.
discard_under_app() {
    stop_app
    umount "$M1" "$M2"
    assert_exit 0 "$1: discard" -- "$DMSNAP" discard "$2"
    mount "/dev/mapper/$D1" "$M1"
    mount "/dev/mapper/$D2" "$M2"
    start_app "$M1" "$M2"
}

# seq_of FILE: the counter in FILE
seq_of() { local v; v=$(cat "$1"); echo $((10#$v)); }

# frozen_pair: PAIR=(counter in D1's frozen image, counter in D2's)
frozen_pair() {
    mount_base_ro "$D1" "$T_DIR/i1"
    mount_base_ro "$D2" "$T_DIR/i2"
    PAIR=("$(seq_of "$T_DIR/i1/seq")" "$(seq_of "$T_DIR/i2/seq")")
    umount_base_ro "$T_DIR/i1"
    umount_base_ro "$T_DIR/i2"
}

test_cgroup_take_freezes_and_thaws() {
    cgroup_setup
    setup_two
    start_app "$M1" "$M2"
    assert_exit 0 "take --freeze-cgroup" -- "$DMSNAP" take s1 "$D1=$C1" "$D2=$C2" --freeze-cgroup "$CG" --json
    printf '%s' "$T_OUT" >"$T_DIR/take.json"
    assert_eq "$(json "$T_DIR/take.json" 'd["cgroups"]')" "['$CG']" "take JSON: cgroups"
    assert_eq "$(json "$T_DIR/take.json" 'd["cgroups_frozen_ms"] > 0')" True "take JSON: cgroups_frozen_ms"
    log "cgroup frozen for $(json "$T_DIR/take.json" 'd["cgroups_frozen_ms"]') ms"
    assert_eq "$(frozen)" 0 "the cgroup is still frozen after take"
    local a b
    a=$(seq_of "$M1/seq")
    sleep 0.3
    b=$(seq_of "$M1/seq")
    ((b > a)) || fail "the application does not run after take ($a, $b)"
    assert_exit 0 "status" -- "$DMSNAP" status s1
    assert_contains "$T_OUT" "froze $CG"
    # the frozen images: the application was stopped, so the pair differs by at most its order
    frozen_pair
    a=${PAIR[0]} b=${PAIR[1]}
    log "frozen pair: $a $b"
    ((a == b || a == b + 1)) || fail "frozen pair out of order: $a $b"
    stop_app
    local s1 s2
    s1=$(fx checksum "$M1")
    s2=$(fx checksum "$M2")
    assert_exit 0 "merge" -- "$DMSNAP" merge s1
    assert_eq "$(fx checksum "$M1") $(fx checksum "$M2")" "$s1 $s2" "content after merge"
    cgroup_cleanup
}

test_cgroup_bad_input() {
    cgroup_setup
    setup_two
    refused 3 "no such cgroup directory" -- take s1 "$D1=$C1" --freeze-cgroup "$CGROOT/${T_PREFIX}nope"
    refused 3 "is the root cgroup" -- take s1 "$D1=$C1" --freeze-cgroup "$CGROOT"
    refused 3 "not a cgroup v2 directory" -- take s1 "$D1=$C1" --freeze-cgroup "$T_DIR"
    refused 3 "no such unit" -- take s1 "$D1=$C1" --freeze-unit "${T_PREFIX}nope.service"
    # a unit's cgroup with no process: not running
    mkdir -p "$CGROOT/${T_PREFIX}idle.service"
    refused 3 "is not running" -- take s1 "$D1=$C1" --freeze-unit "${T_PREFIX}idle.service"
    rmdir "$CGROOT/${T_PREFIX}idle.service"
    # dmsnap run from inside the cgroup it is asked to freeze
    local before
    before=$(kernel_state)
    assert_exit 3 "its own cgroup" -- bash -c 'echo $$ >"$1/cgroup.procs"; exec "$2" take s1 "$3" --freeze-cgroup "$1"' _ \
        "$CG" "$DMSNAP" "$D1=$C1"
    assert_contains "$T_OUT" "holds dmsnap itself"
    assert_eq "$(kernel_state)" "$before" "a refused take changed the kernel"
    assert_eq "$(frozen)" 0 "a refused take froze the cgroup"
    cgroup_cleanup
}

# A fault injected at every changing call of a take with --freeze-cgroup, then SIGKILL at every
# one: the cgroup runs again (at once after a fault; within 2 s, by the guardian, after SIGKILL).
test_cgroup_thawed_after_every_fault_and_kill() {
    cgroup_setup
    setup_two
    start_app "$M1" "$M2"
    assert_exit 0 "reference take" -- env DMSNAP_TRACE=1 "$DMSNAP" take ref "$D1=$C1" "$D2=$C2" --freeze-cgroup "$CG"
    # the changing calls of a take (the fault hook counts them from 1); the cgroup is frozen from
    # the "freeze cgroup" call to the "thaw cgroup" call: every one of those is tried
    local -a calls
    mapfile -t calls < <(grep -oE 'trace: \+[0-9.]+ ms (create|load|clear|suspend|resume|remove|zero|sync|freeze|thaw|release|attach)( cgroup)?' <<<"$T_OUT" | awk '{print $4 $5}')
    local first=0 last=0 k
    for ((k = 0; k < ${#calls[@]}; k++)); do
        [[ ${calls[k]} == freezecgroup ]] && first=$((k + 1))
        [[ ${calls[k]} == thawcgroup ]] && last=$((k + 1))
    done
    ((first > 0 && last > first)) || fail "no cgroup freeze and thaw in the trace: ${calls[*]}"
    discard_under_app ref ref
    local n mode rc i ok
    for mode in fail kill; do
        for ((n = first; n <= last; n++)); do
            rc=0
            DMSNAP_TEST_FAULT=$mode:$n "$DMSNAP_TEST" take s1 "$D1=$C1" "$D2=$C2" --freeze-cgroup "$CG" >"$T_DIR/out" 2>&1 || rc=$?
            ok=0
            for ((i = 0; i < 20; i++)); do
                if [[ $(frozen) == 0 ]] && timeout 1 touch "$M1/.w" && timeout 1 touch "$M2/.w"; then ok=1; break; fi
                sleep 0.1
            done
            ((ok)) || fail "$mode:$n (exit $rc): after 2 s the cgroup or a filesystem is still frozen: $(cat "$T_DIR/out")"
            "$DMSNAP" recover s1 >/dev/null 2>&1 || true
            if [[ $(dmsetup table "$D1" | awk '{print $3}') == snapshot ]]; then discard_under_app "$mode:$n" s1; fi
            assert_exit 3 "$mode:$n: no set left" -- "$DMSNAP" status s1
        done
    done
    echo "cgroup running again after a fault and after SIGKILL at each of the $((last - first + 1)) calls from its freeze to its thaw" >&2
    stop_app
    cgroup_cleanup
}

# The pair an application writes with one call per update: over 20 takes with --freeze-cgroup
# every frozen image holds equal counters; without it, the filesystems are frozen one after the
# other while the writer runs, and an image can catch it half-way (it blocks on the first frozen
# filesystem having written the other). The gap between the two freezes is what decides how often:
# a few hundred microseconds on idle loop devices here (about one take in four differed, and one CI
# run saw none in 40), tens of milliseconds for a busy filesystem's freeze on a server. Both modes
# run with the test hook sleeping 50 ms before the second freeze (DMSNAP_TEST_FAULT=delay:2:50:
# freeze), so the only difference is the flag: without it takes until the first differing pair
# (at most 40; the writer stops at the first frozen filesystem in either order, so about one in
# two differs).
test_cgroup_freezer_keeps_pairs_consistent() {
    cgroup_setup
    setup_two
    start_aio_app "$M1" "$M2"
    local mode k a b diff
    local -A differ=() takes=()
    for mode in cgroup plain; do
        diff=0
        for ((k = 1; k <= 40; k++)); do
            [[ $mode == cgroup ]] && ((k > 20)) && break
            [[ $mode == plain ]] && ((diff > 0)) && break
            local -a extra=()
            [[ $mode == cgroup ]] && extra=(--freeze-cgroup "$CG")
            assert_exit 0 "take ($mode) $k" -- env DMSNAP_TEST_FAULT=delay:2:50:freeze "$DMSNAP_TEST" take s1 "$D1=$C1" "$D2=$C2" "${extra[@]}"
            frozen_pair
            a=${PAIR[0]} b=${PAIR[1]}
            assert_exit 0 "merge ($mode) $k" -- "$DMSNAP" merge s1
            ((a == b)) || diff=$((diff + 1))
            log "$mode $k: frozen pair $a $b"
        done
        differ[$mode]=$diff takes[$mode]=$((k - 1))
    done
    kill -0 "$APP_PID" 2>/dev/null || fail "the writer died: $(cat "$T_DIR/aio-app.log")"
    echo "frozen pairs that differ, 50 ms between the two freezes: ${differ[cgroup]} of ${takes[cgroup]} with --freeze-cgroup; without it the first after ${takes[plain]} takes" >&2
    assert_eq "${differ[cgroup]}" 0 "pairs that differ with --freeze-cgroup"
    ((differ[plain] >= 1)) || fail "without --freeze-cgroup no pair of ${takes[plain]} differed"
    stop_app
    local s1 s2
    s1=$(fx checksum "$M1")
    s2=$(fx checksum "$M2")
    umount "$M1" "$M2"
    mount "/dev/mapper/$D1" "$M1"
    mount "/dev/mapper/$D2" "$M2"
    assert_eq "$(fx checksum "$M1") $(fx checksum "$M2")" "$s1 $s2" "content after the merges, remounted"
    cgroup_cleanup
}
