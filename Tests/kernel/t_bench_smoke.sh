# shellcheck shell=bash
# Benchmark smoke test: bench/inner.sh --quick (1 repetition, small devices) must run every case
# and produce a results table with every contender and a number for each, so the benchmark
# (bench/run.sh, see BENCHMARKS.md) cannot rot. Uses the suite's debug build.
# shellcheck source=Tests/kernel/common.sh
source "$T_REPO/Tests/kernel/common.sh"

test_bench_quick_produces_results() {
    local out=$T_DIR/results
    assert_exit 0 "bench/inner.sh --quick" -- "$T_REPO/bench/inner.sh" --quick --out "$out" \
        --bin "$(dirname "$DMSNAP")" --prefix "$T_PREFIX" --work "$T_DIR/work"
    assert_file_exists "$out/table.md"
    assert_file_exists "$out/results.json"
    local table
    table=$(<"$out/table.md")
    local label
    for label in "dmsnap take" "lvcreate -s" "kernel floor (dmsnap-probe floor)" "idle (no take" \
        "dmsnap take, 1 device" "dmsnap take, 4 devices" "dmsnap take, 16 devices" \
        "kernel floor, 16 devices (dmsnap-probe floor)" \
        "dmsnap merge (online, mounted)" "kernel merge floor (dmsnap-probe mergefloor)" "lvconvert --merge (unmounted)"; do
        assert_contains "$table" "| $label" "contender missing from the table"
    done
    # every contender: a number for each metric it measures; every target evaluated
    assert_eq "$(json "$out/results.json" '
sorted(k for k, e in d["summary"].items()
       if isinstance((e.get("wall_ms") or {}).get("median"), (int, float)) and e["wall_ms"]["median"] > 0
       and (k.startswith("merge/") or isinstance((e.get("stall_ms") or {}).get("median"), (int, float))))')" \
        "['merge/dmsnap', 'merge/floor', 'merge/lvm', 'scale/floor16', 'scale/set1', 'scale/set16', 'scale/set4', 'take/dmsnap', 'take/floor', 'take/idle', 'take/lvm']" \
        "contenders without numeric results"
    assert_eq "$(json "$out/results.json" 'all(isinstance(t["ratio"], float) for t in d["targets"]) and len(d["targets"])')" 6 \
        "targets not evaluated"
    # the table's cells are numbers, not placeholders
    assert_not_contains "$(grep -E '^\| (take|scale) \|' <<<"$table")" "| – |" "empty cell in the results table"
    # the bench cleaned up after itself (the suite checks dm devices, loops and mounts too)
    assert_eq "$(dmsetup ls | grep -c -e "^$T_PREFIX" -e "^${T_PREFIX//-/--}" || true)" 0 "dm devices left behind"
    assert_eq "$(find "$T_DIR/fixtures" -name '*.img' 2>/dev/null | wc -l)" 0 "fixture files left behind"
}

# The COW-file benchmark (bench/cowfile.sh) in its quick mode: every case measured, every
# target evaluated, nothing left behind.
test_bench_cowfile_quick_produces_results() {
    local out=$T_DIR/cowfile
    assert_exit 0 "bench/cowfile-inner.sh --quick" -- "$T_REPO/bench/cowfile-inner.sh" --quick --out "$out" \
        --bin "$(dirname "$DMSNAP")" --prefix "$T_PREFIX"
    assert_file_exists "$out/cowfile.md"
    assert_eq "$(json "$out/cowfile.json" 'sorted(k for k, v in d["randwrite_iops"].items() if v > 0)')" \
        "['block', 'file', 'file-buffered', 'file-prealloc', 'lvm-none', 'lvm-snap', 'none']" "random-write cases without a number"
    assert_eq "$(json "$out/cowfile.json" 'sorted(k for k, v in d["seq_write_mibs"].items() if v > 0)')" \
        "['block', 'file', 'file-buffered', 'file-prealloc']" "sequential cases without a number"
    assert_eq "$(json "$out/cowfile.json" 'len(d["targets"]), d["monitor"]["state_after"], d["monitor"]["grows"] > 0')" \
        "6 active True" "targets or the monitor run"
    assert_eq "$(dmsetup ls | grep -c -e "^$T_PREFIX" || true)" 0 "dm devices left behind"
}
