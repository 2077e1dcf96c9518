// dmsnap-probe: drives the DMSnap library directly, for the kernel suite and the benchmark.
//   dmsnap-probe cycle NAME COUNT          suspend+resume NAME COUNT times, print max/mean ms
//   dmsnap-probe take SET DEVICE=COW...    take a set through SnapshotManager
//   dmsnap-probe state SET                 print "device state used%" per member
//   dmsnap-probe floor LIVE BASE COW [--sync]
//                                          benchmark: the kernel floor of a take (base created and
//                                          snapshot table loaded first; then only freeze, suspend
//                                          (nolockfs), resume, thaw), printing the window's timings
//   dmsnap-probe mergefloor LIVE BASE [--interval-ms N] [--no-finish]
//                                          benchmark: the kernel's own merge time (load snapshot-merge,
//                                          suspend, resume, poll status until ALLOCATED == METADATA),
//                                          then restore LIVE's original table and remove BASE
import DMSnap
#if canImport(Glibc)
import Glibc
#endif

func fail(_ message: String) -> Never {
    writeStandardError("dmsnap-probe: \(message)\n")
    exit(1)
}

let args = Array(CommandLine.arguments.dropFirst())
guard let command = args.first else { fail("usage: dmsnap-probe cycle|take|state ...") }

switch command {
case "cycle":
    guard args.count == 3, let name = try? DeviceName(args[1]), let count = Int(args[2]), count > 0 else {
        fail("usage: dmsnap-probe cycle NAME COUNT")
    }
    let dm = LibDeviceMapper()
    var worst = Duration.zero
    var total = Duration.zero
    for _ in 0..<count {
        let start = ContinuousClock.now
        do {
            try dm.suspend(name, lockfs: true)
        } catch { fail(error.description) }
        do { try dm.resume(name) } catch { fail("\(error) — device may be left suspended") }
        let d = ContinuousClock.now - start
        worst = max(worst, d)
        total += d
    }
    let info: DeviceInfo?
    do { info = try dm.info(name) } catch { fail(error.description) }
    guard let info, !info.suspended else { fail("\(name) is suspended after the cycles") }
    let ms = { (d: Duration) in Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15 }
    print("cycles=\(count) max_ms=\(ms(worst)) mean_ms=\(ms(total) / Double(count))")
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
    benchFloor(Array(args.dropFirst()))
case "mergefloor":
    benchMergeFloor(Array(args.dropFirst()))
default:
    fail("unknown command '\(command)'")
}

// MARK: benchmark floors (bench/run.sh)

/// Milliseconds of a duration, for `key=value` output.
func benchMs(_ d: Duration) -> String {
    let ms = Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
    return String(ms)
}

/// `floor LIVE BASE COW [--sync]`: what the kernel needs for a take, from one process. Creates BASE
/// with LIVE's table, zeroes COW's header and loads LIVE's snapshot table (all outside the window),
/// optionally syncs the filesystem, then does only freeze → suspend(nolockfs) → resume → thaw
/// (suspend with lockfs instead of freeze/thaw when LIVE is not mounted). Undo it with
/// `mergefloor LIVE BASE`. Never leaves LIVE suspended or its filesystem frozen.
func benchFloor(_ a: [String]) {
    let sync = a.contains("--sync")
    let pos = a.filter { $0 != "--sync" }
    guard pos.count == 3, let live = try? DeviceName(pos[0]), let base = try? DeviceName(pos[1]), pos[2].hasPrefix("/") else {
        fail("usage: dmsnap-probe floor LIVE BASE COW [--sync]")
    }
    let cowPath = pos[2]
    let dm = LibDeviceMapper()
    let t0 = ContinuousClock.now
    let number: DeviceNumber
    let original: Table
    let cow: BlockDeviceInfo
    let mountPoint: String?
    do {
        guard let info = try dm.info(live) else { fail("\(live): no such device") }
        guard !info.suspended, !info.hasInactiveTable else { fail("\(live): suspended or has an inactive table") }
        number = info.number
        original = try dm.table(live)
        cow = try dm.blockDevice(at: cowPath)
        mountPoint = try dm.mounts().first { $0.number == number }?.mountPoint
    } catch { fail(error.description) }
    do {
        try dm.create(base, uuid: "BENCH-FLOOR-\(base.value)", table: original, hidden: true)
    } catch { fail(error.description) }
    func undoBase(_ why: String) -> Never {
        try? dm.clearInactive(live)
        try? dm.remove(base)
        fail(why)
    }
    let table: Table
    do {
        guard let baseInfo = try dm.info(base) else { undoBase("\(base): vanished after create") }
        try dm.zeroHeader(cowPath, bytes: 4096)
        table = SnapshotParams(origin: baseInfo.number, cow: cow.number, chunk: Sectors(8)).table(size: original.size, merge: false)
        try dm.load(live, table: table)
        if sync, let mountPoint { try dm.syncFilesystem(mountPoint) }
    } catch { undoBase(error.description) }
    let t1 = ContinuousClock.now
    // The window.
    if let mountPoint {
        do { try dm.freeze(mountPoint) } catch { undoBase(error.description) }
    }
    let t2 = ContinuousClock.now
    do { try dm.suspend(live, lockfs: mountPoint == nil) } catch {
        if let mountPoint { try? dm.thaw(mountPoint) }
        undoBase(error.description)
    }
    let t3 = ContinuousClock.now
    var resumeError: DeviceMapperError?
    do { try dm.resume(live) } catch {
        resumeError = error
        // Never leave it suspended: back to the original table.
        try? dm.clearInactive(live)
        try? dm.resume(live)
    }
    let t4 = ContinuousClock.now
    if let mountPoint {
        do { try dm.thaw(mountPoint) } catch { fail("\(error) — \(mountPoint) may be left frozen (fsfreeze -u \(mountPoint))") }
    }
    let t5 = ContinuousClock.now
    if let resumeError {
        try? dm.remove(base)
        fail(resumeError.description)
    }
    print("floor prep_ms=\(benchMs(t1 - t0)) freeze_ms=\(benchMs(t2 - t1)) suspend_ms=\(benchMs(t3 - t2)) "
        + "resume_ms=\(benchMs(t4 - t3)) thaw_ms=\(benchMs(t5 - t4)) window_ms=\(benchMs(t5 - t1)) total_ms=\(benchMs(t5 - t0))")
}

/// `mergefloor LIVE BASE [--interval-ms N] [--no-finish]`: the kernel's own merge time. LIVE must run
/// `snapshot BASE COW P CHUNK`. Loads `snapshot-merge` with the same parameters, suspends, resumes
/// and polls the status every N ms (default 1; 0 = no sleep) until ALLOCATED == METADATA. Then,
/// unless --no-finish, loads BASE's table (the original) into LIVE, suspends, resumes, removes BASE
/// and zeroes the COW header.
func benchMergeFloor(_ a: [String]) {
    var pos: [String] = []
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
        default: pos.append(a[i])
        }
        i += 1
    }
    guard pos.count == 2, let live = try? DeviceName(pos[0]), let base = try? DeviceName(pos[1]) else {
        fail("usage: dmsnap-probe mergefloor LIVE BASE [--interval-ms N] [--no-finish]")
    }
    let dm = LibDeviceMapper()
    let params: SnapshotParams
    let size: Sectors
    let original: Table
    do {
        let t = try dm.table(live)
        guard t.targets.count == 1, t.targets[0].type == "snapshot" else { fail("\(live): does not run a snapshot table") }
        params = try SnapshotParams(parsing: t.targets[0].params)
        size = t.size
        original = try dm.table(base)
    } catch { fail("\(error)") }
    let t0 = ContinuousClock.now
    do {
        try dm.load(live, table: params.table(size: size, merge: true))
    } catch { fail(error.description) }
    do { try dm.suspend(live, lockfs: true) } catch {
        try? dm.clearInactive(live)
        fail(error.description)
    }
    do { try dm.resume(live) } catch { fail("\(error) — \(live) may be left suspended") }
    let t1 = ContinuousClock.now
    var polls = 0
    var last = ""
    while true {
        polls += 1
        let line: TargetStatus?
        do { line = try dm.status(live).first } catch { fail(error.description) }
        guard let line, line.type == "snapshot-merge" else { fail("\(live): not merging") }
        last = line.params
        let status: SnapshotStatus
        do { status = try SnapshotStatus(parsing: line.params) } catch { fail("\(live): \(error)") }
        if status.mergeComplete { break }
        guard case .valid = status else { fail("\(live): merge stopped: \(status)") }
        if intervalMs > 0 { usleep(UInt32(intervalMs * 1000)) }
    }
    let t2 = ContinuousClock.now
    if finish {
        do {
            try dm.load(live, table: original)
            try dm.suspend(live, lockfs: true)
        } catch {
            try? dm.clearInactive(live)
            try? dm.resume(live)
            fail(error.description)
        }
        do { try dm.resume(live) } catch { fail("\(error) — \(live) may be left suspended") }
        do {
            try dm.remove(base)
            try dm.zeroHeader(benchBlockPath(params.cow), bytes: 4096)
        } catch { fail(error.description) }
    }
    let t3 = ContinuousClock.now
    print("mergefloor start_ms=\(benchMs(t1 - t0)) merge_ms=\(benchMs(t2 - t0)) finish_ms=\(benchMs(t3 - t2)) "
        + "total_ms=\(benchMs(t3 - t0)) polls=\(polls) status=\(last.split(separator: " ").joined(separator: "_"))")
}

/// `/dev/block/MAJ:MIN`, or the sysfs name's /dev node when that link is missing.
func benchBlockPath(_ n: DeviceNumber) -> String {
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
