#!/usr/bin/env bash
# ab.sh - A/B of two dmsnap builds in ONE boot of the test kernel (absolute times swing 2x between
# boots on a shared machine; alternating A and B in the same boot is what makes a change's
# effect visible). Runs bench/inner.sh --quick alternately with each build's dmsnap and
# dmsnap-probe, ROUNDS times, and prints the medians side by side (also to
# .build/bench/ab/TIMESTAMP/summary.md).
#
# usage: sudo bench/ab.sh [--rounds N] [--reps N] [--backing hostfs|tmpfs] A_BINDIR B_BINDIR
#   A_BINDIR, B_BINDIR  directories holding dmsnap and dmsnap-probe (e.g. a release build of an
#                       older commit: git worktree add /tmp/old REV && (cd /tmp/old && swift build
#                       -c release) -> /tmp/old/.build/release)
#   --rounds N          A,B alternations (default 2); --reps N: repetitions per inner run (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:/usr/local/sbin:/usr/sbin:/sbin:$PATH"
die() {
    printf 'bench-ab: error: %s\n' "$*" >&2
    exit 1
}
rounds=2 reps=2 backing=hostfs
bins=()
while (($#)); do
    case $1 in
    --rounds) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "--rounds needs a positive number"; rounds=$2; shift 2 ;;
    --reps) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "--reps needs a positive number"; reps=$2; shift 2 ;;
    --backing) [[ ${2:-} == hostfs || ${2:-} == tmpfs ]] || die "--backing: hostfs or tmpfs"; backing=$2; shift 2 ;;
    -h | --help) sed -n '2,15s/^# \{0,1\}//p' "$0"; exit 0 ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *) bins+=("$(cd "$1" 2>/dev/null && pwd -P)") || die "$1: no such directory"; shift ;;
    esac
done
((${#bins[@]} == 2)) || die "give two build directories, A and B (see --help)"
for d in "${bins[@]}"; do
    for b in dmsnap dmsnap-probe; do [[ -x $d/$b ]] || die "$d/$b missing"; done
done
[[ $EUID -eq 0 ]] || die "must run as root (it boots the test kernel)"
scripts/deps.sh
cc=$(command -v cc || command -v gcc || command -v clang || true)
[[ -n $cc ]] || die "no C compiler for bench/writer.c"
mkdir -p .build/bench
"$cc" -O2 -Wall -pthread -o .build/bench/bench-writer.tmp bench/writer.c
mv -f .build/bench/bench-writer.tmp .build/bench/bench-writer

out=$PWD/.build/bench/ab/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
inner=$out/inner.sh
{
    echo '#!/usr/bin/env bash'
    echo 'set -euo pipefail'
    echo "for round in \$(seq $rounds); do"
    echo "  for side in A B; do"
    echo "    if [[ \$side == A ]]; then bin=$(printf %q "${bins[0]}"); else bin=$(printf %q "${bins[1]}"); fi"
    echo "    $(printf %q "$PWD/bench/inner.sh") --quick --reps $reps --backing $backing --bin \"\$bin\" \\"
    echo "      --writer $(printf %q "$PWD/.build/bench/bench-writer") --out $(printf %q "$out")/\$side-\$round 2>$(printf %q "$out")/\$side-\$round.log"
    echo "  done"
    echo "done"
} >"$inner"
chmod +x "$inner"
printf 'bench-ab: A=%s B=%s, %d rounds; runs in %s\n' "${bins[0]}" "${bins[1]}" "$rounds" "$out" >&2
Tests/kernel/run-in-uml.sh --mem 2G --timeout 3600 -- "$inner" || die "a run failed (logs: $out/*.log)"

python3 - "$out" "${bins[@]}" <<'PY' | tee "$out/summary.md"
import glob, json, os, statistics, sys
out, a_dir, b_dir = sys.argv[1:]
data = {}
for side in ("A", "B"):
    for path in glob.glob(os.path.join(out, f"{side}-*", "raw.jsonl")):
        for line in open(path):
            s = json.loads(line)
            if s.get("case") == "diag":
                continue
            d = data.setdefault((s["case"], s["contender"]), {}).setdefault(side, {"wall": [], "stall": []})
            d["wall"].append(s["wall_ms"])
            if s.get("stall_ms") is not None:
                d["stall"].append(s["stall_ms"])
med = lambda v: statistics.median(v) if v else None
fmt = lambda x: "–" if x is None else (f"{x:.0f}" if abs(x) >= 100 else f"{x:.1f}")
print(f"A = {a_dir}\nB = {b_dir}\n")
print("| case | contender | n | wall A | wall B | B/A | stall A | stall B |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for (case, who), sides in sorted(data.items()):
    a, b = sides.get("A", {"wall": [], "stall": []}), sides.get("B", {"wall": [], "stall": []})
    wa, wb = med(a["wall"]), med(b["wall"])
    ratio = f"{wb / wa:.2f}" if wa and wb else "–"
    print(f"| {case} | {who} | {len(a['wall'])}/{len(b['wall'])} | {fmt(wa)} | {fmt(wb)} | {ratio} | "
          f"{fmt(med(a['stall']))} | {fmt(med(b['stall']))} |")
PY
