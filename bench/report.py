#!/usr/bin/env python3
"""report.py - turn a benchmark run's raw samples into results.json and table.md.

usage: bench/report.py --out DIR [--benchmarks BENCHMARKS.md]

DIR holds what bench/inner.sh wrote: raw.jsonl (one sample per line), meta.json, traces/,
and optionally host.json (written by bench/run.sh on the host: CPUs, memory, load).
Writes DIR/results.json and DIR/table.md and prints the table. With --benchmarks, replaces
the text between "<!-- bench:begin -->" and "<!-- bench:end -->" (hostfs backing) or
"<!-- bench-tmpfs:begin -->" and "<!-- bench-tmpfs:end -->" (tmpfs backing) in that file.
"""
import argparse
import json
import os
import re
import statistics
import sys

LABELS = {
    ("take", "dmsnap"): "dmsnap take",
    ("take", "lvm"): "lvcreate -s",
    ("take", "floor"): "kernel floor (dmsnap-probe floor)",
    ("take", "idle"): "idle (no take; writer noise)",
    ("scale", "set1"): "dmsnap take, 1 device",
    ("scale", "set4"): "dmsnap take, 4 devices",
    ("scale", "set16"): "dmsnap take, 16 devices",
    ("scale", "floor16"): "kernel floor, 16 devices (dmsnap-probe floor)",
    ("merge", "dmsnap"): "dmsnap merge (online, mounted)",
    ("merge", "floor"): "kernel merge floor (dmsnap-probe mergefloor)",
    ("merge", "lvm"): "lvconvert --merge (unmounted)",
}
ORDER = list(LABELS)
TRACE_RE = re.compile(r"dmsnap: trace: \+([0-9.]+) ms (.*)$")
TOOK_RE = re.compile(r"^Took set \S+: \d+ devices? in ([0-9][0-9.,]*) ms")
MERGED_RE = re.compile(r"^Merged set \S+ in ([0-9][0-9.,]*) s")


def stats(values):
    v = [x for x in values if isinstance(x, (int, float))]
    if not v:
        return None
    return {"n": len(v), "min": min(v), "median": statistics.median(v), "max": max(v)}


def kind(action):
    """The kind of a traced action: its first word (record/delete for state changes)."""
    word = action.split(" ", 1)[0]
    return {"zero": "zero-header", "sync": "syncfs", "record": "save-state", "delete": "delete-state"}.get(word, word)


def parse_trace(path):
    """dmsnap DMSNAP_TRACE lines -> steps [(t_ms, action)] (when each began) and done {action:
    t_ms} (when it returned); probe key=value lines; the CLI's own "Took set … in N ms" /
    "Merged set … in N s" (the library call's duration)."""
    steps, kv, call_ms = [], {}, None
    done = {}
    try:
        with open(path, errors="replace") as f:
            for line in f:
                line = line.rstrip("\n")
                m = TRACE_RE.search(line)
                if m:
                    if m.group(2).startswith("done "):
                        done[m.group(2)[5:]] = float(m.group(1))
                    else:
                        steps.append((float(m.group(1)), m.group(2)))
                    continue
                m = TOOK_RE.match(line)
                if m:
                    call_ms = float(m.group(1).replace(",", ""))
                    continue
                m = MERGED_RE.match(line)
                if m:
                    call_ms = float(m.group(1).replace(",", "")) * 1000
                    continue
                if line.startswith(("floor ", "mergefloor ")):
                    for tok in line.split()[1:]:
                        k, _, v = tok.partition("=")
                        try:
                            kv[k] = float(v)
                        except ValueError:
                            kv[k] = v
    except OSError:
        pass
    steps = [(t, a, done.get(a)) for t, a in steps]
    return steps, kv, call_ms


def take_breakdown(steps, wall, call_ms):
    """Where a dmsnap take spends its time, from its trace (times since the manager was made)."""
    if not steps:
        return None
    t = [s[0] for s in steps]
    acts = [s[1] for s in steps]
    ends = [s[2] if s[2] is not None else (t[i + 1] if i + 1 < len(t) else None) for i, s in enumerate(steps)]
    start = next((i for i, a in enumerate(acts) if a.startswith(("freeze", "suspend"))), None)
    end = next((i for i, a in enumerate(acts) if a.startswith("record set") and a.endswith("as active")), None)
    # wall time per kind of step: each run of neighbours of one kind (they may run concurrently)
    # counts from its first start to its last return
    per_kind = {}
    i = 0
    while i < len(steps):
        j = i
        while j + 1 < len(steps) and kind(acts[j + 1]) == kind(acts[i]):
            j += 1
        run_end = max((e for e in ends[i:j + 1] if e is not None), default=None)
        if run_end is not None:
            per_kind[kind(acts[i])] = per_kind.get(kind(acts[i]), 0.0) + (run_end - t[i])
        i = j + 1
    # how long each filesystem stays frozen: its freeze starts .. its thaw returns
    frozen = {}
    for i, a in enumerate(acts):
        if a.startswith("freeze "):
            frozen[a[7:]] = [t[i], None]
        elif a.startswith("thaw ") and a[5:] in frozen:
            frozen[a[5:]][1] = ends[i]
    spans = [e - s for s, e in frozen.values() if e is not None]
    first = next(iter(frozen.values()), None)
    return {
        "call_ms": call_ms,
        "window_ms": (t[end] - t[start]) if start is not None and end is not None else None,
        "before_window_ms": t[start] if start is not None else None,
        "first_step_ms": t[0],
        "after_call_ms": (wall - call_ms) if wall is not None and call_ms is not None else None,
        "frozen_first_ms": (first[1] - first[0]) if first and first[1] is not None else None,
        "frozen_worst_ms": max(spans) if spans else None,
        "step_ms": per_kind,
        "steps": [[round(a, 3), b] + ([round(d, 3)] if d is not None else []) for a, b, d in steps],
    }


def merge_breakdown(steps, wall, call_ms):
    """dmsnap merge: start (load, suspend, resume), wait for the kernel, finish (restore)."""
    if not steps:
        return None
    t = [s[0] for s in steps]
    acts = [s[1] for s in steps]
    r = next((i for i, a in enumerate(acts) if a.startswith("resume")), None)
    f = next((i for i in range((r or 0) + 1, len(acts)) if acts[i].startswith("load")), None)
    return {
        "call_ms": call_ms,
        "first_step_ms": t[0],
        # from the merge table's load to the start of the restore: the kernel's merge as dmsnap sees it
        "merge_ms": (t[f] - t[0]) if f is not None else None,
        "wait_ms": (t[f] - t[r]) if r is not None and f is not None else None,
        "finish_ms": (t[-1] - t[f]) if f is not None else None,
        "after_call_ms": (wall - call_ms) if wall is not None and call_ms is not None else None,
        "steps": [[round(a, 3), b] + ([round(d, 3)] if d is not None else []) for a, b, d in steps],
    }


def fmt(x):
    if x is None:
        return "–"
    if isinstance(x, dict):
        x = x.get("median")
        if x is None:
            return "–"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def triple(s):
    return "–" if not s else f"{fmt(s['min'])} / **{fmt(s['median'])}** / {fmt(s['max'])}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--benchmarks")
    a = ap.parse_args()
    out = a.out
    samples = []
    with open(os.path.join(out, "raw.jsonl")) as f:
        for line in f:
            if line.strip():
                samples.append(json.loads(line))
    meta = json.load(open(os.path.join(out, "meta.json")))
    host = {}
    if os.path.exists(os.path.join(out, "host.json")):
        host = json.load(open(os.path.join(out, "host.json")))

    diag = [s for s in samples if s["case"] == "diag"]
    samples = [s for s in samples if s["case"] != "diag"]
    for s in samples:
        tr = s.get("trace")
        if not tr:
            continue
        steps, kv, call_ms = parse_trace(os.path.join(out, tr))
        if s["contender"] in ("floor", "floor16") and s["case"] in ("take", "scale"):
            s["floor"] = kv
        elif s["case"] in ("take", "scale") and s["contender"] not in ("idle", "lvm"):
            s["dmsnap"] = take_breakdown(steps, s.get("wall_ms"), call_ms)
        elif s["case"] == "merge" and s["contender"] == "dmsnap":
            s["dmsnap"] = merge_breakdown(steps, s.get("wall_ms"), call_ms)

    groups = {}
    for s in samples:
        groups.setdefault((s["case"], s["contender"]), []).append(s)
    summary = {}
    for key in ORDER + [k for k in groups if k not in ORDER]:
        if key not in groups:
            continue
        g = groups[key]
        entry = {"label": LABELS.get(key, f"{key[0]} {key[1]}"),
                 "stall_ms": stats([s.get("stall_ms") for s in g]),
                 "wall_ms": stats([s.get("wall_ms") for s in g])}
        if key in (("take", "floor"), ("scale", "floor16")):
            for k in ("window_ms", "prep_ms", "freeze_ms", "suspend_ms", "resume_ms", "thaw_ms", "total_ms"):
                entry[k] = stats([s.get("floor", {}).get(k) for s in g])
            entry["process_ms"] = stats([s["wall_ms"] - s["floor"]["total_ms"] for s in g
                                         if isinstance(s.get("floor", {}).get("total_ms"), float)])
        if key[0] in ("take", "scale") and key[1] not in ("floor", "floor16", "lvm", "idle"):
            bd = [s.get("dmsnap") or {} for s in g]
            for k in ("call_ms", "window_ms", "before_window_ms", "first_step_ms", "after_call_ms",
                      "frozen_first_ms", "frozen_worst_ms"):
                entry[k] = stats([b.get(k) for b in bd])
            kinds_all = sorted({k for b in bd for k in (b.get("step_ms") or {})})
            entry["step_ms"] = {k: stats([(b.get("step_ms") or {}).get(k) for b in bd]) for k in kinds_all}
        if key == ("merge", "dmsnap"):
            bd = [s.get("dmsnap") or {} for s in g]
            for k in ("call_ms", "first_step_ms", "merge_ms", "wait_ms", "finish_ms", "after_call_ms"):
                entry[k] = stats([b.get(k) for b in bd])
        if key == ("merge", "floor"):
            for k in ("finish_ms", "total_ms", "process_wall_ms", "polls"):
                entry[k] = stats([s.get(k) for s in g])
        summary[f"{key[0]}/{key[1]}"] = entry
    if diag:
        summary["diag/dmsnap"] = {"label": "dmsnap --version (process start-up and exit) / dmsnap status SET",
                                  "true_ms": stats([d.get("true_ms") for d in diag]),
                                  "version_ms": stats([d.get("version_ms") for d in diag]),
                                  "status_ms": stats([d.get("status_ms") for d in diag])}

    def med(key, metric):
        e = summary.get(key)
        return e and e.get(metric) and e[metric]["median"]

    def value(s, metric):
        if "." in metric:
            sub, k = metric.split(".", 1)
            return (s.get(sub) or {}).get(k)
        return s.get(metric)

    def paired(k1, k2, m1, m2):
        """per-repetition ratios k1/k2 (same repetition, same boot)"""
        a = {s["rep"]: value(s, m1) for s in groups.get(tuple(k1.split("/")), [])}
        b = {s["rep"]: value(s, m2) for s in groups.get(tuple(k2.split("/")), [])}
        return [round(a[r] / b[r], 4) for r in sorted(a) if r in b and a[r] and b[r]]

    def target(name, num, den, metric, goal, goal_text, den_metric=None, note=""):
        den_metric = den_metric or metric
        n = med(num, metric.replace(".", "_") if "." not in metric else metric.split(".", 1)[1])
        d = med(den, den_metric if "." not in den_metric else den_metric.split(".", 1)[1])
        ratio = (n / d) if n is not None and d else None
        return {"target": name, "numerator": f"{num} {metric}", "denominator": f"{den} {den_metric}",
                "numerator_median": n, "denominator_median": d, "ratio": ratio, "goal": goal,
                "goal_text": goal_text, "met": ratio is not None and ratio <= goal, "note": note,
                "paired_ratios": paired(num, den, metric, den_metric)}

    targets = [
        target("take: writer stall vs lvcreate -s", "take/dmsnap", "take/lvm", "stall_ms", 0.1, "≤ 1/10"),
        target("take: writer stall vs kernel floor", "take/dmsnap", "take/floor", "stall_ms", 2.0, "≤ 2×"),
        target("take: wall time vs lvcreate -s", "take/dmsnap", "take/lvm", "wall_ms", 0.25, "≤ 1/4"),
        target("scale: 16-device writer stall vs 1 device", "scale/set16", "scale/set1", "stall_ms", 2.0, "≤ 2×"),
        target("scale: 16-device freeze→thaw window vs 16-device kernel floor", "scale/set16", "scale/floor16",
               "dmsnap.window_ms", 1.2, "≤ 1.2×", den_metric="floor.window_ms",
               note="both from in-process clocks: dmsnap's trace, the floor's executor log"),
        target("merge: dmsnap merge vs kernel merge floor", "merge/dmsnap", "merge/floor", "wall_ms", 1.2, "≤ 1.2×",
               note="dmsnap merge is the whole command; the floor is mergefloor's in-process load → done"),
    ]
    # the same comparisons without process start-up and writer noise (from traces; not targets)
    inner = [
        target("take: dmsnap freeze→thaw window vs kernel floor window", "take/dmsnap", "take/floor",
               "dmsnap.window_ms", 2.0, "(≤ 2×)", den_metric="floor.window_ms"),
        target("scale: longest a filesystem stays frozen, 16 devices vs 1", "scale/set16", "scale/set1",
               "dmsnap.frozen_worst_ms", 2.0, "(≤ 2×)", den_metric="dmsnap.frozen_worst_ms"),
        target("merge: dmsnap's merge (trace: merge table load → restore starts) vs kernel floor",
               "merge/dmsnap", "merge/floor", "dmsnap.merge_ms", 1.2, "(≤ 1.2×)", den_metric="wall_ms"),
        target("merge: the library call (SnapshotManager.merge, as the CLI times it) vs kernel floor",
               "merge/dmsnap", "merge/floor", "dmsnap.call_ms", 1.2, "(≤ 1.2×)", den_metric="wall_ms"),
    ]

    results = {"meta": meta, "host": host, "summary": summary, "targets": targets, "inner_comparisons": inner,
               "samples": samples + diag}
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)

    # ---- markdown ----
    L = []
    L.append(f"Run {meta.get('started', '?')} · mode **{meta.get('mode')}** · {meta.get('reps')} repetitions per case, "
             f"contenders interleaved · loop files on **{meta.get('backing', 'hostfs')}** · kernel {meta.get('kernel')} "
             f"(User-Mode Linux, {int(meta.get('uml_mem_kb', 0)) // 1024} MiB)")
    if host:
        L.append("")
        L.append(f"Host: {host.get('nproc')} CPUs ({host.get('cpu')}), {host.get('mem_mib')} MiB; load average "
                 f"{host.get('load_before')} before, {host.get('load_during_mean')} mean / {host.get('load_during_max')} max "
                 f"during the run; other UML kernels running: {host.get('other_uml_before')} before, up to "
                 f"{host.get('other_uml_during_max')} during.")
    L.append("")
    L.append(f"Devices: take/merge {meta.get('take_size')} ext4 on loop (COW {meta.get('take_cow')}); scale "
             f"{meta.get('set_device_size')} ext4 each (COW {meta.get('set_cow')}); merge writes "
             f"{meta.get('change_mib')} MiB of changes. Writer: 4 KiB pwrite + fdatasync in a loop; stall = its "
             "longest single write overlapping the command (scale: writer on device 1). Wall = the whole command, "
             "process start to exit. ms, min / **median** / max.")
    L.append("")
    L.append("| case | contender | writer stall (ms) | wall (ms) |")
    L.append("| --- | --- | --- | --- |")
    for key in ORDER:
        e = summary.get(f"{key[0]}/{key[1]}")
        if not e:
            continue
        wall = triple(e["wall_ms"])
        if key == ("merge", "floor"):
            wall += " (in-process load → done)"
        L.append(f"| {key[0]} | {e['label']} | {triple(e['stall_ms'])} | {wall} |")
    L.append("")
    L.append("| target | goal | medians (ms) | ratio | per-repetition ratios | met |")
    L.append("| --- | --- | --- | --- | --- | --- |")
    for t in targets:
        r = "–" if t["ratio"] is None else f"{t['ratio']:.3f}"
        pr = ", ".join(f"{x:.2f}" for x in t["paired_ratios"]) or "–"
        L.append(f"| {t['target']} | {t['goal_text']} | {fmt(t['numerator_median'])} vs {fmt(t['denominator_median'])} "
                 f"| {r} | {pr} | {'yes' if t['met'] else '**no**'} |")
    L.append("")
    L.append("The same comparisons inside the processes (from DMSNAP_TRACE and the probes' own clocks: no process "
             "start-up, no writer noise):")
    L.append("")
    L.append("| comparison | medians (ms) | ratio | per-repetition ratios |")
    L.append("| --- | --- | --- | --- |")
    for t in inner:
        r = "–" if t["ratio"] is None else f"{t['ratio']:.3f}"
        pr = ", ".join(f"{x:.2f}" for x in t["paired_ratios"]) or "–"
        L.append(f"| {t['target']} | {fmt(t['numerator_median'])} vs {fmt(t['denominator_median'])} | {r} | {pr} |")
    L.append("")
    L.append("Where dmsnap's time goes (medians, ms; `start-up` = a bare `dmsnap --version`, `call` = the library "
             "call as the CLI reports it, `after call` = wall − call: process start-up, the status table it prints, exit):")
    L.append("")
    L.append("| command | wall | call | before window | freeze→thaw window | fs frozen (dev 1 / worst) | after call |")
    L.append("| --- | --- | --- | --- | --- | --- | --- |")
    for key in [("take", "dmsnap"), ("scale", "set1"), ("scale", "set4"), ("scale", "set16")]:
        e = summary.get(f"{key[0]}/{key[1]}")
        if not e:
            continue
        L.append(f"| {e['label']} | {fmt(e['wall_ms'])} | {fmt(e['call_ms'])} | {fmt(e['before_window_ms'])} | "
                 f"{fmt(e['window_ms'])} | {fmt(e['frozen_first_ms'])} / {fmt(e['frozen_worst_ms'])} | "
                 f"{fmt(e['after_call_ms'])} |")
    for k in ("take/floor", "scale/floor16"):
        e = summary.get(k)
        if e:
            L.append(f"| {e['label']} | {fmt(e['wall_ms'])} | {fmt(e['total_ms'])} | {fmt(e['prep_ms'])} | "
                     f"{fmt(e['window_ms'])} | {fmt(e['window_ms'])} | {fmt(e['process_ms'])} |")
    L.append("")
    for key in [("take", "dmsnap"), ("scale", "set16")]:
        e = summary.get(f"{key[0]}/{key[1]}")
        if e and e.get("step_ms"):
            steps = ", ".join(f"{k} {fmt(v)}" for k, v in e["step_ms"].items() if v)
            L.append(f"- {e['label']}, each kind of step summed over the devices: {steps}.")
    for k in ("take/floor", "scale/floor16"):
        e = summary.get(k)
        if e:
            L.append(f"- {e['label']}: freeze {fmt(e['freeze_ms'])}, suspend {fmt(e['suspend_ms'])}, resume "
                     f"{fmt(e['resume_ms'])}, thaw {fmt(e['thaw_ms'])}.")
    e = summary.get("diag/dmsnap")
    if e:
        L.append(f"- `dmsnap --version` (start-up and exit only): {fmt(e['version_ms'])}; `dmsnap status SET`: "
                 f"{fmt(e['status_ms'])}; `/bin/true` (any exec in this kernel): {fmt(e.get('true_ms'))}.")
    e = summary.get("merge/dmsnap")
    if e:
        L.append(f"- {e['label']}: wall {fmt(e['wall_ms'])} = call {fmt(e['call_ms'])} (first step at "
                 f"{fmt(e['first_step_ms'])}, merge {fmt(e['merge_ms'])} of which waiting for the kernel "
                 f"{fmt(e['wait_ms'])}, restore {fmt(e['finish_ms'])}) + {fmt(e['after_call_ms'])} outside the call.")
    e = summary.get("merge/floor")
    if e:
        L.append(f"- {e['label']}: load → done {fmt(e['wall_ms'])}, then restore {fmt(e['finish_ms'])}; "
                 f"the probe process took {fmt(e['process_wall_ms'])}; {fmt(e['polls'])} status polls.")
    text = "\n".join(L) + "\n"
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(text)
    sys.stdout.write(text)

    if a.benchmarks:
        tag = "bench" if meta.get("backing", "hostfs") == "hostfs" else f"bench-{meta['backing']}"
        with open(a.benchmarks) as f:
            doc = f.read()
        begin, end = f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"
        if begin in doc and end in doc:
            head, rest = doc.split(begin, 1)
            _, tail = rest.split(end, 1)
            with open(a.benchmarks + ".tmp", "w") as f:
                f.write(head + begin + "\n" + text + end + tail)
            os.replace(a.benchmarks + ".tmp", a.benchmarks)
        else:
            print(f"report: {a.benchmarks}: no {begin} … {end} section; not updated", file=sys.stderr)


if __name__ == "__main__":
    main()
