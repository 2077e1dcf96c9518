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

setup_two() {
    D1=${T_PREFIX}a D2=${T_PREFIX}b M1=$T_DIR/ma M2=$T_DIR/mb
    fx create "$D1" 64M --fs ext4 --mount "$M1" >/dev/null
    fx create "$D2" 64M --fs ext4 --mount "$M2" >/dev/null
    C1=$(fx cow "${T_PREFIX}c1" 16M)
    C2=$(fx cow "${T_PREFIX}c2" 16M)
    head -c 1M /dev/urandom >"$M1/f"
    head -c 1M /dev/urandom >"$M2/f"
    sync
}

# count_changing_calls ARGS...: how many changing kernel calls a successful run makes
# (from DMSNAP_TRACE), by running it for real.
count_calls() { grep -cE 'trace: \+[0-9.]+ ms (create|load|clear|suspend|resume|remove|zero|sync|freeze|thaw) ' <<<"$1"; }

test_fault_at_every_take_call() {
    setup_two
    local s1 s2 n total rc tried=0
    s1=$(fx checksum "$M1")
    s2=$(fx checksum "$M2")
    assert_exit 0 "reference take" -- env DMSNAP_TRACE=1 "$DMSNAP" take ref "$D1=$C1" "$D2=$C2"
    total=$(count_calls "$T_OUT")
    log "take makes $total changing calls"
    ((total >= 10)) || fail "too few calls counted: $total"
    umount "$M1" "$M2"
    assert_exit 0 "discard ref" -- "$DMSNAP" discard ref
    mount "/dev/mapper/$D1" "$M1"
    mount "/dev/mapper/$D2" "$M2"
    for ((n = 1; n <= total; n++)); do
        tried=$((tried + 1))
        rc=0
        DMSNAP_TEST_FAULT=fail:$n "$DMSNAP" take s1 "$D1=$C1" "$D2=$C2" >"$T_DIR/out" 2>&1 || rc=$?
        log "fail:$n -> exit $rc: $(head -c 300 "$T_DIR/out")"
        no_suspended "fail:$n"
        not_frozen "$M1" "fail:$n"
        not_frozen "$M2" "fail:$n"
        case $rc in
        4) # rolled back: original tables, no base, no set
            assert_eq "$(table_kind "$D1") $(table_kind "$D2")" "linear linear" "fail:$n rolled back but tables differ"
            assert_exit '!0' "fail:$n no base" -- dmsetup info "$D1-dmsnap-base"
            assert_exit 3 "fail:$n no set" -- "$DMSNAP" status s1 ;;
        0 | 1) # failed after the point of no return (or succeeded): a complete snapshot
            assert_eq "$(table_kind "$D1") $(table_kind "$D2")" "snapshot snapshot" "fail:$n committed but incomplete"
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

test_fault_at_every_merge_and_discard_call() {
    setup_two
    local n rc total_m total_d tried=0 s1 s2
    # reference runs to count calls
    assert_exit 0 "take" -- "$DMSNAP" take ref "$D1=$C1" "$D2=$C2"
    head -c 2M /dev/urandom >"$M1/g"
    sync
    assert_exit 0 "reference merge" -- env DMSNAP_TRACE=1 "$DMSNAP" merge ref
    total_m=$(count_calls "$T_OUT")
    assert_exit 0 "take" -- "$DMSNAP" take ref "$D1=$C1" "$D2=$C2"
    umount "$M1" "$M2"
    assert_exit 0 "reference discard" -- env DMSNAP_TRACE=1 "$DMSNAP" discard ref
    total_d=$(count_calls "$T_OUT")
    mount "/dev/mapper/$D1" "$M1"
    mount "/dev/mapper/$D2" "$M2"
    log "merge makes $total_m changing calls, discard $total_d"
    for ((n = 1; n <= total_m; n++)); do
        tried=$((tried + 1))
        assert_exit 0 "take" -- "$DMSNAP" take s1 "$D1=$C1" "$D2=$C2"
        head -c 1M /dev/urandom >"$M1/h$n"
        sync
        s1=$(fx checksum "$M1")
        s2=$(fx checksum "$M2")
        rc=0
        DMSNAP_TEST_FAULT=fail:$n "$DMSNAP" merge s1 >"$T_DIR/out" 2>&1 || rc=$?
        log "merge fail:$n -> exit $rc: $(head -c 300 "$T_DIR/out")"
        no_suspended "merge fail:$n"
        not_frozen "$M1" "merge fail:$n"
        assert_eq "$(fx checksum "$M1") $(fx checksum "$M2")" "$s1 $s2" "merge fail:$n: data changed"
        ((rc != 0)) || fail "merge fail:$n: the injected fault was not reported"
        # whatever happened, recover (or merge again) ends the set with all data in place
        assert_exit 0 "merge fail:$n recover" -- "$DMSNAP" recover s1
        if "$DMSNAP" status s1 >/dev/null 2>&1; then
            assert_exit 0 "merge fail:$n merge again" -- "$DMSNAP" merge s1
        fi
        assert_eq "$(table_kind "$D1") $(table_kind "$D2")" "linear linear" "merge fail:$n: not finished"
        assert_eq "$(fx checksum "$M1") $(fx checksum "$M2")" "$s1 $s2" "merge fail:$n: data changed after recovery"
    done
    for ((n = 1; n <= total_d; n++)); do
        tried=$((tried + 1))
        assert_exit 0 "take" -- "$DMSNAP" take s1 "$D1=$C1" "$D2=$C2"
        s1=$(fx checksum "/dev/mapper/$D1-dmsnap-base")
        s2=$(fx checksum "/dev/mapper/$D2-dmsnap-base")
        head -c 1M /dev/urandom >"$M1/d$n"
        umount "$M1" "$M2"
        rc=0
        DMSNAP_TEST_FAULT=fail:$n "$DMSNAP" discard s1 >"$T_DIR/out" 2>&1 || rc=$?
        log "discard fail:$n -> exit $rc: $(head -c 300 "$T_DIR/out")"
        no_suspended "discard fail:$n"
        ((rc != 0)) || fail "discard fail:$n: the injected fault was not reported"
        if [[ $rc == 4 ]]; then
            assert_eq "$(table_kind "$D1") $(table_kind "$D2")" "snapshot snapshot" "discard fail:$n rolled back but tables differ"
            assert_exit 0 "discard again" -- "$DMSNAP" discard s1
        else
            assert_exit 0 "discard fail:$n recover" -- "$DMSNAP" recover s1
        fi
        assert_exit 3 "set gone" -- "$DMSNAP" status s1
        assert_eq "$(fx checksum "/dev/mapper/$D1") $(fx checksum "/dev/mapper/$D2")" "$s1 $s2" "discard fail:$n: not the frozen image"
        mount "/dev/mapper/$D1" "$M1"
        mount "/dev/mapper/$D2" "$M2"
    done
    echo "merge+discard fault points tried: $tried" >&2
}

test_kill_at_every_take_step_then_recover() {
    setup_two
    local n rc total tried=0 s1 s2
    s1=$(fx checksum "$M1")
    s2=$(fx checksum "$M2")
    assert_exit 0 "reference take" -- env DMSNAP_TRACE=1 "$DMSNAP" take ref "$D1=$C1" "$D2=$C2"
    total=$(count_calls "$T_OUT")
    umount "$M1" "$M2"
    assert_exit 0 "discard ref" -- "$DMSNAP" discard ref
    mount "/dev/mapper/$D1" "$M1"
    mount "/dev/mapper/$D2" "$M2"
    for ((n = 1; n <= total; n++)); do
        tried=$((tried + 1))
        rc=0
        DMSNAP_TEST_FAULT=kill:$n "$DMSNAP" take s1 "$D1=$C1" "$D2=$C2" >"$T_DIR/out" 2>&1 || rc=$?
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
