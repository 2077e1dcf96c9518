import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// Why a lifecycle command did not succeed.
public enum DMSnapError: Error, CustomStringConvertible {
    /// Bad input or state; nothing was changed.
    case refused(PlanError)
    /// A kernel step failed; see `ExecutionError.rolledBack` / `.rollbackIncomplete`.
    case failed(ExecutionError)
    /// Reading the kernel or the state failed before any change.
    case inspect(String)
    /// The kernel reported a failed merge.
    case mergeFailed(String)

    public var description: String {
        switch self {
        case let .refused(e): e.description
        case let .failed(e): e.description
        case let .inspect(s): s
        case let .mergeFailed(s): s
        }
    }
}

/// The library's front door: take, status, merge and discard of snapshot sets.
public final class SnapshotManager {
    public let dm: any DeviceMapperControl
    public let store: any SetStore
    public let executor: Executor
    /// Time between status polls while waiting for a merge (short: the wait is quantised by it).
    public var pollInterval: Duration = .milliseconds(10)
    /// Serialises changing commands between processes; nil for none (tests on the fake).
    public var lock: CommandLock?
    /// How long a changing command waits for another dmsnap to finish.
    public var lockWait: Double = 5

    public init(dm: any DeviceMapperControl, store: any SetStore) {
        self.dm = dm
        self.store = store
        executor = Executor(dm: dm, store: store)
    }

    /// The real kernel and the state directory.
    public convenience init() {
        self.init(dm: LibDeviceMapper(), store: FileSetStore())
        lock = CommandLock()
    }

    func view(paths: [String] = [], probePaths: [String] = [], scope: KernelView.Scope) throws(DMSnapError) -> KernelView {
        guard dm.isPrivileged else { throw .refused(PlanError("", "must be run as root")) }
        do { return try KernelView.gather(dm, store: store, paths: paths, probePaths: probePaths, scope: scope) } catch let error as StoreError {
            // An unsafe or unreadable state directory: refuse before touching the kernel.
            throw .refused(PlanError(error.path, error.what))
        } catch {
            throw .inspect("\(error)")
        }
    }

    func existing(_ name: String) throws(DMSnapError) -> SnapshotSet {
        let setName: SetName
        do { setName = try SetName(name) } catch { throw .refused(PlanError("", error.description)) }
        guard dm.isPrivileged else { throw .refused(PlanError("", "must be run as root")) }
        let set: SnapshotSet?
        do { set = try store.load(setName) } catch { throw .refused(PlanError(error.path, error.what)) }
        guard let set else { throw .refused(PlanError(setName.value, "no such snapshot set")) }
        return set
    }

    /// Runs `body` holding the command lock (when there is one).
    func locked<T>(_ body: () throws(DMSnapError) -> T) throws(DMSnapError) -> T {
        guard let lock else { return try body() }
        let acquired: Bool
        do { acquired = try lock.acquire(waiting: lockWait) } catch { throw .inspect(error.description) }
        guard acquired else {
            throw .refused(PlanError("", "another dmsnap command is running (lock \(lock.path)); waited \(lockWait) s (see --wait-lock)"))
        }
        defer { lock.release() }
        return try body()
    }

    func execute(_ plan: Plan) throws(DMSnapError) {
        do { try executor.run(plan) } catch { throw .failed(error) }
    }

    // MARK: take

    /// Plans (refusing bad input before any change), then runs the take plan.
    @discardableResult
    public func take(_ request: TakeRequest) throws(DMSnapError) -> SnapshotSet {
        guard dm.isPrivileged else { throw .refused(PlanError("", "must be run as root")) }
        return try locked { () throws(DMSnapError) -> SnapshotSet in try takeLocked(request) }
    }

    func takeLocked(_ request: TakeRequest) throws(DMSnapError) -> SnapshotSet {
        guard dm.isPrivileged else { throw .refused(PlanError("", "must be run as root")) }
        let lookups = request.lookups
        let view = try view(paths: lookups.paths, probePaths: lookups.probePaths, scope: lookups.scope)
        let (set, plan): (SnapshotSet, Plan)
        do { (set, plan) = try Planner.take(request, view: view) } catch { throw .refused(error) }
        try execute(plan)
        recordFingerprints(set.with(phase: .active))
        return set.with(phase: .active)
    }

    // MARK: status

    public func status(_ name: String? = nil) throws(DMSnapError) -> [SetStatus] {
        if let name {
            let set = try existing(name)
            return [SetStatus.of(set, view: try view(scope: .of([set])))]
        }
        let view = try view(scope: .recordedSets)
        return view.sets.map { SetStatus.of($0, view: view) }
    }

    // MARK: merge

    /// Starts the merge of every member (no-op for members already merging). Returns the set.
    @discardableResult
    public func startMerge(_ name: String) throws(DMSnapError) -> SnapshotSet {
        _ = try existing(name)
        return try locked { () throws(DMSnapError) -> SnapshotSet in try startMergeLocked(name) }
    }

    func startMergeLocked(_ name: String) throws(DMSnapError) -> SnapshotSet {
        let set = try existing(name)
        let plan: Plan?
        let v = try view(scope: .of([set]))
        do { plan = try Planner.startMerge(set, view: v) } catch { throw .refused(error) }
        if let plan { try execute(plan) }
        return set.with(phase: .merging)
    }

    /// Sectors still to copy back, over all members.
    public func mergeProgress(_ set: SnapshotSet, initial: inout [DeviceName: UInt64]) throws(DMSnapError) -> MergeProgress {
        var remaining: UInt64 = 0
        var total: UInt64 = 0
        for m in set.members {
            let status: [TargetStatus]
            do { status = try dm.status(m.device) } catch { throw .inspect(error.description) }
            guard let line = status.first, line.type == "snapshot-merge" else {
                throw .inspect("\(m.device): not merging (target \(status.first?.type ?? "none"))")
            }
            let parsed: SnapshotStatus
            do { parsed = try SnapshotStatus(parsing: line.params) } catch { throw .inspect("\(m.device): \(error)") }
            switch parsed {
            case let .valid(a, _, meta):
                let left = a.value - meta.value
                let start = max(initial[m.device] ?? left, left)
                initial[m.device] = start
                remaining += left
                total += start
            case .mergeFailed:
                throw .mergeFailed("\(m.device): merge failed (I/O error); the set is left merging with the failed target in place; see 'dmsnap status \(set.name)'")
            case .invalid, .overflow:
                throw .mergeFailed("\(m.device): snapshot became invalid during the merge")
            }
        }
        return MergeProgress(remaining: remaining, total: total)
    }

    /// Merges the set into its origins while they stay online: starts (or joins) the merge, waits,
    /// then restores the original tables and forgets the set. `progress` is called after each poll.
    public func merge(_ name: String, wait: Bool = true, progress: (MergeProgress) -> Void = { _ in }) throws(DMSnapError) {
        let set = try startMerge(name)
        guard wait else { return }
        var initial: [DeviceName: UInt64] = [:]
        while true {
            let p = try mergeProgress(set, initial: &initial)
            progress(p)
            if p.done { break }
            sleep(for: pollInterval)
        }
        try locked { () throws(DMSnapError) in try finishMergeLocked(name) }
    }

    func finishMergeLocked(_ name: String) throws(DMSnapError) {
        let plan: Plan
        let current = try existing(name)
        let v = try view(scope: .of([current]))
        do { plan = try Planner.finishMerge(current, view: v) } catch { throw .refused(error) }
        try execute(plan)
    }

    // MARK: discard

    public func discard(_ name: String) throws(DMSnapError) {
        _ = try existing(name)
        try locked { () throws(DMSnapError) in try discardLocked(name) }
    }

    func discardLocked(_ name: String) throws(DMSnapError) {
        let set = try existing(name)
        let plan: Plan
        let v = try view(scope: .of([set]))
        do { plan = try Planner.discard(set, view: v) } catch { throw .refused(error) }
        try execute(plan)
    }
}

extension SnapshotManager {
    /// Brings sets a killed dmsnap left half-way to a consistent state: resumes suspended
    /// devices, then finishes or undoes the interrupted step, and thaws. Idempotent. Returns one
    /// line per set saying what it did.
    public func recover(_ name: String? = nil) throws(DMSnapError) -> [String] {
        guard dm.isPrivileged else { throw .refused(PlanError("", "must be run as root")) }
        let names: [String]
        if let name {
            names = [try existing(name).name.value]
        } else {
            do { names = try store.list().map(\.name.value) } catch { throw .inspect(error.description) }
        }
        var report: [String] = []
        for n in names {
            let (line, needsMerge) = try locked { () throws(DMSnapError) -> (String, Bool) in try recoverLocked(n) }
            if needsMerge { try merge(n) }
            report.append(line)
        }
        return report
    }

    func recoverLocked(_ name: String) throws(DMSnapError) -> (String, Bool) {
        let set = try existing(name)
        let first: Plan
        let v1 = try view(scope: .of([set]))
        do { first = try Planner.resumeStage(set, view: v1) } catch { throw .refused(error) }
        try execute(first)
        let settlement: Planner.Settlement
        let v2 = try view(scope: .of([set]))
        do { settlement = try Planner.settleStage(set, view: v2) } catch { throw .refused(error) }
        try execute(settlement.plan)
        var line = settlement.summary
        let resumed = first.steps.count
        if resumed > 0 { line += " (resumed \(resumed) suspended device\(resumed == 1 ? "" : "s"))" }
        return (line, settlement.needsMerge)
    }
}

extension SnapshotManager {
    /// Records each base's fingerprint (after take, outside the freeze window).
    func recordFingerprints(_ set: SnapshotSet) {
        var updated = set
        for (i, m) in set.members.enumerated() {
            guard let header = try? dm.readHeader(m.base.path, bytes: Fingerprint.bytes) else { return }
            updated.members[i].baseFingerprint = Fingerprint.of(header: header, size: m.size)
        }
        try? store.save(updated)
    }

    /// After a reboot: rebuilds the snapshot stack of `name` on the re-created live devices from
    /// the persistent COWs. Refuses a device whose content changed since take unless `force`.
    public func activate(_ name: String, force: Bool = false) throws(DMSnapError) {
        _ = try existing(name)
        try locked { () throws(DMSnapError) in try activateLocked(name, force: force) }
    }

    func activateLocked(_ name: String, force: Bool) throws(DMSnapError) {
        let set = try existing(name)
        let v = try view(paths: [], probePaths: set.members.map(\.cow), scope: .of([set]))
        var fingerprints: [DeviceName: String] = [:]
        var headers: [String: [UInt8]] = [:]
        for m in set.members {
            // Only read devices that exist and are not suspended (the planner refuses the rest).
            if let live = v.devices[m.device], !live.info.suspended, live.table == m.originalTable {
                do {
                    fingerprints[m.device] = Fingerprint.of(header: try dm.readHeader(m.device.path, bytes: Fingerprint.bytes), size: m.size)
                } catch { throw .inspect(error.description) }
            }
            if case .success? = v.blocks[m.cow] {
                do { headers[m.cow] = try dm.readHeader(m.cow, bytes: 512) } catch { throw .inspect(error.description) }
            }
        }
        let plan: Plan
        do { (_, plan) = try Planner.activate(set, view: v, fingerprints: fingerprints, cowHeaders: headers, force: force) } catch {
            throw .refused(error)
        }
        try execute(plan)
    }
}

/// Sleeps the calling thread (the library's waits are synchronous; no Foundation `Thread` needed).
func sleep(for d: Duration) {
    let (s, atto) = d.components
    var want = timespec(tv_sec: Int(max(0, s)), tv_nsec: Int(max(0, atto) / 1_000_000_000))
    var left = timespec()
    while nanosleep(&want, &left) == -1 && errno == EINTR { want = left }
}
