#!/usr/bin/env bash
# suite.sh [FILTER] - run the kernel tests (functions test_* in Tests/kernel/t_*.sh).
#
# Must run as root in a kernel with device-mapper, i.e. inside UML:
#   Tests/kernel/run-in-uml.sh -- Tests/kernel/suite.sh [FILTER]
# FILTER is a bash regex matched against each test's name and its file's name
# (e.g. t_fixture, '^test_sweep'). Each test runs in its own bash process with
# `set -euo pipefail`, with T_PREFIX, T_DIR, T_NAME, T_REPO, DMSNAP_STATE_DIR
# and DMSNAP_FIXTURE_DIR set (see lib.sh); `fixtures/loopdev.sh sweep $T_PREFIX`
# runs before and after it, and afterwards no dm device with that prefix, no
# suspended dm device, no loop over a file in $T_DIR, no mount under $T_DIR and
# no background process the test started may remain (else the test fails).
# Prints PASS/FAIL per test (a failing test's output follows, indented) and,
# last, "kernel: N passed, N failed"; exits 1 if a test failed or none ran.
# DMSNAP_KERNEL_UDEV=1: udev mode, with systemd-udevd running and libdevmapper synchronising
# with it; a test that leaves a udev cookie fails. DMSNAP_SUITE_EXCLUDE: a regex of tests (or
# files) not to run.
# Environment: DMSNAP_KT_DIR (scratch root, default /var/tmp/dmsnap-kt; each run
# gets its own run-* directory there, `last` points to the newest, runs older
# than a day are pruned), DMSNAP_TEST_TIMEOUT (seconds per test, default 600),
# DMSNAP_SUITE_QUEUE (a host directory shared by suites running in several kernels at
# once: each test runs in the first kernel that claims it there).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(cd "$here/../.." && pwd -P)
kt_root=${DMSNAP_KT_DIR:-/var/tmp/dmsnap-kt}
test_timeout=${DMSNAP_TEST_TIMEOUT:-600}
loopdev=$repo/fixtures/loopdev.sh

say() { printf '%s\n' "$*"; }
die() {
    printf 'kernel: %s\n' "$*" >&2
    exit 1
}

case ${1:-} in
-h | --help)
    sed -n '2,17s/^# \{0,1\}//p' "$0"
    exit 0
    ;;
esac
(($# <= 1)) || die "usage: suite.sh [FILTER]"
filter=${1:-}
if [[ -n $filter ]]; then
    [[ x =~ $filter ]]
    (($? != 2)) || die "bad FILTER regex '$filter'"
fi
[[ $test_timeout =~ ^[0-9]+$ && $test_timeout -gt 0 ]] || die "DMSNAP_TEST_TIMEOUT: bad value '$test_timeout'"

[[ $EUID -eq 0 ]] || die "must run as root, inside UML: Tests/kernel/run-in-uml.sh -- Tests/kernel/suite.sh"
if [[ ! -e /dev/mapper/control ]] || ! grep -qw device-mapper /proc/misc 2>/dev/null; then
    die "no device-mapper in this kernel (no /dev/mapper/control): run inside UML: Tests/kernel/run-in-uml.sh -- Tests/kernel/suite.sh"
fi
for tool in dmsetup losetup timeout pgrep; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool: not installed"
done
[[ -x $loopdev ]] || die "$loopdev: missing or not executable"
export DM_DISABLE_UDEV=${DM_DISABLE_UDEV:-1}

# ---- discover tests, in file order then definition order --------------------
mapfile -t files < <(printf '%s\n' "$here"/t_*.sh | LC_ALL=C sort)
[[ -e ${files[0]:-} ]] || files=()

# shellcheck source=Tests/kernel/lib.sh
source "$here/lib.sh" || die "cannot source lib.sh"
# udev mode (DMSNAP_KERNEL_UDEV=1): systemd-udevd runs for the whole suite, libdevmapper
# synchronises with it, and a test that leaves a udev cookie behind fails
udev_mode=0
if [[ ${DMSNAP_KERNEL_UDEV:-} == 1 ]]; then
    command -v udevadm >/dev/null 2>&1 || die "udev mode: udevadm not installed (apt-get install udev)"
    udev_start || die "udev mode: systemd-udevd did not start"
    udev_mode=1
    say "# udev mode: systemd-udevd $(udevadm --version) running"
fi
declare -A test_file=()
declare -a tests=()
def_re='^[[:space:]]*(function[[:space:]]+)?(test_[A-Za-z0-9_]+)[[:space:]]*(\(\))?[[:space:]]*(\{.*)?$'
for file in "${files[@]}"; do
    # shellcheck disable=SC1090
    source "$file" || die "${file##*/}: cannot source it"
    mapfile -t lines <"$file"
    for line in "${lines[@]}"; do
        [[ $line =~ $def_re ]] || continue
        [[ -n ${BASH_REMATCH[1]} || -n ${BASH_REMATCH[3]} ]] || continue
        t=${BASH_REMATCH[2]}
        declare -F "$t" >/dev/null || continue
        if [[ -n ${test_file[$t]:-} ]]; then
            [[ ${test_file[$t]} == "$file" ]] && continue
            die "$t is defined in both ${test_file[$t]##*/} and ${file##*/}"
        fi
        test_file[$t]=$file
        tests+=("$t")
    done
done
# test functions defined some other way: last, by name
while read -r _ _ t; do
    [[ $t == test_* && -z ${test_file[$t]:-} ]] || continue
    test_file[$t]='?'
    tests+=("$t")
done < <(declare -F)

# ---- helpers ------------------------------------------------------------
now_us() { local t=${EPOCHREALTIME//[.,]/}; printf -v "$1" '%s' $((10#$t)); }

# dm_rows: "name|suspended" for every dm device
dm_rows() {
    local line
    while IFS= read -r line; do
        [[ $line == *'|'* ]] && printf '%s\n' "$line"
    done < <(dmsetup info -c --noheadings --separator '|' -o name,suspended 2>/dev/null)
    return 0
}

# leftovers PREFIX DIR: print one line per thing left behind; resumes stray
# suspended devices and detaches stray loops, so later tests are not hit too
leftovers() {
    local prefix=$1 dir=$2 n s d back mp
    while IFS='|' read -r n s; do
        [[ $n == "$prefix"* ]] && echo "dm device $n left after sweep"
        if [[ $s == Suspended ]]; then
            echo "dm device $n left suspended"
            dmsetup resume "$n" >/dev/null 2>&1 || true
        fi
    done < <(dm_rows)
    for d in /sys/block/loop*; do
        [[ -r $d/loop/backing_file ]] || continue
        back=$(<"$d/loop/backing_file") || continue
        if [[ $back == "$dir/"* ]]; then
            echo "loop device /dev/${d##*/} over $back left after sweep"
            losetup -d "/dev/${d##*/}" >/dev/null 2>&1 || true
        fi
    done
    while read -r _ mp _; do
        printf -v mp '%b' "${mp//\\/\\0}"
        [[ $mp == "$dir" || $mp == "$dir/"* ]] && echo "mount $mp left after sweep"
    done </proc/self/mounts
    return 0
}

# ---- run ------------------------------------------------------------------
mkdir -p "$kt_root" || die "$kt_root: cannot create directory"
kt_root=$(cd "$kt_root" && pwd -P)
# Several kernels may run suites at once over the same host filesystem: every
# run gets its own directory; prune those of runs older than a day.
find "$kt_root" -mindepth 1 -maxdepth 1 -type d -name 'run-*' -mmin +1440 \
    -exec rm -rf --one-file-system {} + 2>/dev/null
boot_id=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null) || boot_id=$RANDOM$RANDOM
run_dir=$kt_root/run-$(date +%Y%m%d-%H%M%S)-${boot_id:0:8}-$$
mkdir -p "$run_dir" || die "$run_dir: cannot create directory"
ln -sfn "${run_dir##*/}" "$kt_root/last" 2>/dev/null
say "# logs: $run_dir"
# leftovers of an earlier run in this kernel (devices only live as long as it)
DMSNAP_FIXTURE_DIR=$run_dir "$loopdev" sweep dmst- >"$run_dir/sweep.log" 2>&1 ||
    say "warning: initial sweep failed (see $run_dir/sweep.log)"

passed=0
failed=0
idx=0
start=0
end=0
stray=''
for t in "${tests[@]}"; do
    idx=$((idx + 1))
    f=${test_file[$t]}
    stem=${f##*/}
    stem=${stem%.sh}
    if [[ -n $filter ]] && ! [[ $t =~ $filter || $stem =~ $filter ]]; then
        continue
    fi
    if [[ -n ${DMSNAP_SUITE_EXCLUDE:-} ]] && [[ $t =~ $DMSNAP_SUITE_EXCLUDE || $stem =~ $DMSNAP_SUITE_EXCLUDE ]]; then
        continue
    fi
    # Several kernels may share the work: each test goes to the first that claims it.
    if [[ -n ${DMSNAP_SUITE_QUEUE:-} ]] && ! mkdir "$DMSNAP_SUITE_QUEUE/$t" 2>/dev/null; then
        continue
    fi
    short=${t#test_}
    short=${short//[^A-Za-z0-9_]/_}
    short=${short:0:10}
    t_prefix=$(printf 'dmst-%03d-%s-' "$idx" "$short")
    t_dir=$run_dir/${t_prefix}${t#test_}
    fixdir=$t_dir/fixtures

    # the sweep first: rm must never run through a mounted filesystem
    DMSNAP_FIXTURE_DIR=$fixdir "$loopdev" sweep "$t_prefix" >"$run_dir/pre-sweep.log" 2>&1
    rm -rf --one-file-system "$t_dir"
    mkdir -p "$t_dir"
    log_file=$t_dir/test.log
    fail_file=$t_dir/.failmsg
    : >"$fail_file"
    cat "$run_dir/pre-sweep.log" >"$log_file"

    now_us start
    # shellcheck disable=SC2016 # code for the test's own bash
    T_NAME=$t T_PREFIX=$t_prefix T_DIR=$t_dir T_REPO=$repo T_FAILFILE=$fail_file \
        DMSNAP_STATE_DIR=$t_dir/state DMSNAP_FIXTURE_DIR=$fixdir \
        timeout -k 10 "$test_timeout" bash -c '
            source "$1/lib.sh" || exit 99
            shift
            for f in "$@"; do source "$f" || exit 99; done
            cd "$T_REPO" || exit 99
            set -euo pipefail -o errtrace
            shopt -s inherit_errexit
            trap '\''_t_on_err "$?" "$BASH_COMMAND"'\'' ERR
            "$T_NAME"
        ' kernel-test "$here" "${files[@]}" >>"$log_file" 2>&1 </dev/null &
    tpid=$!
    wait "$tpid"
    rc=$?
    now_us end
    # timeout(1) leads its own process group: whatever is left in it is a
    # background process the test did not stop (it may hold a device open)
    stray=$(pgrep -l -g "$tpid" 2>/dev/null)
    if [[ -n $stray ]]; then
        kill -KILL -- "-$tpid" 2>/dev/null
        sleep 0.5
    fi

    {
        echo "--- sweep after test (exit $rc)"
        DMSNAP_FIXTURE_DIR=$fixdir "$loopdev" sweep "$t_prefix" 2>&1 || echo "sweep failed"
    } >>"$log_file" 2>&1
    left=$(leftovers "$t_prefix" "$t_dir")
    if ((udev_mode)) && [[ -n $(udev_cookies) ]]; then
        left="udev cookies left: $(udev_cookies | awk '{print $1}' | xargs)${left:+$'\n'}$left"
        dmsetup udevcomplete_all -y >/dev/null 2>&1 || true
    fi
    if [[ -n $stray ]]; then
        left="background processes left running (killed): ${stray//$'\n'/; }${left:+$'\n'}$left"
    fi

    msg=''
    if ((rc == 124 || rc == 137)); then
        msg="timed out after ${test_timeout}s"
    elif ((rc != 0)); then
        msg=$(head -c 2000 "$fail_file" 2>/dev/null)
        [[ -n $msg ]] || msg="exit status $rc"
    elif [[ -n $left ]]; then
        msg=${left%%$'\n'*}
    fi
    if [[ -n $left ]]; then
        printf -- '--- left behind:\n%s\n' "$left" >>"$log_file"
    fi

    us=$((end - start))
    secs=$(printf '%d.%02d' $((us / 1000000)) $((us % 1000000 / 10000)))
    if [[ -z $msg ]]; then
        passed=$((passed + 1))
        say "PASS $t (${secs}s)"
    else
        failed=$((failed + 1))
        msg=${msg//$'\n'/ | }
        say "FAIL $t: $msg"
        sed 's/^/    /' "$log_file"
        say "    (log: $log_file, ${secs}s)"
    fi
done
rm -f "$run_dir/pre-sweep.log"
((udev_mode)) && udev_stop

if ((passed + failed == 0)) && [[ -n ${DMSNAP_SUITE_QUEUE:-} ]]; then
    say "kernel: 0 passed, 0 failed (the other kernels took every test)"
    exit 0
fi
if ((passed + failed == 0)); then
    if [[ -n $filter ]]; then
        say "no test matches '$filter'"
    else
        say "no tests found in $here/t_*.sh"
    fi
fi
say "kernel: $passed passed, $failed failed"
((failed == 0 && passed > 0))
