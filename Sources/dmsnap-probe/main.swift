// dmsnap-probe: drives the DMSnap library directly, for the kernel suite and the benchmark.
//   dmsnap-probe cycle NAME COUNT          suspend+resume NAME COUNT times, print max/mean ms
//   dmsnap-probe take SET DEVICE=COW...    take a set through SnapshotManager
//   dmsnap-probe state SET                 print "device state used%" per member
//   dmsnap-probe floor DEVICE=COW...       benchmark: the kernel floor of a take of N devices
//   dmsnap-probe mergefloor DEVICE... [--interval-ms N] [--no-finish]
//                                          benchmark: the kernel floor of a merge
//   dmsnap-probe statuscost NAME COUNT     what one status ioctl through the library costs
//   dmsnap-probe watch DEVICE THRESHOLD SECONDS
//                                          benchmark: an observer of a snapshot's COW, polling
//                                          its status every 1 ms: for every crossing of
//                                          THRESHOLD percent, the time until the COW's size
//                                          grows (what the monitor's reaction looks like)
//
// The floors run exactly the planner's plan for a take (a merge) with the product's executor, in
// one process, with the set recorded only in memory and no command around it: the same kernel
// operations in the same order as `dmsnap take` / `dmsnap merge`, so the floor and the product
// cannot drift apart. Each step's start and end come from the executor's trace log.
import DMSnap
import DMSnapTesting
import Logging
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

func fail(_ message: String) -> Never {
    writeStandardError("dmsnap-probe: \(message)\n")
    exit(1)
}

/// Milliseconds of a duration, for `key=value` output.
func ms(_ d: Duration) -> String {
    String(Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15)
}

/// Records every trace line the executor logs, with the time it was logged.
final class StepClock: @unchecked Sendable {
    struct Event {
        var at: ContinuousClock.Instant
        var done: Bool
        var verb: String
    }
    private let lock = NSLockish()
    private var events: [Event] = []

    func record(_ message: String) {
        let now = ContinuousClock.now
        let done = message.hasPrefix("done ")
        let verb = String((done ? message.dropFirst(5) : Substring(message)).prefix { $0 != " " })
        lock.with { events.append(Event(at: now, done: done, verb: verb)) }
    }

    var all: [Event] { lock.with { events } }

    /// From the first start of any of `verbs` to the last end of any of them.
    func span(_ verbs: Set<String>) -> (ContinuousClock.Instant, ContinuousClock.Instant)? {
        let e = all.filter { verbs.contains($0.verb) }
        guard let first = e.first(where: { !$0.done }), let last = e.last(where: \.done) else { return nil }
        return (first.at, last.at)
    }
}

/// A tiny mutex (no Foundation needed).
final class NSLockish: @unchecked Sendable {
    private var m = pthread_mutex_t()
    init() { pthread_mutex_init(&m, nil) }
    func with<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&m)
        defer { pthread_mutex_unlock(&m) }
        return body()
    }
}

let clock = StepClock()
LoggingSystem.bootstrap { label in
    // Trace lines (the executor's steps) go to the clock; warnings to stderr. libdevmapper's own
    // lines stay off: the floor must not pay for them.
    SinkLogHandler(logLevel: label == "dmsnap" ? .trace : .warning) { event in
        if event.level == .trace { clock.record(event.message.description) } else if event.level >= .warning {
            writeStandardError("dmsnap-probe: \(event.message)\n")
        }
    }
}

let args = Array(CommandLine.arguments.dropFirst())
guard let command = args.first else { fail("usage: dmsnap-probe cycle|take|state|floor|mergefloor ...") }

switch command {
case "cycle":
    guard args.count == 3, let name = try? DeviceName(args[1]), let count = Int(args[2]), count > 0 else {
        fail("usage: dmsnap-probe cycle NAME COUNT")
    }
    let dm = LinuxKernel()
    var worst = Duration.zero
    var total = Duration.zero
    for _ in 0..<count {
        let start = ContinuousClock.now
        do { try dm.suspend(name, lockfs: true) } catch { fail(error.description) }
        do { try dm.resume(name) } catch { fail("\(error) — device may be left suspended") }
        let d = ContinuousClock.now - start
        worst = max(worst, d)
        total += d
    }
    let info: DeviceInfo?
    do { info = try dm.info(name) } catch { fail(error.description) }
    guard let info, !info.suspended else { fail("\(name) is suspended after the cycles") }
    print("cycles=\(count) max_ms=\(ms(worst)) mean_ms=\(Double(ms(total))! / Double(count))")
case "take":
    guard args.count >= 3 else { fail("usage: dmsnap-probe take SET DEVICE=COW...") }
    do {
        let pairs = try args.dropFirst(2).map { s throws(PlanError) in try TakeRequest.pair(s) }
        let set = try SnapshotManager().take(TakeRequest(set: args[1], pairs: pairs))
        print("took \(set.name) phase=\(set.phase.rawValue) members=\(set.members.map(\.device.value).joined(separator: ","))")
    } catch { fail("\(error)") }
case "state":
    guard args.count == 2 else { fail("usage: dmsnap-probe state SET") }
    do {
        for s in try SnapshotManager().status(args[1]) {
            for d in s.devices { print("\(d.device) \(d.state.rawValue) \(d.usedPercent ?? -1)") }
        }
    } catch { fail("\(error)") }
case "floor":
    takeFloor(Array(args.dropFirst()))
case "statuscost":
    // what one look of the monitor costs: COUNT status ioctls through the library
    guard args.count == 3, let name = try? DeviceName(args[1]), let count = Int(args[2]), count > 0 else {
        fail("usage: dmsnap-probe statuscost NAME COUNT")
    }
    let dm = LinuxKernel()
    let start = ContinuousClock.now
    for _ in 0..<count { _ = try? dm.status(name) }
    let d = ContinuousClock.now - start
    print("status calls=\(count) mean_us=\(Double(ms(d))! * 1000 / Double(count))")
case "watch":
    guard args.count == 4, let name = try? DeviceName(args[1]), let threshold = Double(args[2]), let seconds = Double(args[3]) else {
        fail("usage: dmsnap-probe watch DEVICE THRESHOLD SECONDS")
    }
    watch(name, threshold: threshold, seconds: seconds)
case "mergefloor":
    mergeFloor(Array(args.dropFirst()))
default:
    fail("unknown command '\(command)'")
}

// MARK: benchmark floors (bench/run.sh)

/// `floor DEVICE=COW...`: the take plan of these devices (as `dmsnap take` plans it), run by the
/// executor: bases created, COW headers wiped, snapshot tables loaded, filesystems synced, then
/// the window freeze → suspend → resume → thaw. Prints each phase's time. Undo it with
/// `mergefloor DEVICE...`. The executor's compensations keep every path safe.
func takeFloor(_ a: [String]) {
    guard !a.isEmpty else { fail("usage: dmsnap-probe floor DEVICE=COW...") }
    let kernel = LinuxKernel()
    let store = MemorySetStore()
    let t0 = ContinuousClock.now
    let request: TakeRequest
    let plan: Plan
    do {
        request = TakeRequest(set: "floor", pairs: try a.map { s throws(PlanError) in try TakeRequest.pair(s) })
        let lookups = request.lookups
        let view = try KernelView.read(kernel, store: store, paths: lookups.paths, probePaths: lookups.probePaths,
                                       scope: lookups.scope, files: lookups.files)
        (_, plan) = try Planner.take(request, view: view)
    } catch { fail("\(error)") }
    let t1 = ContinuousClock.now
    do { try Executor(kernel: kernel, store: store).run(plan) } catch { fail(error.description) }
    let t2 = ContinuousClock.now
    let window: Set<String> = ["freeze", "suspend", "resume", "thaw"]
    func phase(_ verbs: Set<String>) -> String {
        guard let (from, to) = clock.span(verbs) else { return "0" }
        return ms(to - from)
    }
    let firstWindowStep = clock.all.first { window.contains($0.verb) && !$0.done }?.at ?? t2
    print("floor devices=\(request.pairs.count) plan_ms=\(ms(t1 - t0)) prep_ms=\(ms(firstWindowStep - t0)) "
        + "freeze_ms=\(phase(["freeze"])) suspend_ms=\(phase(["suspend"])) resume_ms=\(phase(["resume"])) "
        + "thaw_ms=\(phase(["thaw"])) window_ms=\(phase(window)) total_ms=\(ms(t2 - t0))")
}

/// `mergefloor DEVICE... [--interval-ms N] [--no-finish]`: the merge of a set `floor` left (its
/// description rebuilt from the kernel: each DEVICE runs `snapshot BASE COW P CHUNK`): the
/// planner's start-merge plan, the status polled every N ms (default 1; 0 = no sleep) until
/// ALLOCATED == METADATA, then (unless --no-finish) its finish plan: original tables back, bases
/// removed, COW headers wiped.
func mergeFloor(_ a: [String]) {
    var names: [DeviceName] = []
    var intervalMs = 1.0
    var finish = true
    var i = 0
    while i < a.count {
        switch a[i] {
        case "--no-finish": finish = false
        case "--interval-ms":
            guard i + 1 < a.count, let v = Double(a[i + 1]), v >= 0 else { fail("--interval-ms needs a number") }
            intervalMs = v
            i += 1
        default:
            guard let n = try? DeviceName(a[i]) else { fail("bad device name '\(a[i])'") }
            names.append(n)
        }
        i += 1
    }
    guard !names.isEmpty else { fail("usage: dmsnap-probe mergefloor DEVICE... [--interval-ms N] [--no-finish]") }
    let kernel = LinuxKernel()
    let store = MemorySetStore()
    let executor = Executor(kernel: kernel, store: store)
    let set: SnapshotSet
    do {
        let bases = Set(names.compactMap { try? DMSnapNaming.baseName(for: $0) })
        let view = try KernelView.read(kernel, store: store, scope: .devices(Set(names).union(bases)))
        var cowPaths: [DeviceNumber: String] = [:]
        for n in names {
            if let cow = view.devices[n]?.table?.targets.first?.params.snapshot?.cow.number { cowPaths[cow] = blockPath(cow) }
        }
        set = try Planner.reconstruct(SetName("floor"), devices: names, view: view, cowPaths: cowPaths)
    } catch { fail("\(error)") }
    let t0 = ContinuousClock.now
    do {
        let view = try KernelView.read(kernel, store: store, scope: .of([set]))
        if let start = try Planner.startMerge(set, view: view) { try executor.run(start) }
    } catch { fail("\(error)") }
    let t1 = ContinuousClock.now
    var polls = 0
    var last = ""
    while true {
        polls += 1
        var done = true
        for m in set.members {
            let line: TargetStatus?
            do { line = try kernel.status(m.device).first } catch { fail(error.description) }
            guard let line, line.type == "snapshot-merge", let status = line.snapshot else { fail("\(m.device): not merging") }
            last = line.text
            guard case .valid = status else { fail("\(m.device): merge stopped: \(status)") }
            if !status.mergeComplete { done = false }
        }
        if done { break }
        if intervalMs > 0 { usleep(UInt32(intervalMs * 1000)) }
    }
    let t2 = ContinuousClock.now
    if finish {
        do {
            let view = try KernelView.read(kernel, store: store, scope: .of([set]))
            try executor.run(try Planner.finishMerge(set.with(phase: .merging), view: view))
        } catch { fail("\(error)") }
    }
    let t3 = ContinuousClock.now
    print("mergefloor devices=\(names.count) start_ms=\(ms(t1 - t0)) merge_ms=\(ms(t2 - t0)) finish_ms=\(ms(t3 - t2)) "
        + "total_ms=\(ms(t3 - t0)) polls=\(polls) status=\(last.split(separator: " ").joined(separator: "_"))")
}

/// `/dev/block/MAJ:MIN`, or the sysfs name's /dev node when that link is missing.
func blockPath(_ n: DeviceNumber) -> String {
    let link = "/dev/block/\(n)"
    if access(link, F_OK) == 0 { return link }
    var buf = [CChar](repeating: 0, count: 4096)
    let len = readlink("/sys/dev/block/\(n)", &buf, buf.count - 1)
    if len > 0 {
        let target = String(decoding: buf[0..<len].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if let name = target.split(separator: "/").last { return "/dev/\(name)" }
    }
    return link
}

/// Polls `name`'s snapshot status every 1 ms for `seconds`; prints one line per crossing of
/// `threshold` percent (`crossing reaction_ms=X used_percent=Y`): the time from the first poll
/// that saw the COW at or above the threshold to the first that saw it bigger. The crossing
/// happened at most one poll before it was seen.
func watch(_ name: DeviceName, threshold: Double, seconds: Double) {
    let dm = LinuxKernel()
    let end = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
    var crossedAt: ContinuousClock.Instant?
    var crossedTotal: UInt64 = 0
    var peak = 0.0
    var reactions: [Double] = []
    var missed = 0
    while ContinuousClock.now < end {
        guard let status = try? dm.status(name).first?.snapshot else { break }
        guard case let .valid(a, t, _) = status else {
            print("invalid after \(reactions.count) crossings")
            missed += 1
            break
        }
        let used = Double(a.value) * 100 / Double(t.value)
        peak = max(peak, used)
        let now = ContinuousClock.now
        if let at = crossedAt {
            if t.value > crossedTotal {
                let r = Double(ms(now - at))!
                reactions.append(r)
                print("crossing reaction_ms=\(r) used_percent=\((used * 100).rounded() / 100)")
                crossedAt = nil
            }
        } else if used >= threshold {
            crossedAt = now
            crossedTotal = t.value
        }
        usleep(1000)
    }
    let sorted = reactions.sorted()
    func pct(_ p: Double) -> Double { sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)] }
    print("watch crossings=\(sorted.count) p50_ms=\(pct(0.5)) p95_ms=\(pct(0.95)) max_ms=\(sorted.last ?? 0) peak_percent=\((peak * 100).rounded() / 100) invalid=\(missed)")
}
