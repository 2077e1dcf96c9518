# shellcheck shell=bash
# Faults: a failure injected at every changing kernel call of take, merge and discard; a kill -9
# at every step followed by 'dmsnap recover'; the lock between two dmsnap processes.
# After each: no filesystem frozen, no device suspended, tables either original or a complete
# snapshot, data checksums intact.
# shellcheck source=Tests/kernel/common.sh
source "$T_REPO/Tests/kernel/common.sh"

# no_suspended: fails if any dm device is suspended.
no_suspended() {
    local s
    s=$(dmsetup info -c --noheadings --separator ' ' -o name,suspended | awk '$2 != "Active" {print $1}')
    [[ -z $s ]] || fail "$1: left suspended: $s"
}

# not_frozen MNT: a write to MNT completes within 5 s.
not_frozen() {
    timeout 5 touch "$1/.probe" || fail "$2: $1 is frozen"
    rm -f "$1/.probe"
}

# table_kind NAME: original | snapshot | snapshot-merge
table_kind() { dmsetup table "$1" | awk '{print $3}'; }
# table_kinds A B: "KIND KIND" in one call
table_kinds() { dmsetup table | awk -v a="$1:" -v b="$2:" '$1 == a {x = $4} $1 == b {y = $4} END {print x, y}'; }


# wipe_cows: zero the first 4 KiB of both COWs (what a warning about an unreleased COW asks for)
wipe_cows() {
    dd if=/dev/zero of="$C1" bs=4096 count=1 conv=fsync status=none
    dd if=/dev/zero of="$C2" bs=4096 count=1 conv=fsync status=none
}

# count_changing_calls ARGS...: how many changing kernel calls a successful run makes
# (from DMSNAP_TRACE), by running it for real.
# (a COW release is two calls: wipe the signatures, zero the header)
count_calls() {
    local steps releases
    steps=$(grep -cE 'trace: \+[0-9.]+ ms (create|load|clear|suspend|resume|remove|zero|sync|freeze|thaw|release) ' <<<"$1")
    releases=$(grep -cE 'trace: \+[0-9.]+ ms release ' <<<"$1" || true)
    echo $((steps + releases))
}

# reference_take_count: sets TOTAL_T, the changing calls of a successful take of the
# two-device set (then discarded; devices mounted again).
reference_take_count() {
    assert_exit 0 "reference take" -- env DMSNAP_TRACE=1 "$DMSNAP" take ref "$D1=$C1" "$D2=$C2"
    TOTAL_T=$(count_calls "$T_OUT")
    log "take makes $TOTAL_T changing calls"
    ((TOTAL_T >= 10)) || fail "too few calls counted: $TOTAL_T"
    umount "$M1" "$M2"
    assert_exit 0 "discard ref" -- "$DMSNAP" discard ref
    mount "/dev/mapper/$D1" "$M1"
    mount "/dev/mapper/$D2" "$M2"
}

test_fault_at_every_take_call() {
    setup_two
    local s1 s2 n total rc tried=0
    s1=$(fx checksum "$M1")
    s2=$(fx checksum "$M2")
    reference_take_count
    total=$TOTAL_T
    for ((n = 1; n <= total; n++)); do
        tried=$((tried + 1))
        rc=0
        DMSNAP_TEST_FAULT=fail:$n "$DMSNAP_TEST" take s1 "$D1=$C1" "$D2=$C2" >"$T_DIR/out" 2>&1 || rc=$?
        log "fail:$n -> exit $rc: $(head -c 300 "$T_DIR/out")"
        no_suspended "fail:$n"
        not_frozen "$M1" "fail:$n"
        not_frozen "$M2" "fail:$n"
        case $rc in
        4) # rolled back: original tables, no base, no set
            assert_eq "$(table_kinds "$D1" "$D2")" "linear linear" "fail:$n rolled back but tables differ"
            assert_exit '!0' "fail:$n no base" -- dmsetup info "$D1-dmsnap-base"
            assert_exit 3 "fail:$n no set" -- "$DMSNAP" status s1 ;;
        0 | 1) # failed after the point of no return (or succeeded): a complete snapshot
            assert_eq "$(table_kinds "$D1" "$D2")" "snapshot snapshot" "fail:$n committed but incomplete"
            assert_exit 0 "fail:$n recover" -- "$DMSNAP" recover s1
            assert_exit 0 "fail:$n status" -- "$DMSNAP" status s1 -o set_state --noheadings
            assert_contains "$T_OUT" "active"
            umount "$M1" "$M2"
            assert_exit 0 "fail:$n discard" -- "$DMSNAP" discard s1
            mount "/dev/mapper/$D1" "$M1"
            mount "/dev/mapper/$D2" "$M2" ;;
        *) fail "fail:$n: unexpected exit $rc: $(cat "$T_DIR/out")" ;;
        esac
        assert_eq "$(fx checksum "$M1") $(fx checksum "$M2")" "$s1 $s2" "fail:$n: data changed"
    done
    echo "take fault points tried: $tried" >&2
}

# reference_counts: sets TOTAL_M and TOTAL_D, the changing calls of a successful merge and
# discard of the two-device set (devices mounted again afterwards).
reference_counts() {
    assert_exit 0 "take" -- "$DMSNAP" take ref "$D1=$C1" "$D2=$C2"
    head -c 1M /dev/urandom >"$M1/g"
    sync
    assert_exit 0 "reference merge" -- env DMSNAP_TRACE=1 "$DMSNAP" merge ref
    TOTAL_M=$(count_calls "$T_OUT")
    assert_exit 0 "take" -- "$DMSNAP" take ref "$D1=$C1" "$D2=$C2"
    umount "$M1" "$M2"
    assert_exit 0 "reference discard" -- env DMSNAP_TRACE=1 "$DMSNAP" discard ref
    TOTAL_D=$(count_calls "$T_OUT")
    mount "/dev/mapper/$D1" "$M1"
    mount "/dev/mapper/$D2" "$M2"
    log "merge makes $TOTAL_M changing calls, discard $TOTAL_D"
    ((TOTAL_M >= 8 && TOTAL_D >= 6)) || fail "too few calls counted: $TOTAL_M $TOTAL_D"
}

# interrupted MODE N CMD...: runs dmsnap CMD with the N-th changing call failing (MODE fail)
# or the process killed there (MODE kill); checks it reported that, and sets RC.
interrupted() {
    local mode=$1 n=$2
    shift 2
    RC=0
    DMSNAP_TEST_FAULT=$mode:$n "$DMSNAP_TEST" "$@" >"$T_DIR/out" 2>&1 || RC=$?
    log "$1 $mode:$n -> exit $RC: $(head -c 300 "$T_DIR/out")"
    if [[ $mode == kill ]]; then
        ((RC == 137)) || fail "$1 kill:$n: expected SIGKILL (137), got $RC: $(cat "$T_DIR/out")"
    elif ((RC == 0)); then
        # a COW that cannot be released after the point of no return earns a warning, not a failure
        grep -q "dmsnap: warning: .*: COW still carries a snapshot header" "$T_DIR/out" ||
            fail "$1 fail:$n: the injected fault was not reported (exit 0, no warning)"
    else
        ((RC != 137)) || fail "$1 fail:$n: killed instead of failing"
    fi
}

# merge_sweep MODE: for every changing call of merge, interrupt it there; afterwards nothing is
# suspended or frozen, no data changed, and 'recover' (plus 'merge' again if the set remains)
# ends the set merged with every write kept.
merge_sweep() {
    local mode=$1 n tried=0 s1 s2
    setup_two
    reference_counts
    for ((n = 1; n <= TOTAL_M; n++)); do
        tried=$((tried + 1))
        assert_exit 0 "take" -- "$DMSNAP" take s1 "$D1=$C1" "$D2=$C2"
        head -c 1M /dev/urandom >"$M1/h$n"
        sync
        s1=$(fx checksum "$M1")
        s2=$(fx checksum "$M2")
        interrupted "$mode" "$n" merge s1
        # a failed run cleans up after itself; a killed one leaves that to recover
        if [[ $mode == fail ]]; then
            no_suspended "merge $mode:$n"
            not_frozen "$M1" "merge $mode:$n"
        fi
        # (exit 0 after a fault: a COW release that only warned; the set is merged already)
        if ((RC == 0)); then
            assert_exit 3 "merge $mode:$n: set gone" -- "$DMSNAP" status s1
            # as the warning says: wipe the COW's first chunk before reusing it
            wipe_cows
        else
            assert_exit 0 "merge $mode:$n recover" -- "$DMSNAP" recover s1
        fi
        no_suspended "merge $mode:$n recovered"
        not_frozen "$M1" "merge $mode:$n recovered"
        if "$DMSNAP" status s1 >/dev/null 2>&1; then
            assert_exit 0 "merge $mode:$n merge again" -- "$DMSNAP" merge s1
        fi
        assert_eq "$(table_kinds "$D1" "$D2")" "linear linear" "merge $mode:$n: not finished"
        assert_eq "$(fx checksum "$M1") $(fx checksum "$M2")" "$s1 $s2" "merge $mode:$n: data changed after recovery"
    done
    echo "merge $mode points tried: $tried, all recovered, 0 bytes lost" >&2
}

# discard_sweep MODE: the same for discard; the set ends discarded, each device exactly its
# frozen image. A fault rolled back (exit 4) leaves the complete snapshot.
discard_sweep() {
    local mode=$1 n tried=0 s1 s2
    setup_two
    reference_counts
    for ((n = 1; n <= TOTAL_D; n++)); do
        tried=$((tried + 1))
        assert_exit 0 "take" -- "$DMSNAP" take s1 "$D1=$C1" "$D2=$C2"
        s1=$(fx checksum "/dev/mapper/$D1-dmsnap-base")
        s2=$(fx checksum "/dev/mapper/$D2-dmsnap-base")
        head -c 1M /dev/urandom >"$M1/d$n"
        umount "$M1" "$M2"
        interrupted "$mode" "$n" discard s1
        if [[ $mode == fail ]]; then
            no_suspended "discard $mode:$n"
        fi
        if [[ $RC == 4 ]]; then
            assert_eq "$(table_kinds "$D1" "$D2")" "snapshot snapshot" "discard $mode:$n rolled back but tables differ"
        fi
        if ((RC == 0)); then
            assert_exit 3 "discard $mode:$n: set gone" -- "$DMSNAP" status s1
            # as the warning says: wipe the COW's first chunk before reusing it
            wipe_cows
        else
            assert_exit 0 "discard $mode:$n recover" -- "$DMSNAP" recover s1
        fi
        no_suspended "discard $mode:$n recovered"
        if "$DMSNAP" status s1 >/dev/null 2>&1; then
            assert_exit 0 "discard $mode:$n discard again" -- "$DMSNAP" discard s1
        fi
        assert_exit 3 "set gone" -- "$DMSNAP" status s1
        assert_eq "$(fx checksum "/dev/mapper/$D1") $(fx checksum "/dev/mapper/$D2")" "$s1 $s2" "discard $mode:$n: not the frozen image"
        mount "/dev/mapper/$D1" "$M1"
        mount "/dev/mapper/$D2" "$M2"
    done
    echo "discard $mode points tried: $tried, all recovered, 0 bytes lost" >&2
}

test_fault_at_every_merge_call() { merge_sweep fail; }
test_fault_at_every_discard_call() { discard_sweep fail; }

test_kill_at_every_take_step_then_recover() {
    setup_two
    local n rc total tried=0 s1 s2
    s1=$(fx checksum "$M1")
    s2=$(fx checksum "$M2")
    reference_take_count
    total=$TOTAL_T
    for ((n = 1; n <= total; n++)); do
        tried=$((tried + 1))
        rc=0
        DMSNAP_TEST_FAULT=kill:$n "$DMSNAP_TEST" take s1 "$D1=$C1" "$D2=$C2" >"$T_DIR/out" 2>&1 || rc=$?
        ((rc == 137)) || fail "kill:$n: expected SIGKILL (137), got $rc"
        assert_exit 0 "kill:$n recover" -- "$DMSNAP" recover
        log "kill:$n -> $T_OUT"
        assert_exit 0 "kill:$n recover is idempotent" -- "$DMSNAP" recover
        no_suspended "kill:$n"
        not_frozen "$M1" "kill:$n"
        not_frozen "$M2" "kill:$n"
        case $(table_kind "$D1") in
        linear)
            assert_eq "$(table_kind "$D2")" linear "kill:$n: half-undone"
            assert_exit '!0' "kill:$n no base" -- dmsetup info "$D1-dmsnap-base" ;;
        snapshot)
            assert_eq "$(table_kind "$D2")" snapshot "kill:$n: half-finished"
            umount "$M1" "$M2"
            assert_exit 0 "kill:$n discard" -- "$DMSNAP" discard s1
            mount "/dev/mapper/$D1" "$M1"
            mount "/dev/mapper/$D2" "$M2" ;;
        *) fail "kill:$n: unexpected table $(dmsetup table "$D1")" ;;
        esac
        assert_eq "$(fx checksum "$M1") $(fx checksum "$M2")" "$s1 $s2" "kill:$n: data changed"
    done
    echo "take kill points tried: $tried, all recovered" >&2
}

# The shipped binary has no test hook: DMSNAP_TEST_FAULT changes nothing there.
test_shipped_binary_ignores_the_test_hook() {
    setup_two
    local s1 s2
    s1=$(fx checksum "$M1")
    s2=$(fx checksum "$M2")
    assert_exit 0 "take with DMSNAP_TEST_FAULT=fail:1 (shipped dmsnap)" -- env DMSNAP_TEST_FAULT=fail:1 "$DMSNAP" take s1 "$D1=$C1" "$D2=$C2"
    assert_eq "$(table_kinds "$D1" "$D2")" "snapshot snapshot" "the hook was honoured"
    assert_exit 0 "merge with DMSNAP_TEST_FAULT=kill:1 (shipped dmsnap)" -- env DMSNAP_TEST_FAULT=kill:1 "$DMSNAP" merge s1
    assert_eq "$(table_kinds "$D1" "$D2")" "linear linear" "merge did not finish"
    assert_eq "$(fx checksum "$M1") $(fx checksum "$M2")" "$s1 $s2" "data changed"
    # the shipped binary does not even contain the hook or the test doubles; the test build does
    assert_eq "$(grep -c -a -e DMSNAP_TEST_FAULT -e FaultInjector "$DMSNAP" || true)" 0 "the shipped dmsnap contains the test hook"
    (($(grep -c -a DMSNAP_TEST_FAULT "$DMSNAP_TEST" || true) > 0)) || fail "dmsnap-test has no hook"
    assert_exit 4 "take with the hook (dmsnap-test)" -- env DMSNAP_TEST_FAULT=fail:1 "$DMSNAP_TEST" take s1 "$D1=$C1" "$D2=$C2"
    assert_contains "$T_OUT" "injected fault 1"
}

test_lock_makes_second_command_wait_or_fail() {
    local live=${T_PREFIX}live mnt=$T_DIR/mnt cow
    fx create "$live" 64M --fs ext4 --mount "$mnt" >/dev/null
    cow=$(fx cow "${T_PREFIX}cow" 16M)
    mkdir -p /run/lock/dmsnap
    # hold the lock from outside for 3 s
    flock /run/lock/dmsnap/dmsnap.lock sh -c "touch '$T_DIR/locked'; sleep 4" &
    local holder=$! i
    for ((i = 0; i < 100; i++)); do [[ -e $T_DIR/locked ]] && break; sleep 0.1; done
    assert_file_exists "$T_DIR/locked" "the lock holder did not start"
    local before
    before=$(kernel_state)
    assert_exit 3 "take while locked (short wait)" -- "$DMSNAP" take s1 "$live=$cow" --wait-lock 0.5
    assert_contains "$T_OUT" "another dmsnap command is running"
    assert_eq "$(kernel_state)" "$before" "refused take changed the kernel"
    assert_exit 0 "take waits for the lock" -- "$DMSNAP" take s1 "$live=$cow" --wait-lock 10
    wait "$holder"
    umount "$mnt"
    assert_exit 0 "discard" -- "$DMSNAP" discard s1
}

# kill -9 at every changing call of merge and of discard, then 'dmsnap recover': the set ends
# merged (every write kept) or discarded (exactly the frozen image).
test_kill_at_every_merge_step_then_recover() { merge_sweep kill; }
test_kill_at_every_discard_step_then_recover() { discard_sweep kill; }

# A COW smaller than the changes: the kernel invalidates the snapshot; status says invalid,
# merge refuses, discard (after unmount) restores the frozen image.
test_cow_overflow() {
    local live=${T_PREFIX}live mnt=$T_DIR/mnt cow
    fx create "$live" 64M --fs ext4 --mount "$mnt" >/dev/null
    cow=$(fx cow "${T_PREFIX}cow" 1M)
    head -c 2M /dev/urandom >"$mnt/a"
    sync
    assert_exit 0 "take" -- "$DMSNAP" take s1 "$live=$cow"
    local frozen
    frozen=$(fx checksum "$(base_of "$live")")
    # more changes than the COW holds: the writes start failing once it overflows
    dd if=/dev/urandom of="$mnt/big" bs=1M count=8 conv=fsync status=none 2>/dev/null || true
    sync 2>/dev/null || true
    assert_exit 0 "status" -- "$DMSNAP" status s1 --json
    printf '%s' "$T_OUT" >"$T_DIR/s.json"
    assert_eq "$(json "$T_DIR/s.json" 'd["state"], d["devices"][0]["state"]')" "invalid invalid"
    assert_contains "$(json "$T_DIR/s.json" 'd["devices"][0]["reason"]')" "overflowed"
    assert_exit 3 "merge of an invalid set is refused" -- "$DMSNAP" merge s1
    assert_contains "$T_OUT" "invalid"
    assert_contains "$(dmsetup table "$live")" " snapshot " "refused merge changed the table"
    umount "$mnt" 2>/dev/null || umount -l "$mnt"
    assert_exit 0 "discard" -- "$DMSNAP" discard s1
    assert_eq "$(fx checksum "/dev/mapper/$live")" "$frozen" "discard did not restore the frozen image"
}

# I/O errors on the COW (a dm-flakey device that fails every I/O): a clean error, the state is
# reported, nothing hangs, and the frozen image is intact.
test_cow_io_errors() {
    local live=${T_PREFIX}live mnt=$T_DIR/mnt loop flakey=${T_PREFIX}flakey sectors
    fx create "$live" 64M --fs ext4 --mount "$mnt" >/dev/null
    cow_device "$flakey" 16M "flakey LOOP 0 1000 0"
    loop=$COW_LOOP sectors=$COW_SECTORS
    head -c 1M /dev/urandom >"$mnt/a"
    sync
    assert_exit 0 "take on a flakey COW" -- "$DMSNAP" take s1 "$live=/dev/mapper/$flakey"
    local frozen
    frozen=$(fx checksum "$(base_of "$live")")
    # from now on every I/O to the COW fails
    set_table "$flakey" "0 $sectors flakey $loop 0 0 1000"
    timeout 60 dd if=/dev/urandom of="$mnt/b" bs=1M count=4 conv=fsync status=none 2>/dev/null || true
    assert_exit 0 "status reports the failure" -- timeout 60 "$DMSNAP" status s1 -o state --noheadings
    assert_contains "$T_OUT" "invalid"
    assert_exit 3 "merge refused" -- timeout 60 "$DMSNAP" merge s1
    umount "$mnt" 2>/dev/null || umount -l "$mnt"
    # discard restores the tables; the COW cannot be released while it errors: one warning, and
    # the discard still ends (the frozen image does not depend on the COW)
    assert_exit 0 "discard on a failing COW" -- timeout 60 "$DMSNAP" discard s1
    assert_contains "$T_OUT" "dmsnap: warning: /dev/mapper/$flakey: COW still carries a snapshot header"
    assert_eq "$(grep -c warning <<<"$T_OUT")" 1 "not one warning"
    assert_exit 3 "set gone" -- "$DMSNAP" status s1
    assert_eq "$(fx checksum "/dev/mapper/$live")" "$frozen" "not the frozen image"
    dmsetup remove "$flakey"
}
