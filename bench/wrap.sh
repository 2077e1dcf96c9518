# shellcheck shell=bash
# wrap.sh - what the benchmark wrappers (cowfile.sh, export.sh, cgroup.sh, server.sh) share:
# their options, the release build, a run directory, the boot of the test kernel and the copy of
# the results. Sourced from the repository root.
#   bench_options NAME DEFAULT_REPS ARGS...   parses --reps N, --no-build and the options the
#                                             wrapper names in BENCH_VALUES (NAME=DEFAULT ...)
#   bench_run NAME MEM INNER [ARGS...]         builds, boots, runs INNER --out RUN --reps N --bin …
export PATH="/opt/swift/usr/bin:/usr/local/sbin:/usr/sbin:/sbin:$PATH"

bench_options() {
    local name=$1 opt key
    reps=$2 build=1
    shift 2
    declare -gA bench_value=()
    for opt in ${BENCH_VALUES:-}; do bench_value[${opt%%=*}]=${opt#*=}; done
    while (($#)); do
        case $1 in
        --reps) reps=$2; shift 2 ;;
        --no-build) build=0; shift ;;
        --*)
            key=${1#--}
            [[ -n ${bench_value[$key]+x} && $# -ge 2 ]] || { echo "$name.sh: unknown argument $1" >&2; exit 2; }
            bench_value[$key]=$2
            shift 2 ;;
        *) echo "$name.sh: unknown argument $1" >&2; exit 2 ;;
        esac
    done
}

bench_run() {
    local name=$1 mem=$2 inner=$3 ts run key
    shift 3
    scripts/deps.sh
    mkdir -p .build/bench bench/results
    ((build)) && swift build -c release >.build/bench/build.log 2>&1
    ts=$(date -u +%Y%m%dT%H%M%SZ)
    run=.build/bench/runs/$ts-$name
    mkdir -p "$run"
    local -a extra=()
    for key in "${!bench_value[@]}"; do extra+=("--$key" "${bench_value[$key]}"); done
    Tests/kernel/run-in-uml.sh --mem "$mem" --timeout 3600 -- "$inner" --out "$PWD/$run" --reps "$reps" \
        --bin "$PWD/.build/release" "${extra[@]}" "$@"
    cp "$run/$name.md" "bench/results/$ts-$name.md"
    cp "$run/$name.json" "bench/results/$ts-$name.json"
    echo "$name.sh: results in bench/results/$ts-$name.md"
}
