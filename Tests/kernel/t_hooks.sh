# shellcheck shell=bash
# Hooks around a take (issue 16): --pre-freeze and --post-thaw commands and the drop-ins of the
# hooks directory run in order, outside the freeze window (a hook writing to the filesystem being
# frozen finishes: what the pre-freeze one wrote is in the frozen image, what the post-thaw one
# wrote is not), with their environment; a failing or hanging pre-freeze hook takes nothing.
# shellcheck source=Tests/kernel/common.sh
source "$T_REPO/Tests/kernel/common.sh"

test_hooks_run_outside_the_window_in_order() {
    setup_two
    local hd=$T_DIR/hooks.d log=$T_DIR/hooks.log
    mkdir -p "$hd"
    printf '#!/bin/sh\necho "20-b $1 $DMSNAP_SET" >>%s\n' "$log" >"$hd/20-b"
    printf '#!/bin/sh\necho "10-a $1 $DMSNAP_SET" >>%s\n' "$log" >"$hd/10-a"
    printf '#!/bin/sh\necho never >>%s\n' "$log" >"$hd/30-not-executable"
    chmod +x "$hd/10-a" "$hd/20-b"
    # the pre-freeze hook writes to a filesystem of the set (it would hang inside the window)
    assert_exit 0 "take with hooks" -- env DMSNAP_HOOKS_DIR="$hd" timeout 60 "$DMSNAP" take s1 "$D1=$C1" "$D2=$C2" \
        --pre-freeze "sh -c 'echo \"pre \$DMSNAP_PHASE \$DMSNAP_DEVICES\" >>$log; echo before >$M1/pre-marker'" \
        --post-thaw "sh -c 'echo \"post \$DMSNAP_PHASE \$DMSNAP_RESULT\" >>$log; echo after >$M1/post-marker'"
    assert_eq "$(cat "$log")" "pre pre-freeze $D1 $D2
10-a pre-freeze s1
20-b pre-freeze s1
post post-thaw taken
10-a post-thaw s1
20-b post-thaw s1" "hook order and environment"
    mount_base_ro "$D1" "$T_DIR/img"
    assert_file_exists "$T_DIR/img/pre-marker"
    assert_no_file "$T_DIR/img/post-marker"
    umount_base_ro "$T_DIR/img"
    assert_file_exists "$M1/post-marker"
    assert_exit 0 "status" -- "$DMSNAP" status s1
    assert_contains "$T_OUT" "hooks at take: pre-freeze: sh -c"
    local sum
    sum=$(fx checksum "$M1")
    assert_exit 0 "merge" -- "$DMSNAP" merge s1
    assert_eq "$(fx checksum "$M1")" "$sum" "content after merge"
}

test_hooks_failures() {
    setup_two
    local log=$T_DIR/hooks.log before
    before=$(kernel_state)
    # a failing pre-freeze hook: nothing taken, its post-thaw partner ran (an unlock after a lock)
    refused 3 "pre-freeze hook 'false' failed (exit 1); nothing was taken" -- take s1 "$D1=$C1" --pre-freeze false \
        --post-thaw "sh -c 'echo \"unlock \$DMSNAP_RESULT\" >>$log'"
    assert_eq "$(cat "$log")" "unlock aborted" "the post-thaw hook after a failed pre-freeze one"
    # a hanging one is killed at --hook-timeout, with its process group
    local t0=$SECONDS
    refused 3 "timed out" -- take s1 "$D1=$C1" --pre-freeze "sh -c 'sleep 300 & sleep 300'" --hook-timeout 1
    ((SECONDS - t0 < 20)) || fail "the hook timeout did not end the take in time"
    sleep 0.5
    assert_eq "$(pgrep -f 'sleep 300' | wc -l)" 0 "the timed-out hook's processes live on"
    # not a program: refused before any hook runs
    : >"$log"
    refused 3 "is not an executable program" -- take s1 "$D1=$C1" --pre-freeze "sh -c 'echo ran >>$log'" --post-thaw "/nonexistent/unlock"
    assert_eq "$(cat "$log")" "" "a hook ran although another was refused"
    refused 3 "unterminated quote" -- take s1 "$D1=$C1" --pre-freeze "sh -c 'echo"
    assert_eq "$(kernel_state)" "$before" "refused takes changed the kernel"
    # a failing post-thaw hook: the set is taken, the command says so and exits 1
    assert_exit 1 "failing post-thaw hook" -- "$DMSNAP" take s1 "$D1=$C1" --post-thaw false
    assert_contains "$T_OUT" "post-thaw hook 'false' failed (exit 1) (the set was taken)"
    assert_exit 0 "the set is there" -- "$DMSNAP" status s1
    assert_exit 0 "merge" -- "$DMSNAP" merge s1
}
