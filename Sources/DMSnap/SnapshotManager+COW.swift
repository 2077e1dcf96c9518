import FoundationEssentials
import Logging
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Growing COW files: `extend` by hand, and the monitor that grows them before they fill.
extension SnapshotManager {
    /// The member of `set` that `device` names (a dm name or /dev/mapper/NAME).
    func member(_ set: SnapshotSet, _ device: String) throws(DMSnapError) -> SnapshotSet.Member {
        let raw = device.hasPrefix("/dev/mapper/") ? String(device.dropFirst(12)) : device
        guard let m = set.members.first(where: { $0.device.value == raw }) else {
            throw .refused(PlanError(device, "not a device of set \(set.name) (its devices: \(set.members.map(\.device.value).joined(separator: ", ")))"))
        }
        return m
    }

    /// Grows the COW file of `device` in set `name`: `by` more (a size, or a share of the COW's
    /// size now) or, with `to`, to that size. Refuses a block-device COW, a set that is not
    /// active, and growth the COW's filesystem has no room for.
    @discardableResult
    public func extend(_ name: String, device: String, by: COWSizePolicy? = nil, to: UInt64? = nil) throws(DMSnapError) -> (from: Sectors, to: Sectors) {
        try requireRoot()
        return try journaled(name, "extend", { "grew the COW of \(device) from \(ByteCount.text($0.from.bytes)) to \(ByteCount.text($0.to.bytes))" }) {
            () throws(DMSnapError) -> (from: Sectors, to: Sectors) in
            try locked { () throws(DMSnapError) -> (from: Sectors, to: Sectors) in
                let set = try existing(name)
                let m = try member(set, device)
                guard m.cowFile != nil else {
                    throw .refused(PlanError(m.cow, "COW is a block device: dmsnap cannot grow it; grow the device itself (e.g. lvextend) and the snapshot uses the new size at once"))
                }
                let (now, _) = try activeSize(set, m)
                let target: UInt64
                if let to { target = to } else { target = now.bytes + (by ?? .percent(20)).bytes(origin: now) }
                let useful = ExceptionStore.usefulMaximum(origin: m.size, chunk: set.chunk)
                guard now < useful else {
                    throw .refused(PlanError(m.cow, "COW is \(ByteCount.text(now.bytes)) already, all a snapshot of \(m.device) can use"))
                }
                let new = Sectors(min(useful.value, (target + set.chunk.bytes - 1) / set.chunk.bytes * set.chunk.value))
                guard new > now else {
                    throw .refused(PlanError(m.cow, "COW is \(ByteCount.text(now.bytes)) already; give a larger size (or +SIZE)"))
                }
                let free: UInt64
                do throws(KernelError) { free = try kernel.space(of: m.cow).free } catch { throw .kernel(error) }
                guard new.bytes - now.bytes <= free else {
                    throw .refused(PlanError(m.cow, "not enough space: growing by \(ByteCount.text(new.bytes - now.bytes)) needs that much free, \(ByteCount.text(free)) free on its filesystem"))
                }
                let grown = try grow(set, m, to: new)
                return (now, grown)
            }
        }
    }

    /// The COW size the kernel uses now, for a member whose live device runs its snapshot.
    func activeSize(_ set: SnapshotSet, _ m: SnapshotSet.Member) throws(DMSnapError) -> (Sectors, SnapshotStatus) {
        let status: SnapshotStatus?
        do { status = try kernel.status(m.device).first?.snapshot } catch { throw .kernel(error) }
        guard let status, case let .valid(_, total, _) = status else {
            let s = (try? self.status(set.name.value).first?.summary) ?? "set \(set.name) is not active"
            throw .refused(PlanError(m.device.value, "does not run its snapshot (\(s))"))
        }
        return (total, status)
    }

    /// Grows the file, tells the loop, records the new size. The caller holds the lock; the
    /// monitor does not (`locked: false`): it tries the lock and, when another command holds it,
    /// leaves the record (the kernel's size is what counts; the next grow records it).
    func grow(_ set: SnapshotSet, _ m: SnapshotSet.Member, to size: Sectors, locked: Bool = true) throws(DMSnapError) -> Sectors {
        let seen: Sectors
        do {
            try kernel.growFile(m.cow, to: size.bytes)
            seen = try kernel.refreshLoopCapacity(m.cowNumber, file: m.cow)
        } catch { throw .kernel(error) }
        var got = locked
        if !locked, let lock { got = (try? lock.acquire(waiting: 0)) == true }
        guard got else { return seen }
        defer { if !locked { lock?.release() } }
        // read again under the lock: a set merged or discarded meanwhile is not written back
        if var current = try? store.load(set.name), current.phase == .active,
           let i = current.members.firstIndex(where: { $0.device == m.device }) {
            current.members[i].cowSize = seen
            do { try store.save(current) } catch { throw .store(error) }
        }
        return seen
    }
}

/// How `dmsnap monitor` grows COW files.
public struct MonitorPolicy: Hashable, Sendable {
    /// Use (percent of the COW) at which a COW file is grown.
    public var threshold: Double = 70
    /// How much it grows each time: a size, or a share of the COW's size then. At least what
    /// one second of writing at the fastest rate seen needs.
    public var grow: COWSizePolicy = .percent(20)
    /// No COW file is grown past this (nil: as far as the snapshot can use).
    public var maximum: UInt64?
    /// Space left free on the COW's filesystem (nil: 5% of it).
    public var keepFree: UInt64?
    public init() {}
}

/// Something the monitor did or saw.
public enum MonitorEvent: Sendable {
    case grew(set: SetName, device: DeviceName, from: Sectors, to: Sectors, usedPercent: Double)
    /// Over the threshold and it cannot grow: once per crossing.
    case cannotGrow(set: SetName, device: DeviceName, reason: String, usedPercent: Double, secondsToFull: Double?)
    /// The kernel dropped the snapshot (it overflowed or failed).
    case invalid(set: SetName, device: DeviceName)
}

/// Watches the COWs of the named sets (every set when none is named, sets taken later too) and
/// grows COW files past the threshold. It polls adaptively, at the shorter of two intervals,
/// between 2 ms and 1 s:
/// - safety: half the time a writer at the worst rate (the fastest seen, at least an assumed
///   1 GiB/s, what one fast disk writes) would take to fill the COW — it is never full unseen;
/// - reaction: half the time the COW takes to reach the threshold at the rate writers showed
///   (the fastest seen lately, at least 16 MiB/s), but no less than 50 ms — a crossing is seen
///   soon after it happens without polling hard for a writer that may never come.
/// So a COW filling fast, or a small one, is looked at often, and a large idle one about once a
/// second.
public final class COWMonitor {
    public let manager: SnapshotManager
    public var policy: MonitorPolicy
    public let names: Set<SetName>
    public var events: ((MonitorEvent) -> Void)?
    /// The largest use (percent) seen per `SET/DEVICE`.
    public private(set) var peakUse: [String: Double] = [:]

    public static let minInterval: Duration = .milliseconds(2)
    public static let maxInterval: Duration = .seconds(1)
    /// Sectors per second a writer might reach at worst (1 GiB/s).
    static let worstRate = 2_097_152.0
    /// Sectors per second assumed for the next crossing when nothing faster was seen (16 MiB/s).
    static let typicalRate = 32_768.0
    /// Half-life of the fastest rate seen, in seconds.
    static let peakHalfLife = 30.0

    struct Track {
        var allocated: Sectors
        var total: Sectors = 0
        var at: ContinuousClock.Instant
        var rate: Double = 0
        var peak: Double = 0
        var warned = false
        var invalid = false
        var grows = true
    }
    var tracks: [String: Track] = [:]
    var sets: [SnapshotSet] = []
    var scanned: ContinuousClock.Instant?
    var scannedStamp: timespec?
    var reported: ContinuousClock.Instant?

    /// Refuses set names that are not recorded.
    public init(manager: SnapshotManager, sets names: [String], policy: MonitorPolicy) throws(DMSnapError) {
        self.manager = manager
        self.policy = policy
        var checked: Set<SetName> = []
        for n in names { checked.insert(try manager.existing(n).name) }
        self.names = checked
        try manager.requireRoot()
    }

    /// One look at every watched COW (growing what needs it); returns when to look again.
    public func poll() -> Duration {
        let now = ContinuousClock.now
        // the set descriptions again when the state directory changed (a take, a merge), else every 5 s
        var st = stat()
        let stamp: timespec? = stat(manager.store.location, &st) == 0 ? st.st_mtim : nil
        if scanned.map({ now - $0 > .seconds(5) }) ?? true || stamp == nil
            || stamp?.tv_sec != scannedStamp?.tv_sec || stamp?.tv_nsec != scannedStamp?.tv_nsec {
            sets = ((try? manager.store.list()) ?? []).filter { names.isEmpty || names.contains($0.name) }
            scanned = now
            scannedStamp = stamp
        }
        var next = Self.maxInterval
        var seen: Set<String> = []
        for set in sets where set.phase == .active {
            for m in set.members {
                let key = MonitorReport.key(set.name, m.device)
                seen.insert(key)
                guard let status = try? manager.kernel.status(m.device).first, status.type == "snapshot", let snap = status.snapshot else { continue }
                guard case let .valid(allocated, total, _) = snap else {
                    if tracks[key]?.invalid != true, case .invalid = snap { events?(.invalid(set: set.name, device: m.device)) }
                    tracks[key, default: Track(allocated: 0, at: now)].invalid = true
                    continue
                }
                var t = tracks[key] ?? Track(allocated: allocated, at: now)
                let dt = (now - t.at).seconds
                if dt > 0.001 {
                    let rate = Double(allocated.value) > Double(t.allocated.value) ? Double(allocated.value - t.allocated.value) / dt : 0
                    t.rate = t.rate == 0 ? rate : 0.5 * t.rate + 0.5 * rate
                    t.peak = max(rate, t.peak * pow(0.5, dt / Self.peakHalfLife))
                    t.allocated = allocated
                    t.at = now
                }
                let use = snap.usedPercent ?? 0
                peakUse[key] = max(peakUse[key] ?? 0, use)
                var totalNow = total
                if use >= policy.threshold {
                    if m.cowFile != nil {
                        if let grown = growIfPossible(set, m, total: total, track: &t, use: use) { totalNow = grown }
                    } else {
                        warnOnce(set, m, &t, reason: "a block device: grow it with its own tool (e.g. lvextend)", total: total, use: use)
                    }
                } else {
                    t.warned = false
                }
                t.total = totalNow
                tracks[key] = t
                let headroom = max(0, policy.threshold / 100 * Double(totalNow.value) - Double(allocated.value))
                let safety = max(0, Double(totalNow.value) - Double(allocated.value)) / max(t.peak, Self.worstRate) / 2
                let reaction = max(0.05, headroom / max(t.peak, Self.typicalRate) / 2)
                next = min(next, max(Self.minInterval, .microseconds(Int64(min(safety, reaction) * 1_000_000))))
            }
        }
        tracks = tracks.filter { seen.contains($0.key) }
        if reported.map({ now - $0 >= .seconds(1) }) ?? true {
            report()
            reported = now
        }
        return next
    }

    /// Grows `m`'s COW file (nil when it cannot: then a warning, once per crossing).
    func growIfPossible(_ set: SnapshotSet, _ m: SnapshotSet.Member, total: Sectors, track t: inout Track, use: Double) -> Sectors? {
        let useful = ExceptionStore.usefulMaximum(origin: m.size, chunk: set.chunk)
        var want = max(policy.grow.bytes(origin: total), UInt64(t.peak * 512))
        var limit = useful.bytes
        if let maximum = policy.maximum { limit = min(limit, maximum) }
        var reason: String?
        if let space = try? manager.kernel.space(of: m.cow) {
            let keep = policy.keepFree ?? UInt64(Double(space.total) * Planner.keepFreeFraction)
            let room = space.free > keep ? space.free - keep : 0
            if want > room { want = room; if room < set.chunk.bytes { reason = "its filesystem has \(ByteCount.text(space.free)) free, keeping \(ByteCount.text(keep))" } }
        }
        if total.bytes >= limit {
            reason = total.bytes >= useful.bytes ? "it is as big as a snapshot of \(m.device) can use" : "it reached --max \(ByteCount.text(limit))"
        }
        let target = Sectors(min(limit, total.bytes + want) / set.chunk.bytes * set.chunk.value)
        if reason == nil, target > total {
            do {
                let grown = try manager.grow(set, m, to: target, locked: false)
                t.grows = true
                events?(.grew(set: set.name, device: m.device, from: total, to: grown, usedPercent: use))
                return grown
            } catch {
                reason = "\(error)"
            }
        }
        warnOnce(set, m, &t, reason: reason ?? "cannot grow", total: total, use: use)
        return nil
    }

    /// The warning for a COW over the threshold that cannot grow: once per crossing.
    func warnOnce(_ set: SnapshotSet, _ m: SnapshotSet.Member, _ t: inout Track, reason: String, total: Sectors, use: Double) {
        t.grows = false
        guard !t.warned else { return }
        t.warned = true
        let left = Double(total.value) - Double(t.allocated.value)
        events?(.cannotGrow(set: set.name, device: m.device, reason: reason, usedPercent: use,
                            secondsToFull: t.rate > 0 ? left / t.rate : nil))
    }

    /// Writes what each COW looked like at the last poll, for `status`.
    func report() {
        var watched: [String: MonitorReport.Watched] = [:]
        for set in sets where set.phase == .active {
            for m in set.members {
                let key = MonitorReport.key(set.name, m.device)
                guard let t = tracks[key], !t.invalid, t.total.value > 0 else { continue }
                let left = Double(t.total.value) - Double(t.allocated.value)
                watched[key] = MonitorReport.Watched(fillRate: t.rate * 512, secondsToFull: t.rate > 0 ? left / t.rate : nil,
                                                     grows: m.cowFile != nil && t.grows)
            }
        }
        try? manager.store.saveMonitorReport(MonitorReport(pid: getpid(), updated: Date(), watched: watched))
    }

    /// Polls until `stop` says so (asked at least every 100 ms), then removes its report.
    public func run(until stop: () -> Bool) {
        defer { try? manager.store.saveMonitorReport(nil) }
        while !stop() {
            var wait = poll()
            while wait > .zero, !stop() {
                let step = min(wait, .milliseconds(100))
                sleep(for: step)
                wait -= step
            }
        }
    }
}
