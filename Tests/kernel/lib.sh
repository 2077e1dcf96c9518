# shellcheck shell=bash
# lib.sh - helpers for kernel tests (Tests/kernel/t_*.sh), sourced by suite.sh.
#
# A test is a function named test_* in a t_*.sh file. suite.sh runs each one in
# its own bash process with `set -euo pipefail` (plus errtrace/inherit_errexit),
# in the repository root, with:
#   T_NAME              the test function's name
#   T_PREFIX            unique dm-name prefix for this test (e.g. dmst-003-create-);
#                       name every dm device, fixture and mount dir with it
#   T_DIR               fresh scratch directory on hostfs (kept after the run;
#                       its test.log holds the test's output)
#   T_REPO              repository root
#   DMSNAP_STATE_DIR    $T_DIR/state (not created)
#   DMSNAP_FIXTURE_DIR  $T_DIR/fixtures (backing files of fx create/cow)
# Before and after each test suite.sh runs `fx sweep "$T_PREFIX"`.
#
# Assertions print a message on stderr and exit the test (status 1):
#   fail MSG
#   assert_eq ACTUAL EXPECTED [MSG]      assert_ne ACTUAL UNEXPECTED [MSG]
#   assert_contains HAYSTACK NEEDLE [MSG]   assert_not_contains HAYSTACK NEEDLE [MSG]
#   assert_file_exists PATH [MSG]        assert_no_file PATH [MSG]
#   assert_exit CODE MSG -- CMD [ARGS...]
#       runs CMD (stdin /dev/null), stdout+stderr into $T_OUT and its status into
#       $T_RC, and asserts the status equals CODE ('!0' = any non-zero).
# Other helpers:
#   log MSG...            a line in the test's log
#   fx ARGS...            fixtures/loopdev.sh ARGS...
#   dm_snapshot_of_all [PREFIX]
#       `dmsetup info -c` and `dmsetup table` lines of every dm device whose name
#       starts with PREFIX (default $T_PREFIX), sorted: compare before/after.

T_REPO=${T_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)}
T_OUT=''
T_RC=0

# _t_where: "file:line" of the innermost caller outside this file.
_t_where() {
    local i
    for ((i = 1; i < ${#BASH_SOURCE[@]}; i++)); do
        if [[ ${BASH_SOURCE[i]} != "${BASH_SOURCE[0]}" ]]; then
            printf '%s:%s' "${BASH_SOURCE[i]##*/}" "${BASH_LINENO[i - 1]}"
            return 0
        fi
    done
    printf '?'
}

# _t_record MSG: remember MSG as the test's failure message (for suite.sh).
_t_record() {
    if [[ -n ${T_FAILFILE:-} ]]; then
        printf '%s\n' "$1" >"$T_FAILFILE" 2>/dev/null || true
    fi
}

# _t_on_err STATUS COMMAND: ERR trap (installed by suite.sh): a command failed
# outside any assertion. An assertion's message, if any, takes precedence.
_t_on_err() {
    # only the test's own shell: a failure inside $(...) or a pipeline that
    # matters shows up again there, with the line of the test that failed
    ((BASH_SUBSHELL == 0)) || return 0
    local msg
    msg="command failed (exit $1): $2 ($(_t_where))"
    printf 'ERROR: %s\n' "$msg" >&2
    if [[ -n ${T_FAILFILE:-} && ! -s $T_FAILFILE ]]; then
        _t_record "$msg"
    fi
}

log() {
    printf '# %s\n' "$*" >&2
}

fail() {
    local msg
    msg="${*:-failed} ($(_t_where))"
    _t_record "$msg"
    printf 'FAIL: %s\n' "$msg" >&2
    exit 1
}

# _t_short TEXT: TEXT cut to one line of at most 200 characters, for messages.
_t_short() {
    local s=${1//$'\n'/\\n}
    ((${#s} <= 200)) || s="${s:0:200}..."
    printf '%s' "$s"
}

assert_eq() {
    (($# >= 2)) || fail "assert_eq: usage: assert_eq ACTUAL EXPECTED [MSG]"
    [[ $1 == "$2" ]] && return 0
    printf 'expected: %s\nactual:   %s\n' "$2" "$1" >&2
    fail "${3:-assert_eq}: expected '$(_t_short "$2")', got '$(_t_short "$1")'"
}

assert_ne() {
    (($# >= 2)) || fail "assert_ne: usage: assert_ne ACTUAL UNEXPECTED [MSG]"
    [[ $1 != "$2" ]] && return 0
    fail "${3:-assert_ne}: expected anything but '$(_t_short "$2")'"
}

assert_contains() {
    (($# >= 2)) || fail "assert_contains: usage: assert_contains HAYSTACK NEEDLE [MSG]"
    [[ $1 == *"$2"* ]] && return 0
    printf 'haystack:\n%s\n' "$1" >&2
    fail "${3:-assert_contains}: '$(_t_short "$2")' not found in '$(_t_short "$1")'"
}

assert_not_contains() {
    (($# >= 2)) || fail "assert_not_contains: usage: assert_not_contains HAYSTACK NEEDLE [MSG]"
    [[ $1 != *"$2"* ]] && return 0
    printf 'haystack:\n%s\n' "$1" >&2
    fail "${3:-assert_not_contains}: '$(_t_short "$2")' found in '$(_t_short "$1")'"
}

assert_file_exists() {
    (($# >= 1)) || fail "assert_file_exists: usage: assert_file_exists PATH [MSG]"
    [[ -e $1 ]] && return 0
    fail "${2:-assert_file_exists}: $1 does not exist"
}

assert_no_file() {
    (($# >= 1)) || fail "assert_no_file: usage: assert_no_file PATH [MSG]"
    [[ ! -e $1 && ! -L $1 ]] && return 0
    fail "${2:-assert_no_file}: $1 exists"
}

# assert_exit CODE MSG -- CMD [ARGS...]
# Note: if CMD is a shell function, errexit is off inside it (bash rule for
# commands whose status is tested).
assert_exit() {
    if (($# < 4)) || [[ $3 != -- ]]; then
        fail "assert_exit: usage: assert_exit CODE MSG -- CMD [ARGS...]"
    fi
    local want=$1 msg=$2
    shift 3
    [[ $want =~ ^(!0|[0-9]+)$ ]] || fail "assert_exit: bad CODE '$want' (a number or !0)"
    T_RC=0
    T_OUT=$("$@" 2>&1 </dev/null) || T_RC=$?
    log "ran: $* -> exit $T_RC"
    if [[ -n $T_OUT ]]; then
        printf '%s\n' "$T_OUT" | sed 's/^/  | /' >&2
    fi
    if [[ $want == '!0' ]]; then
        ((T_RC != 0)) && return 0
        fail "$msg: expected a non-zero exit from '$*', got 0; output: '$(_t_short "$T_OUT")'"
    fi
    ((T_RC == want)) && return 0
    fail "$msg: expected exit $want from '$*', got $T_RC; output: '$(_t_short "$T_OUT")'"
}

fx() {
    "$T_REPO/fixtures/loopdev.sh" "$@"
}

dm_snapshot_of_all() {
    local prefix=${1:-${T_PREFIX:?dm_snapshot_of_all: T_PREFIX is not set}} out n line
    local -a names=()
    out=$(dmsetup info -c --noheadings --separator ' ' --sort name \
        -o name,major,minor,attr,open,segments,events,uuid 2>&1) ||
        fail "dm_snapshot_of_all: dmsetup info failed: $out"
    while IFS= read -r line; do
        n=${line%% *}
        [[ -n $n && $n == "$prefix"* ]] || continue
        names+=("$n")
        printf 'info %s\n' "$line"
    done <<<"$out"
    for n in "${names[@]}"; do
        dmsetup table "$n" 2>&1 | sed "s/^/table $n: /"
    done
}

# udev_start: systemd-udevd in this test kernel (KERNEL.md) with dmsnap's own rule (from
# /run/udev/rules.d: the host's /etc is not the test's to change), events of the devices there so
# far replayed, and libdevmapper told to synchronise with it (DM_DISABLE_UDEV unset). Sets
# UDEV_STARTED=1 when it started one (0: one was running).
udev_start() {
    UDEV_STARTED=0
    if [[ ! -e /run/udev/control ]]; then
        mkdir -p /run/udev/rules.d
        cp "$T_REPO/dist/udev/63-dmsnap-volume.rules" /run/udev/rules.d/
        # no md auto-assembly in the test kernel: the RAID-member refusal test writes a member's
        # superblock and stops its array, which mdadm's rule would assemble again
        ln -sf /dev/null /run/udev/rules.d/64-md-raid-assembly.rules
        /lib/systemd/systemd-udevd --daemon --resolve-names=never >/dev/null 2>&1 || return 1
        udevadm trigger --type=subsystems --action=add >/dev/null 2>&1
        udevadm trigger --type=devices --action=add >/dev/null 2>&1
        udevadm settle --timeout=60 || return 1
        UDEV_STARTED=1
    fi
    unset DM_DISABLE_UDEV
}

# udev_stop: ends the systemd-udevd udev_start started (if it did) and turns libdevmapper's
# udev synchronisation off again.
udev_stop() {
    if [[ ${UDEV_STARTED:-0} == 1 ]]; then
        udevadm settle --timeout=60 || true
        udevadm control --exit || true
        rm -f /run/udev/control
        UDEV_STARTED=0
        export DM_DISABLE_UDEV=1
    fi
}

# udev_cookies: the udev cookies (semaphores) libdevmapper left, one per line (none: empty).
udev_cookies() {
    dmsetup udevcookies 2>/dev/null | awk 'NR > 1 && NF'
}
