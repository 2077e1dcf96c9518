# shellcheck shell=bash
# No dead ends (issue 12): every state a set can reach on a real kernel has a way out that works.
# Data is checked by checksum in every test; every dmsnap call runs under a timeout.
# shellcheck source=Tests/kernel/common.sh
source "$T_REPO/Tests/kernel/common.sh"

# ds ARGS...: dmsnap under a timeout (a hang fails the test instead of wedging the suite)
ds() { timeout -k 5 120 "$DMSNAP" "$@"; }

# A dead COW (the disk is gone: its dm device now runs the error target): discard still ends,
# forgets the set, leaves the device at the frozen image, and one warning names the COW. The
# device can join a new set right away.
test_dead_cow_discard_finishes_with_a_warning() {
    local live=${T_PREFIX}live mnt=$T_DIR/mnt loop cowdev=${T_PREFIX}cowdev sectors frozen
    fx create "$live" 64M --fs ext4 --mount "$mnt" >/dev/null
    cow_device "$cowdev" 16M
    loop=$COW_LOOP sectors=$COW_SECTORS
    head -c 2M /dev/urandom >"$mnt/a"
    sync
    assert_exit 0 "take" -- ds take s1 "$live=/dev/mapper/$cowdev"
    frozen=$(fx checksum "$(base_of "$live")")
    head -c 1M /dev/urandom >"$mnt/b"
    sync
    umount "$mnt"
    # the disk dies
    set_table "$cowdev" "0 $sectors error"
    assert_exit 0 "discard with a dead COW" -- ds discard s1
    assert_eq "$(grep -c . <<<"$T_OUT")" 2 "expected one warning and the result line: $T_OUT"
    assert_contains "$T_OUT" "dmsnap: warning: /dev/mapper/$cowdev: COW still carries a snapshot header; wipe its first chunk before reusing it"
    assert_exit 3 "the set is forgotten" -- ds status s1
    assert_eq "$(fx checksum "/dev/mapper/$live")" "$frozen" "not the frozen image"
    assert_exit '!0' "base removed" -- dmsetup info "${live}-dmsnap-base"
    # the device joins a new set at once
    local cow2
    cow2=$(fx cow "${T_PREFIX}cow2" 16M)
    assert_exit 0 "take again with another COW" -- ds take s2 "$live=$cow2"
    assert_exit 0 "discard" -- ds discard s2
    assert_eq "$(fx checksum "/dev/mapper/$live")" "$frozen" "data changed"
    dmsetup remove "$cowdev"
}

# The same COW every night: take, write, merge, three times, ext4 and xfs origins, never --force.
# A COW dmsnap released carries no signature; one with a foreign signature is still refused.
cow_reused_every_night() {
    local fs=$1 size=$2 live=${T_PREFIX}live mnt=$T_DIR/mnt cow n sum i
    fx create "$live" "$size" --fs "$fs" --mount "$mnt" >/dev/null
    cow=$(fx cow "${T_PREFIX}cow" 128M)
    for n in 1 2 3; do
        assert_exit 0 "night $n: take (no --force)" -- ds take "night$n" "$live=$cow"
        # metadata first (xfs: log records are the first chunks copied into the COW's data area,
        # where libblkid looks for an external log), then data
        mkdir -p "$mnt/meta$n"
        for ((i = 0; i < 40; i++)); do : >"$mnt/meta$n/f$i"; sync -f "$mnt"; done
        rm -f "$mnt"/night*.bin "$mnt"/copy*.bin
        head -c 16M /dev/urandom >"$mnt/night$n.bin"
        cp "$mnt/night$n.bin" "$mnt/copy$n.bin"
        sync
        sum=$(fx checksum "$mnt")
        assert_exit 0 "night $n: merge" -- ds merge "night$n"
        assert_eq "$(fx checksum "$mnt")" "$sum" "night $n: merge lost data"
        assert_eq "$(blkid -p -o value -s TYPE "$cow" 2>/dev/null || true)" "" "night $n: the released COW still carries a signature"
        header_is_zero "$cow" || fail "night $n: COW header not wiped"
    done
    umount "$mnt"
    mount "/dev/mapper/$live" "$mnt"
    assert_eq "$(fx checksum "$mnt")" "$sum" "content lost across remount"
    umount "$mnt"
    # a foreign signature is still refused
    mkfs.ext4 -q -F "$cow"
    assert_exit 3 "a COW with a foreign signature" -- ds take s9 "$live=$cow"
    assert_contains "$T_OUT" "ext4 signature"
}

test_cow_reused_every_night_ext4() { cow_reused_every_night ext4 128M; }
test_cow_reused_every_night_xfs() { cow_reused_every_night xfs 320M; }

# A merge stopped by COW I/O errors: the COW is a dm device, slow while the merge runs (dm-delay),
# then failing every I/O (dm-flakey): the kernel stops the merge. The set is merge-failed, the
# device stays usable, merge while mounted says to unmount; with the COW healthy again and the
# device closed, merge resumes (interim table, fresh snapshot-merge) and every byte is there.
test_failed_merge_resumes_once_the_cow_works() {
    local live=${T_PREFIX}live mnt=$T_DIR/mnt loop cowdev=${T_PREFIX}cowdev sectors sum
    modprobe dm-delay
    fx create "$live" 64M --fs ext4 --mount "$mnt" >/dev/null
    cow_device "$cowdev" 32M
    loop=$COW_LOOP sectors=$COW_SECTORS
    head -c 8M /dev/urandom >"$mnt/data"
    sync
    assert_exit 0 "take" -- ds take s1 "$live=/dev/mapper/$cowdev"
    scatter_writes "$mnt/data"
    sync
    sum=$(fx checksum "$mnt")
    cow_set() { set_table "$cowdev" "0 $sectors $1"; }
    cow_set "delay $loop 0 40"
    assert_exit 0 "merge --no-wait" -- ds merge s1 --no-wait
    sleep 0.5
    cow_set "flakey $loop 0 0 1000"
    # merge again: it sees the kernel stop the merge (while waiting: exit 1; already stopped: 3)
    assert_exit '!0' "merge on a failing COW" -- ds merge s1
    ((T_RC == 1 || T_RC == 3)) || fail "merge on a failing COW: exit $T_RC"
    assert_contains "$T_OUT" "the merge stopped on an I/O error"
    assert_contains "$T_OUT" "dmsnap merge s1"
    assert_exit 0 "status" -- ds status s1 --json
    printf '%s' "$T_OUT" >"$T_DIR/s.json"
    assert_eq "$(json "$T_DIR/s.json" 'd["state"], d["hint"]')" "merge-failed dmsnap merge s1"
    # merge while mounted: one line saying to unmount, nothing changed
    local before
    before=$(kernel_state)
    assert_exit 3 "merge while mounted" -- ds merge s1
    assert_contains "$T_OUT" "unmount $mnt (the failed target can only be replaced while the device is closed)"
    assert_eq "$(kernel_state)" "$before" "a refused merge changed the kernel"
    # the COW works again; unmount; merge resumes and finishes
    cow_set "linear $loop 0"
    umount "$mnt"
    assert_exit 0 "merge resumes" -- env DMSNAP_TRACE=1 timeout 120 "$DMSNAP" merge s1
    assert_contains "$T_OUT" "load error table into $live"
    assert_eq "$(dmsetup table "$live" | awk '{print $3}')" linear "original table not restored"
    assert_exit 3 "set gone" -- ds status s1
    mount "/dev/mapper/$live" "$mnt"
    assert_eq "$(fx checksum "$mnt")" "$sum" "data lost in the resumed merge"
    umount "$mnt"
    dmsetup remove "$cowdev"
}

# Another tool reloads the live device behind dmsnap's back: status says lost (with what runs
# there now), merge and discard point to forget, forget drops the set and says what the COW holds.
test_table_replaced_behind_dmsnaps_back_is_lost() {
    local live=${T_PREFIX}live mnt=$T_DIR/mnt cow loop frozen
    fx create "$live" 64M --fs ext4 --mount "$mnt" >/dev/null
    cow=$(fx cow "${T_PREFIX}cow" 16M)
    loop=$(dmsetup table "$live" | awk '{print $4}')
    head -c 1M /dev/urandom >"$mnt/a"
    sync
    assert_exit 0 "take" -- ds take s1 "$live=$cow"
    frozen=$(fx checksum "$(base_of "$live")")
    umount "$mnt"
    # e.g. an admin's script puts the device back on its disk
    set_table "$live" "0 $(blockdev --getsz "/dev/mapper/$live") linear $loop 0"
    assert_exit 0 "status" -- ds status s1 --json
    printf '%s' "$T_OUT" >"$T_DIR/s.json"
    assert_eq "$(json "$T_DIR/s.json" 'd["state"], d["hint"]')" "lost dmsnap forget s1"
    assert_contains "$(json "$T_DIR/s.json" 'd["devices"][0]["reason"]')" "runs its original table again"
    assert_exit 3 "merge of a lost set" -- ds merge s1
    assert_contains "$T_OUT" "run 'dmsnap forget s1'"
    assert_exit 3 "discard of a lost set" -- ds discard s1
    assert_contains "$T_OUT" "run 'dmsnap forget s1'"
    assert_exit 0 "forget" -- ds forget s1
    assert_contains "$T_OUT" "$cow still holds $live's changes made since take; it was not wiped"
    assert_exit 3 "the set is gone" -- ds status s1
    assert_exit '!0' "the unused base is removed" -- dmsetup info "${live}-dmsnap-base"
    assert_eq "$(fx checksum "/dev/mapper/$live")" "$frozen" "the device's data changed"
}

# A description that cannot be read (garbage over it, or cut short) or that was deleted: status
# still lists every other set, names this one with its file and one reason; recover rebuilds it
# from the kernel (the bad file is kept aside); then merge or discard work, data intact.
test_unreadable_or_deleted_descriptions_are_rebuilt() {
    local a=${T_PREFIX}a b=${T_PREFIX}b c=${T_PREFIX}c ma=$T_DIR/ma mb=$T_DIR/mb mc=$T_DIR/mc ca cb cc sa sb frozen_c
    fx create "$a" 64M --fs ext4 --mount "$ma" >/dev/null
    fx create "$b" 64M --fs ext4 --mount "$mb" >/dev/null
    fx create "$c" 64M --fs ext4 --mount "$mc" >/dev/null
    ca=$(fx cow "${T_PREFIX}ca" 16M)
    cb=$(fx cow "${T_PREFIX}cb" 16M)
    cc=$(fx cow "${T_PREFIX}cc" 16M)
    assert_exit 0 "take s1" -- ds take s1 "$a=$ca"
    assert_exit 0 "take s2" -- ds take s2 "$b=$cb"
    assert_exit 0 "take s3" -- ds take s3 "$c=$cc"
    head -c 2M /dev/urandom >"$ma/x"
    head -c 2M /dev/urandom >"$mb/x"
    sync
    sa=$(fx checksum "$ma")
    sb=$(fx checksum "$mb")
    frozen_c=$(fx checksum "$(base_of "$c")")
    # garbage over s2's description, s1's cut short, s3's deleted
    head -c 300 /dev/urandom >"$DMSNAP_STATE_DIR/s2.json"
    truncate -s 100 "$DMSNAP_STATE_DIR/s1.json"
    rm "$DMSNAP_STATE_DIR/s3.json"
    assert_exit 0 "status lists every set" -- ds status --json
    printf '%s' "$T_OUT" >"$T_DIR/all.json"
    assert_eq "$(json "$T_DIR/all.json" '[(s["name"], s["state"], s.get("hint")) for s in d["sets"]]')" \
        "[('s1', 'unreadable', 'dmsnap recover s1'), ('s2', 'unreadable', 'dmsnap recover s2'), ('s3', 'orphaned', 'dmsnap recover s3')]"
    assert_contains "$(json "$T_DIR/all.json" 'd["sets"][1]["devices"][0]["reason"]')" "$DMSNAP_STATE_DIR/s2.json: "
    assert_not_contains "$T_OUT" "DecodingError"
    assert_exit 0 "status (text)" -- ds status
    assert_contains "$T_OUT" "set s3 is orphaned"
    assert_exit 0 "status of one unreadable set" -- ds status s2 -o set_state,device --noheadings
    assert_eq "$(tr -s ' ' <<<"$T_OUT")" "unreadable $b"
    # the way out: recover (one set by name; then every other one at once)
    assert_exit 0 "recover s2" -- ds recover s2
    assert_contains "$T_OUT" "rebuilt set s2 from the kernel (1 device): its description could not be read (kept as $DMSNAP_STATE_DIR/s2.json.unreadable-"
    assert_exit 0 "recover the rest" -- ds recover
    assert_contains "$T_OUT" "rebuilt set s1 from the kernel"
    assert_contains "$T_OUT" "rebuilt set s3 from the kernel (1 device): its description was gone"
    assert_eq "$(ls "$DMSNAP_STATE_DIR" | grep -c unreadable)" 2 "the unreadable files are not kept"
    assert_exit 0 "merge s1" -- ds merge s1
    assert_exit 0 "merge s2" -- ds merge s2
    umount "$mc"
    assert_exit 0 "discard s3" -- ds discard s3
    assert_eq "$(fx checksum "$ma") $(fx checksum "$mb")" "$sa $sb" "data lost after rebuilding"
    assert_eq "$(fx checksum "/dev/mapper/$c")" "$frozen_c" "s3 is not the frozen image after discard"
    assert_exit 0 "no sets left" -- ds status --json
    assert_eq "$(json <(printf '%s' "$T_OUT") 'len(d["sets"])')" 0
}

# A COW whose writes would land on the set itself wedges the kernel in the thaw: refused before
# any change (a loop over a file on a member's filesystem, through a second loop too, and a COW
# stacked on a member), one line, nothing changed, nothing hangs.
test_a_cow_that_recurses_is_refused() {
    local a=${T_PREFIX}a b=${T_PREFIX}b ma=$T_DIR/ma mb=$T_DIR/mb inner loop1 loop2 stack=${T_PREFIX}stack before sum
    fx create "$a" 64M --fs ext4 --mount "$ma" >/dev/null
    fx create "$b" 64M --fs ext4 >/dev/null
    head -c 2M /dev/urandom >"$ma/data"
    sync
    sum=$(sha256sum <"$ma/data")
    truncate -s 16M "$ma/cow.img"
    loop1=$(losetup -f --show "$ma/cow.img")
    # a second level: a filesystem on that loop, a file there, a loop over it
    truncate -s 32M "$ma/inner.img"
    inner=$(losetup -f --show "$ma/inner.img")
    mkfs.ext4 -q -F "$inner"
    mkdir -p "$T_DIR/inner"
    mount "$inner" "$T_DIR/inner"
    truncate -s 16M "$T_DIR/inner/cow.img"
    loop2=$(losetup -f --show "$T_DIR/inner/cow.img")
    # a device stacked on b (unmounted)
    dmsetup create "$stack" --table "0 32768 linear /dev/mapper/$b 65536"
    before=$(kernel_state)
    refused_line() {
        assert_exit 3 "$1" -- ds take s1 "$2"
        assert_eq "$(grep -c . <<<"$T_OUT")" 1 "$1: not one line: $T_OUT"
        assert_contains "$T_OUT" "$3"
        assert_eq "$(kernel_state)" "$before" "$1: kernel state changed"
    }
    refused_line "a loop over a file on the member's filesystem" "$a=$loop1" "COW is a loop over $ma/cow.img, on a filesystem of the set (on $a)"
    refused_line "a loop over a file on a loop on the member" "$a=$loop2" "on a filesystem of the set (on $a)"
    refused_line "a COW stacked on the member" "$b=/dev/mapper/$stack" "COW is stacked on $b, a device of the set"
    timeout 5 touch "$ma/still-writable" || fail "the member's filesystem is frozen"
    losetup -d "$loop2"
    umount "$T_DIR/inner"
    losetup -d "$inner" "$loop1"
    dmsetup remove "$stack"
    assert_eq "$(sha256sum <"$ma/data")" "$sum" "data changed"
}

# kill -9 at every step of the freeze window of a 2-device take (each freeze, suspend, resume and
# thaw): without running any dmsnap command, within 2 s every filesystem accepts a write and no
# device is suspended (the window guardian finished the window). Then recover settles the take
# (finished or undone) and every byte is there.
test_sigkill_in_the_window_thaws_without_dmsnap() {
    local n rc window=() sa sb i ok
    setup_two
    local a=$D1 b=$D2 ma=$M1 mb=$M2 ca=$C1 cb=$C2
    # which changing calls of a take are the window's (the fault hook counts them from 1)
    assert_exit 0 "reference take" -- env DMSNAP_TRACE=1 "$DMSNAP" take ref "$a=$ca" "$b=$cb"
    mapfile -t calls < <(grep -oE 'trace: \+[0-9.]+ ms (create|load|clear|suspend|resume|remove|zero|sync|freeze|thaw|release)' <<<"$T_OUT" | awk '{print $4}')
    for ((i = 0; i < ${#calls[@]}; i++)); do
        [[ ${calls[i]} == freeze || ${calls[i]} == suspend || ${calls[i]} == resume || ${calls[i]} == thaw ]] && window+=($((i + 1)))
    done
    assert_eq "${#window[@]}" 8 "window calls of a 2-device take: ${calls[*]}"
    umount "$ma" "$mb"
    assert_exit 0 "discard ref" -- ds discard ref
    mount "/dev/mapper/$a" "$ma"
    mount "/dev/mapper/$b" "$mb"
    sa=$(fx checksum "$ma")
    sb=$(fx checksum "$mb")
    for n in "${window[@]}"; do
        rc=0
        DMSNAP_TEST_FAULT=kill:$n "$DMSNAP_TEST" take s1 "$a=$ca" "$b=$cb" >"$T_DIR/out" 2>&1 || rc=$?
        ((rc == 137)) || fail "kill:$n: expected SIGKILL (137), got $rc: $(cat "$T_DIR/out")"
        # no dmsnap command from here until both are writable and nothing is suspended
        ok=0
        for ((i = 0; i < 20; i++)); do
            if [[ -z $(dmsetup info -c --noheadings --separator ' ' -o name,suspended | awk '$2 != "Active"') ]] &&
                timeout 1 touch "$ma/.w" && timeout 1 touch "$mb/.w"; then
                ok=1
                break
            fi
            sleep 0.1
        done
        ((ok)) || fail "kill:$n: after 2 s a filesystem is still frozen or a device suspended: $(dmsetup info -c --noheadings -o name,suspended)"
        rm -f "$ma/.w" "$mb/.w"
        log "kill:$n: thawed by the guardian; tables: $(dmsetup table "$a" | awk '{print $3}') $(dmsetup table "$b" | awk '{print $3}')"
        assert_exit 0 "kill:$n: recover" -- ds recover s1
        case "$(dmsetup table "$a" | awk '{print $3}') $(dmsetup table "$b" | awk '{print $3}')" in
        "linear linear") assert_exit 3 "kill:$n: undone" -- ds status s1 ;;
        "snapshot snapshot")
            umount "$ma" "$mb"
            assert_exit 0 "kill:$n: discard" -- ds discard s1
            mount "/dev/mapper/$a" "$ma"
            mount "/dev/mapper/$b" "$mb" ;;
        *) fail "kill:$n: half a take after recover: $(dmsetup table)" ;;
        esac
        assert_eq "$(fx checksum "$ma") $(fx checksum "$mb")" "$sa $sb" "kill:$n: data changed"
    done
    echo "window kill points: ${window[*]}, all thawed without dmsnap, 0 bytes lost" >&2
}

# A filesystem that does not freeze in time (its device delays every write by 1.5 s: dm-delay): take
# gives up after --freeze-timeout, thaws the others at once and the late one as soon as its
# freeze returns, rolls back, and names the filesystem. Nothing changed, data intact.
test_an_unbounded_freeze_window_is_cut_short() {
    local a=${T_PREFIX}a b=${T_PREFIX}b ma=$T_DIR/ma mb=$T_DIR/mb ca cb loop delay=${T_PREFIX}delay sectors sa sb t0 t1 before
    modprobe dm-delay
    fx create "$a" 64M --fs ext4 --mount "$ma" >/dev/null
    loop=$(fx cow "${T_PREFIX}bdisk" 64M)
    sectors=$(blockdev --getsz "$loop")
    dmsetup create "$delay" --table "0 $sectors delay $loop 0 0 $loop 0 0 $loop 0 0"
    dmsetup create "$b" --table "0 $sectors linear /dev/mapper/$delay 0"
    mkfs.ext4 -q -F "/dev/mapper/$b"
    mkdir -p "$mb"
    mount "/dev/mapper/$b" "$mb"
    ca=$(fx cow "${T_PREFIX}ca" 16M)
    cb=$(fx cow "${T_PREFIX}cb" 16M)
    head -c 1M /dev/urandom >"$ma/f"
    head -c 1M /dev/urandom >"$mb/f"
    sync
    sa=$(fx checksum "$ma")
    sb=$(fx checksum "$mb")
    # from now on every write under b waits 1.5 s (flushes do not: the sync before the window is fast)
    set_table "$delay" "0 $sectors delay $loop 0 0 $loop 0 1500 $loop 0 0"
    before=$(kernel_state)
    t0=$EPOCHREALTIME
    local rc=0 pid
    ds take s1 "$a=$ca" "$b=$cb" --freeze-timeout 1 >"$T_DIR/out" 2>&1 &
    pid=$!
    # past the timeout, while dmsnap still waits for b's late freeze, a is thawed already
    sleep 3
    kill -0 "$pid" 2>/dev/null || log "(the late freeze returned within 3 s)"
    timeout 1 touch "$ma/.w" || fail "$ma is still frozen 2 s after the timeout"
    wait "$pid" || rc=$?
    t1=$EPOCHREALTIME
    log "take: exit $rc after $(python3 -c "print(round($t1 - $t0, 2))") s: $(cat "$T_DIR/out")"
    ((rc == 4)) || fail "take with a filesystem that freezes too slowly: exit $rc, expected 4 (rolled back)"
    assert_contains "$(cat "$T_DIR/out")" "$mb: freeze failed: did not freeze within 1 s"
    assert_contains "$(cat "$T_DIR/out")" "everything was rolled back"
    timeout 2 touch "$mb/.w" || fail "$mb is still frozen"
    rm -f "$ma/.w" "$mb/.w"
    assert_eq "$(dmsetup info -c --noheadings --separator ' ' -o name,suspended | awk '$2 != "Active"')" "" "a device is suspended"
    assert_eq "$(kernel_state)" "$before" "the kernel state changed"
    assert_exit 3 "no set" -- ds status s1
    set_table "$delay" "0 $sectors delay $loop 0 0 $loop 0 0 $loop 0 0"
    sync
    assert_eq "$(fx checksum "$ma") $(fx checksum "$mb")" "$sa $sb" "data changed"
    umount "$mb"
    dmsetup remove "$b" "$delay"
}

# SIGINT / SIGTERM at every changing call of a take (delivered just before it): the take rolls back
# (exit 130 / 143, nothing left) or, past the point of no return, finishes (exit 0, one warning);
# a waiting merge stops waiting, the kernel merge goes on, the message says how to finish.
test_signals_roll_back_or_finish() {
    local n rc total sa sb sig code
    setup_two
    local a=$D1 b=$D2 ma=$M1 mb=$M2 ca=$C1 cb=$C2
    sa=$(fx checksum "$ma")
    sb=$(fx checksum "$mb")
    assert_exit 0 "reference take" -- env DMSNAP_TRACE=1 "$DMSNAP" take ref "$a=$ca" "$b=$cb"
    total=$(grep -cE 'trace: \+[0-9.]+ ms (create|load|clear|suspend|resume|remove|zero|sync|freeze|thaw) ' <<<"$T_OUT")
    umount "$ma" "$mb"
    assert_exit 0 "discard ref" -- ds discard ref
    mount "/dev/mapper/$a" "$ma"
    mount "/dev/mapper/$b" "$mb"
    local rolled=0 finished=0
    for ((n = 1; n <= total; n++)); do
        if ((n % 2)); then sig=int code=130; else sig=term code=143; fi
        rc=0
        DMSNAP_TEST_FAULT=$sig:$n timeout 60 "$DMSNAP_TEST" take s1 "$a=$ca" "$b=$cb" >"$T_DIR/out" 2>&1 || rc=$?
        log "$sig:$n -> exit $rc: $(head -c 200 "$T_DIR/out")"
        assert_eq "$(dmsetup info -c --noheadings --separator ' ' -o name,suspended | awk '$2 != "Active"')" "" "$sig:$n: a device is suspended"
        timeout 2 touch "$ma/.w" && timeout 2 touch "$mb/.w" || fail "$sig:$n: a filesystem is frozen"
        rm -f "$ma/.w" "$mb/.w"
        if ((rc == code)); then
            grep -q "interrupted by SIG.*everything was rolled back" "$T_DIR/out" || fail "$sig:$n: message: $(cat "$T_DIR/out")"
            assert_eq "$(dmsetup table "$a" | awk '{print $3}') $(dmsetup table "$b" | awk '{print $3}')" "linear linear" "$sig:$n: not rolled back"
            assert_exit 3 "$sig:$n: no set" -- ds status s1
            rolled=$((rolled + 1))
        elif ((rc == 0)); then
            grep -q "warning: interrupted by SIG.* after the point of no return: the take finished" "$T_DIR/out" || fail "$sig:$n: no warning: $(cat "$T_DIR/out")"
            assert_exit 0 "$sig:$n: active" -- ds status s1 -o set_state --noheadings
            assert_eq "$(tr -d ' ' <<<"$T_OUT" | sort -u)" active
            umount "$ma" "$mb"
            assert_exit 0 "$sig:$n: discard" -- ds discard s1
            mount "/dev/mapper/$a" "$ma"
            mount "/dev/mapper/$b" "$mb"
            finished=$((finished + 1))
        else
            fail "$sig:$n: exit $rc: $(cat "$T_DIR/out")"
        fi
        assert_eq "$(fx checksum "$ma") $(fx checksum "$mb")" "$sa $sb" "$sig:$n: data changed"
    done
    ((rolled > 0 && finished > 0)) || fail "expected both outcomes: rolled back $rolled, finished $finished"
    echo "signals at $total points: $rolled rolled back, $finished finished, 0 bytes lost" >&2
}

test_a_waiting_merge_stops_on_a_signal_and_the_merge_goes_on() {
    local live=${T_PREFIX}live mnt=$T_DIR/mnt loop cowdev=${T_PREFIX}cowdev sectors sum pid rc sig code
    modprobe dm-delay
    fx create "$live" 64M --fs ext4 --mount "$mnt" >/dev/null
    cow_device "$cowdev" 32M
    loop=$COW_LOOP sectors=$COW_SECTORS
    head -c 8M /dev/urandom >"$mnt/data"
    sync
    for sig in INT TERM; do
        [[ $sig == INT ]] && code=130 || code=143
        assert_exit 0 "take" -- ds take s1 "$live=/dev/mapper/$cowdev"
        scatter_writes "$mnt/data"
        sync
        sum=$(fx checksum "$mnt")
        # a slow COW, so the merge takes a while
        set_table "$cowdev" "0 $sectors delay $loop 0 20"
        rc=0
        "$DMSNAP" merge s1 >"$T_DIR/out" 2>&1 &
        pid=$!
        sleep 1.5
        kill -"$sig" "$pid"
        wait "$pid" || rc=$?
        log "merge, SIG$sig -> exit $rc: $(cat "$T_DIR/out")"
        ((rc == code)) || fail "SIG$sig: merge exit $rc, expected $code: $(cat "$T_DIR/out")"
        assert_contains "$(cat "$T_DIR/out")" "the merge goes on in the kernel; run 'dmsnap merge s1' to wait for it and finish it"
        assert_eq "$(dmsetup table "$live" | awk '{print $3}')" snapshot-merge "SIG$sig: the kernel merge stopped"
        set_table "$cowdev" "0 $sectors linear $loop 0"
        assert_exit 0 "SIG$sig: merge finishes" -- ds merge s1
        assert_eq "$(fx checksum "$mnt")" "$sum" "SIG$sig: data lost"
    done
    umount "$mnt"
    dmsetup remove "$cowdev"
}

# walk SET: follow the hint `status --json` prints until the set is gone (merged, discarded,
# forgotten), unmounting what a refusal asks to unmount; fails on a circle or after 8 steps.
# Prints the path on stderr. Active (healthy, no hint) is ended by merge.
walk() {
    local set=$1 step state hint seen=' ' path='' i mp
    for ((i = 0; i < 8; i++)); do
        if ! ds status "$set" --json >"$T_DIR/walk.json" 2>"$T_DIR/walk.err"; then
            grep -q "no such snapshot set" "$T_DIR/walk.err" || fail "walk $set: status failed: $(cat "$T_DIR/walk.err")"
            log "walk $set:$path (gone)"
            return 0
        fi
        state=$(json "$T_DIR/walk.json" 'd["state"]')
        hint=$(json "$T_DIR/walk.json" 'd.get("hint") or "dmsnap merge " + d["name"]')
        step="$state→${hint#dmsnap }"
        [[ $seen != *" $step "* ]] || fail "walk $set: the hints go in a circle:$path $step"
        seen+="$step "
        path+=" $step"
        [[ $hint == "dmsnap "* ]] || fail "walk $set: hint '$hint' is not a dmsnap command"
        # shellcheck disable=SC2086 # the hint is a command line
        if ! ds ${hint#dmsnap } >"$T_DIR/walk.out" 2>&1; then
            if grep -qE "unmount|mounted on" "$T_DIR/walk.out"; then
                path+=" (unmount)"
                for mp in "${WALK_MOUNTS[@]}"; do ! mountpoint -q "$mp" || umount "$mp"; done
                ds ${hint#dmsnap } >"$T_DIR/walk.out" 2>&1 || fail "walk $set:$path: $(cat "$T_DIR/walk.out")"
            else
                fail "walk $set:$path: $(cat "$T_DIR/walk.out")"
            fi
        fi
    done
    fail "walk $set: no way out after$path"
}

# Every state a set can reach in one boot, each left by following the printed hints; the data is
# checked after (merged: every change; discarded: the frozen image). (inactive after a reboot:
# the reboot test walks it.)
test_every_state_has_a_way_out() {
    local live=${T_PREFIX}live mnt=$T_DIR/mnt cow loop cowdev=${T_PREFIX}cowdev sectors state sum frozen n
    modprobe dm-delay
    fx create "$live" 64M --fs ext4 --mount "$mnt" >/dev/null
    cow_device "$cowdev" 32M
    loop=$COW_LOOP sectors=$COW_SECTORS
    cow=/dev/mapper/$cowdev
    WALK_MOUNTS=("$mnt")
    cow_set() { set_table "$cowdev" "0 $sectors $1"; }
    remount() { mountpoint -q "$mnt" || mount "/dev/mapper/$live" "$mnt"; }
    change() {
        head -c "${1:-2M}" /dev/urandom >"$mnt/change-$RANDOM"
        sync
    }
    for state in merging invalid lost unreadable orphaned interrupted-take interrupted-merge interrupted-discard merge-failed; do
        remount
        assert_exit 0 "$state: take" -- ds take s1 "$live=$cow"
        frozen=$(fx checksum "$(base_of "$live")")
        change
        case $state in
        merging) assert_exit 0 "merge --no-wait" -- ds merge s1 --no-wait ;;
        invalid) dd if=/dev/urandom of="$mnt/big" bs=1M count=40 conv=fsync status=none 2>/dev/null || true
                 rm -f "$mnt/big" 2>/dev/null || true ;;
        lost) umount "$mnt"
              set_table "$live" "$(dmsetup table "$(basename "$(base_of "$live")")")" ;;
        unreadable) head -c 100 /dev/urandom >"$DMSNAP_STATE_DIR/s1.json" ;;
        orphaned) rm "$DMSNAP_STATE_DIR/s1.json" ;;
        interrupted-take)
            umount "$mnt"
            assert_exit 0 "discard" -- ds discard s1
            remount
            frozen=$(fx checksum "/dev/mapper/$live")
            DMSNAP_TEST_FAULT=kill:6 "$DMSNAP_TEST" take s1 "$live=$cow" >/dev/null 2>&1 || true ;;
        interrupted-merge)
            DMSNAP_TEST_FAULT=kill:8 "$DMSNAP_TEST" merge s1 >/dev/null 2>&1 || true ;;
        interrupted-discard)
            umount "$mnt"
            DMSNAP_TEST_FAULT=kill:4 "$DMSNAP_TEST" discard s1 >/dev/null 2>&1 || true ;;
        merge-failed)
            scatter_writes "$mnt/sparse"
            sync
            cow_set "delay $loop 0 40"
            ds merge s1 --no-wait >/dev/null
            sleep 0.5
            cow_set "flakey $loop 0 0 1000"
            ds merge s1 >/dev/null 2>&1 || true
            cow_set "linear $loop 0" ;;
        esac
        sum=''
        mountpoint -q "$mnt" && sum=$(fx checksum "$mnt")
        assert_exit 0 "$state: status" -- ds status s1 --json
        log "$state: status says $(json <(printf '%s' "$T_OUT") 'd["state"], d.get("hint")')"
        walk s1
        assert_eq "$(dmsetup table "$live" | awk '{print $3}')" linear "$state: the device does not run its original table"
        assert_exit '!0' "$state: no base left" -- dmsetup info "${live}-dmsnap-base"
        # the walk ends merged (every change) or discarded / forgotten (the frozen image)
        if mountpoint -q "$mnt" || [[ $(fx checksum "/dev/mapper/$live") != "$frozen" ]]; then
            remount
            [[ -z $sum ]] || assert_eq "$(fx checksum "$mnt")" "$sum" "$state: neither every change nor the frozen image"
        fi
        remount
        dd if=/dev/zero of="$cow" bs=4096 count=1 conv=fsync status=none
    done
    umount "$mnt"
    dmsetup remove "$cowdev"
}
