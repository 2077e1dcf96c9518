import FoundationEssentials
import Logging
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The library's front door: take, status, merge, discard, recover and activate snapshot sets.
/// Every command reads the kernel view, asks the planner for a plan (a refusal changes nothing),
/// and runs it with the executor, holding the command lock when it changes anything.
public final class SnapshotManager {
    public let kernel: any KernelControl
    public let store: any SetStore
    public let executor: Executor
    /// Trace lines (every kernel step), warnings (e.g. a fingerprint that could not be recorded).
    public var logger: Logger {
        didSet { executor.logger = logger }
    }
    /// One line per state change of a set, for the system log (the CLI sends it to syslog): the
    /// set, what happened and the outcome, as metadata `set`, `action` and `outcome` too. Refusals
    /// are not logged: nothing changed.
    public var journal = Logger(label: "dmsnap.journal")
    /// Where hook drop-ins are looked for.
    public var hooksDirectory = SnapshotManager.defaultHooksDirectory
    /// The post-thaw hooks of the last take that failed (the set was taken).
    public internal(set) var hookFailures: [String] = []
    /// Time between status polls while waiting for a merge (short: the wait is quantised by it).
    public var pollInterval: Duration = .milliseconds(10)
    /// Serialises changing commands between processes; nil for none (tests on the fake).
    public var lock: CommandLock?
    /// How long a changing command waits for another dmsnap to finish.
    public var lockWait: Double = 5
    /// Asked between steps and between merge polls: a signal asking the command to stop. A plan
    /// rolls back before its point of no return and finishes after it; a waiting merge stops
    /// waiting (the kernel's merge goes on).
    public var interruption: (() -> Int32?)? {
        didSet { executor.interruption = interruption }
    }

    /// Forgets the signal `interruption` reports (`run`, once its command got it).
    public var clearInterruption: (() -> Void)?

    public init(kernel: any KernelControl, store: any SetStore, logger: Logger = Logger(label: "dmsnap")) {
        self.kernel = kernel
        self.store = store
        self.logger = logger
        executor = Executor(kernel: kernel, store: store, logger: logger)
    }

    /// The real kernel, the state directory and the command lock.
    public convenience init(logger: Logger = Logger(label: "dmsnap")) {
        self.init(kernel: LinuxKernel(), store: FileSetStore(), logger: logger)
        lock = CommandLock()
    }

    func requireRoot() throws(DMSnapError) {
        guard kernel.isPrivileged else { throw .refused(PlanError("", "must be run as root")) }
    }

    func view(paths: [String] = [], probePaths: [String] = [], scope: KernelView.Scope, files: [String] = []) throws(DMSnapError) -> KernelView {
        try requireRoot()
        return try KernelView.read(kernel, store: store, paths: paths, probePaths: probePaths, scope: scope, files: files)
    }

    func existing(_ name: String) throws(DMSnapError) -> SnapshotSet {
        let setName: SetName
        do { setName = try SetName(name) } catch { throw .refused(PlanError("", error.description)) }
        try requireRoot()
        let set: SnapshotSet?
        do { set = try store.load(setName) } catch { throw .from(error) }
        guard let set else { throw .refused(PlanError(setName.value, "no such snapshot set")) }
        return set
    }

    /// Runs `body` holding the command lock (when there is one).
    func locked<T>(_ body: () throws(DMSnapError) -> T) throws(DMSnapError) -> T {
        guard let lock else { return try body() }
        let acquired: Bool
        do { acquired = try lock.acquire(waiting: lockWait) } catch { throw .store(error) }
        guard acquired else {
            throw .refused(PlanError("", "another dmsnap command is running (lock \(lock.path)); waited \(lockWait) s (see --wait-lock)"))
        }
        defer { lock.release() }
        return try body()
    }

    /// Runs `body`, a command that changes set `name`, and writes its outcome to the journal:
    /// `what(result)` when it worked (nil: nothing changed), the error when it failed (a refusal
    /// is not written).
    func journaled<T>(_ name: String, _ action: String, _ what: (T) -> String?,
                      _ body: () throws(DMSnapError) -> T) throws(DMSnapError) -> T {
        do {
            let result = try body()
            if let line = what(result) {
                journal.notice("set \(name): \(line)", metadata: ["set": "\(name)", "action": "\(action)", "outcome": "done"])
            }
            return result
        } catch {
            let outcome: String
            switch error {
            case .refused: throw error
            case let .failed(e) where e.rolledBack: outcome = "rolled back"
            case .interrupted: outcome = "interrupted"
            default: outcome = "failed"
            }
            journal.error("set \(name): \(action) \(outcome == "failed" ? "failed" : "failed, \(outcome)"): \(error)",
                          metadata: ["set": "\(name)", "action": "\(action)", "outcome": "\(outcome)"])
            throw error
        }
    }

    /// A plan from the planner; its refusal becomes the command's.
    func plan<T>(_ body: () throws(PlanError) -> T) throws(DMSnapError) -> T {
        do { return try body() } catch { throw .refused(error) }
    }

    /// Runs a plan for `set`. A failure that leaves the set changed names the command that moves
    /// it on (from the set's state right after the failure).
    func execute(_ plan: Plan, for set: SetName? = nil) throws(DMSnapError) {
        do { try executor.run(plan) } catch {
            var e = error
            if !e.rolledBack, let set, let status = try? self.status(set.value).first { e.next = status.hint }
            throw .failed(e)
        }
    }

    // MARK: take

    /// Plans (refusing bad input before any change), then runs the take plan.
    @discardableResult
    public func take(_ request: TakeRequest) throws(DMSnapError) -> SnapshotSet {
        try requireRoot()
        let taken = { (set: SnapshotSet) in
            "taken: " + set.members.map { "\($0.device)=\($0.cow)" }.joined(separator: ", ")
        }
        return try journaled(request.set, "take", taken) { () throws(DMSnapError) -> SnapshotSet in try locked { () throws(DMSnapError) -> SnapshotSet in
            let lookups = request.lookups
            var view = try view(paths: lookups.paths, probePaths: lookups.probePaths, scope: lookups.scope, files: lookups.files)
            view.readCgroups(kernel, request)
            view.readHooks(kernel, request, directory: hooksDirectory)
            view.readFloors(kernel, request)
            let (set, takePlan) = try plan { () throws(PlanError) in try Planner.take(request, view: view) }
            let hooks = set.hooks ?? []
            hookFailures = []
            let devices = set.members.map(\.device.value)
            // before the first change: a pre-freeze hook that fails aborts the take (its post-thaw
            // partners still run: an "unlock" after a "lock")
            let failed = run(hooks, .preFreeze, set: set.name, devices: devices, timeout: request.hookTimeout)
            if let first = failed.first {
                let after = run(hooks, .postThaw, set: set.name, devices: devices, timeout: request.hookTimeout, result: "aborted")
                after.forEach { logger.warning("\($0)") }
                throw .refused(PlanError(set.name.value, "\(first); nothing was taken"))
            }
            for (pair, m) in zip(request.pairs, set.members) where m.cowFile?.created == true {
                let policy = request.cowSizeText(pair).flatMap { try? COWSizePolicy(parsing: $0) } ?? .default
                let asked = policy.bytes(origin: m.size)
                if asked > m.cowSize.bytes {
                    logger.warning("\(m.cow): \(policy) of \(m.device) would be \(ByteCount.text(asked)); made it \(ByteCount.text(m.cowSize.bytes)), all a snapshot of it can use")
                }
            }
            executor.freezeTimeout = request.freezeTimeout
            defer { executor.freezeTimeout = nil }
            do throws(DMSnapError) { try execute(takePlan, for: set.name) } catch {
                run(hooks, .postThaw, set: set.name, devices: devices, timeout: request.hookTimeout, result: "failed")
                    .forEach { logger.warning("\($0)") }
                throw error
            }
            var taken = set.with(phase: .active).with(loops: executor.attachedLoops)
            if let frozen = executor.cgroupsFrozen {
                taken.cgroupsFrozenMilliseconds = frozen.seconds * 1000
            }
            let recorded = recordFingerprints(taken)
            hookFailures = run(hooks, .postThaw, set: set.name, devices: devices, timeout: request.hookTimeout, result: "taken")
            return recorded
        } }
    }

    // MARK: status

    /// Every set (recorded ones, then those whose description cannot be read or is gone), or one.
    public func status(_ name: String? = nil) throws(DMSnapError) -> [SetStatus] {
        if let name {
            switch try lookup(name) {
            case let .recorded(set): return monitored([SetStatus.of(set, view: try view(scope: .of([set])))])
            case let .stray(_, view): return SetStatus.strays(view).filter { $0.name == name }
            }
        }
        let view = try view(scope: .recordedSets)
        return monitored((view.sets.map { SetStatus.of($0, view: view) } + SetStatus.strays(view)).sorted { $0.name < $1.name })
    }

    /// Adds what a running monitor reports (fill rate, time to full); a report older than 5 s or
    /// from a monitor that is gone is ignored.
    func monitored(_ statuses: [SetStatus]) -> [SetStatus] {
        guard let report = store.monitorReport(), Date().timeIntervalSince(report.updated) < 5, kill(report.pid, 0) == 0 else {
            return statuses
        }
        return statuses.map { s in
            var s = s
            for i in s.devices.indices {
                guard let w = report.watched["\(s.name)/\(s.devices[i].device)"] else { continue }
                s.devices[i].monitored = true
                s.devices[i].fillRateBytesPerSecond = w.fillRate
                s.devices[i].secondsToFull = w.secondsToFull
            }
            return s
        }
    }

    /// A set by name: its description, or (unreadable or deleted) what the kernel shows of it.
    enum Lookup {
        case recorded(SnapshotSet)
        case stray(SetName, KernelView)
    }

    func lookup(_ name: String) throws(DMSnapError) -> Lookup {
        let setName: SetName
        do { setName = try SetName(name) } catch { throw .refused(PlanError("", error.description)) }
        try requireRoot()
        do {
            if let set = try store.load(setName) { return .recorded(set) }
        } catch where error.kind.isCorrupt {
            return .stray(setName, try view(scope: .all))
        } catch {
            throw .from(error)
        }
        let v = try view(scope: .all)
        guard v.strayBases.values.contains(setName) else { throw .refused(PlanError(setName.value, "no such snapshot set")) }
        return .stray(setName, v)
    }
}

/// Sleeps the calling thread (the library's waits are synchronous; no Foundation `Thread` needed).
func sleep(for d: Duration) {
    let (s, atto) = d.components
    var want = timespec(tv_sec: Int(max(0, s)), tv_nsec: Int(max(0, atto) / 1_000_000_000))
    var left = timespec()
    while nanosleep(&want, &left) == -1 && errno == EINTR { want = left }
}
