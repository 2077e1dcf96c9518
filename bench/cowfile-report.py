#!/usr/bin/env python3
"""cowfile-report.py - turns bench/cowfile-inner.sh's raw numbers into cowfile.md and cowfile.json.

usage: cowfile-report.py RAW.jsonl WATCH.txt OUTDIR DIO IDLE_LARGE IDLE_SMALL IDLE_GROWN GROWS COW_AFTER STATE REPS SECONDS MONITOR_SECONDS
"""
import json
import statistics
import sys

raw, watch, outdir, dio, idle_large, idle_small, idle_grown, grows, cow_after, state, reps, seconds, monitor_seconds = sys.argv[1:14]
rows = [json.loads(line) for line in open(raw) if line.strip()]


def median(case, rw, key):
    v = [r[key] for r in rows if r["case"] == case and r["rw"] == rw]
    return statistics.median(v) if v else 0.0


def ratio(a, b):
    return round(a / b, 3) if b else 0.0


rand = {c: median(c, "randwrite", "iops") for c in ["none", "block", "file", "file-buffered", "file-prealloc", "lvm-none", "lvm-snap"]}
seq = {c: median(c, "write", "mibs") for c in ["block", "file", "file-buffered", "file-prealloc"]}
tax_dmsnap = ratio(rand["block"], rand["none"])
tax_lvm = ratio(rand["lvm-snap"], rand["lvm-none"])
w = {}
for line in open(watch):
    if line.startswith("watch "):
        w = dict(kv.split("=") for kv in line.split()[1:])
crossings = int(w.get("crossings", 0))
p95 = float(w.get("p95_ms", 0))
result = {
    "reps": int(reps), "seconds": int(seconds),
    "randwrite_iops": rand, "seq_write_mibs": seq,
    "loop_direct_io": dio == "1",
    "file_vs_block_randwrite": ratio(rand["file"], rand["block"]),
    "file_buffered_vs_block_randwrite": ratio(rand["file-buffered"], rand["block"]),
    "file_vs_block_seq": ratio(seq["file"], seq["block"]),
    "file_buffered_vs_block_seq": ratio(seq["file-buffered"], seq["block"]),
    "file_prealloc_vs_block_randwrite": ratio(rand["file-prealloc"], rand["block"]),
    "file_prealloc_vs_block_seq": ratio(seq["file-prealloc"], seq["block"]),
    "snapshot_tax_dmsnap": tax_dmsnap, "snapshot_tax_lvm": tax_lvm,
    "dmsnap_vs_lvm_tax": ratio(tax_dmsnap, tax_lvm),
    "monitor": {"writer_seconds": int(monitor_seconds), "crossings": crossings, "p50_ms": float(w.get("p50_ms", 0)), "p95_ms": p95,
                "max_ms": float(w.get("max_ms", 0)), "peak_percent": float(w.get("peak_percent", 0)),
                "invalid": int(w.get("invalid", 0)), "grows": int(grows), "cow_after_bytes": int(cow_after),
                "state_after": state, "idle_cpu_percent_grown_cow": float(idle_grown),
                "idle_cpu_percent_large_cow": float(idle_large),
                "idle_cpu_percent_16mib_cow": float(idle_small)},
}
targets = [
    ("file COW vs block COW, random 4 KiB writes (direct I/O loop)", result["file_vs_block_randwrite"], ">= 0.9", result["file_vs_block_randwrite"] >= 0.9),
    ("file COW vs block COW, sequential 1 MiB writes (direct I/O loop)", result["file_vs_block_seq"], ">= 0.9", result["file_vs_block_seq"] >= 0.9),
    ("snapshot tax: IOPS with a set / without", tax_dmsnap, ">= 0.8", tax_dmsnap >= 0.8),
    ("dmsnap's tax / LVM's tax", result["dmsnap_vs_lvm_tax"], ">= 1.3", result["dmsnap_vs_lvm_tax"] >= 1.3),
    ("monitor reaction p95 (ms), >= 20 crossings", p95, "<= 100", p95 <= 100 and crossings >= 20),
    ("monitor idle CPU, a 20% COW file of a 64 GiB device (% of a core)", float(idle_large), "< 0.5", float(idle_large) < 0.5),
]
result["targets"] = [{"what": t[0], "value": t[1], "target": t[2], "met": t[3]} for t in targets]
json.dump(result, open(f"{outdir}/cowfile.json", "w"), indent=2, sort_keys=True)
with open(f"{outdir}/cowfile.md", "w") as f:
    f.write(f"# COW files, snapshot tax, monitor ({reps} repetitions of {seconds} s, medians, one boot)\n\n")
    f.write("| random 4 KiB direct writes, iodepth 16 | IOPS |\n| --- | --- |\n")
    for c, v in rand.items():
        f.write(f"| {c} | {v:.0f} |\n")
    f.write("\n| sequential 1 MiB direct writes | MiB/s |\n| --- | --- |\n")
    for c, v in seq.items():
        f.write(f"| {c} | {v:.1f} |\n")
    f.write(f"\nLoop over the COW file uses direct I/O: {'yes' if dio == '1' else 'no'}.\n\n")
    f.write(f"Monitor (a 20 MiB/s writer for {monitor_seconds} s on a 16 MiB COW file): {crossings} threshold crossings seen by the observer, reaction p50 {w.get('p50_ms')} ms, "
            f"p95 {p95} ms, max {w.get('max_ms')} ms; the COW peaked at {w.get('peak_percent')}%, grew {grows} times "
            f"to {int(cow_after) >> 20} MiB, state afterwards: {state}. Idle CPU of the monitor: {idle_grown}% of a core "
            f"(the grown COW alone, just under the threshold), {idle_large}% with a 20% COW file of a 64 GiB device alone, "
            f"{idle_small}% with a 16 MiB COW beside that.\n\n")
    f.write("| target | value | target | met |\n| --- | --- | --- | --- |\n")
    for t in targets:
        f.write(f"| {t[0]} | {t[1]} | {t[2]} | {'yes' if t[3] else 'no'} |\n")
print(open(f"{outdir}/cowfile.md").read())
