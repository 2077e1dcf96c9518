import Logging
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Hands a value to another thread that uses it while this one waits (the executor's kernel to a
/// freeze's thread).
struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

extension Action {
    /// A step that can leave something suspended or frozen.
    var opensWindow: Bool {
        switch self {
        case .suspend, .freeze, .freezeCgroup: true
        default: false
        }
    }
}

/// Why one step failed: the kernel call (with its errno) or the state store.
public enum StepFailure: Error, Hashable, Sendable, CustomStringConvertible {
    case kernel(KernelError)
    case store(StoreError)
    /// SIGINT or SIGTERM arrived before the step (the plan had not committed).
    case interrupted(signal: Int32)

    public var description: String {
        switch self {
        case let .kernel(e): e.description
        case let .store(e): e.description
        case let .interrupted(signal): "interrupted by \(signalName(signal))"
        }
    }
}

/// `SIGINT`, `SIGTERM`, or `signal N`.
public func signalName(_ signal: Int32) -> String {
    switch signal {
    case SIGINT: "SIGINT"
    case SIGTERM: "SIGTERM"
    default: "signal \(signal)"
    }
}

/// A plan that failed: which step, why, and whether everything it did was undone.
public struct ExecutionError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Leftover: Hashable, Sendable {
        public var action: Action
        public var error: StepFailure
        /// The rest of the same compensation: re-run after fixing `action` (they ran, but
        /// without `action` they could not do their part).
        public var then: [Action] = []
    }

    public var step: Action
    public var cause: StepFailure
    /// True when the failure came after the commit point: the plan rolled forward instead of back.
    public var committed: Bool
    /// Compensations that failed: each is state left behind, with the command that fixes it.
    public var leftovers: [Leftover]
    /// Where the set descriptions live (for the fix commands).
    public var stateDirectory: String
    /// The command that moves the set on, when the failure left it changed (filled in by the
    /// manager from the set's state after the failure).
    public var next: String?

    public var rolledBack: Bool { leftovers.isEmpty && !committed }
    public var rollbackIncomplete: Bool { !leftovers.isEmpty }

    public var description: String {
        var text = "\(step) failed: \(cause)"
        if !leftovers.isEmpty {
            text += "; rollback incomplete: " + leftovers.map { "\($0.action) failed (\($0.error))" }.joined(separator: "; ")
        } else if committed {
            text += " (after the point of no return; nothing was rolled back)"
        } else {
            text += "; everything was rolled back"
        }
        if let next, !rolledBack { text += "; to move the set on, run '\(next)'" }
        return text
    }

    /// The commands an admin runs to finish what rollback could not.
    public var fixCommands: [String] {
        leftovers.flatMap { [$0.action] + $0.then }.map { $0.manualCommand(stateDirectory: stateDirectory) }
    }
}

/// Runs plans against the kernel with an undo stack. On failure before the commit point it undoes
/// every completed step in reverse; after it, it only undoes what must never be left behind
/// (resumes suspended devices, thaws frozen filesystems). Either way it never stops half-way
/// through compensations: every one is tried, and the ones that fail are reported.
/// Every action is logged at trace level when it starts and when it returns (`done …`).
public final class Executor {
    public let kernel: any KernelControl
    public let store: any SetStore
    public var logger: Logger
    /// How long the freezes of one plan may take together (nil: no limit). A filesystem that is
    /// not frozen by then (a device under it slow or stuck) fails the plan, which is rolled back:
    /// the others are thawed at once, the late one as soon as its freeze returns.
    public var freezeTimeout: Duration?
    /// Asked before every step: a signal that asks the command to stop (SIGINT, SIGTERM). Before
    /// the point of no return the plan is rolled back; after it, the plan finishes.
    public var interruption: (() -> Int32?)?
    private var watchdog: FreezeWatchdog?
    /// Loops the running plan attached to COW files, by file path. Released when the plan ends:
    /// by then a table holds each loop, or none does and it detaches itself.
    private var loops: [String: LoopAttachment] = [:]
    /// The loops the last plan attached (file path → loop), for the set it made.
    public private(set) var attachedLoops: [String: DeviceNumber] = [:]
    /// How long the last plan kept cgroups frozen: from the start of the first freeze to the end
    /// of the last thaw (nil: it froze none).
    public private(set) var cgroupsFrozen: Duration?
    private var cgroupFreezeStart: ContinuousClock.Instant?

    public init(kernel: any KernelControl, store: any SetStore, logger: Logger = Logger(label: "dmsnap")) {
        self.kernel = kernel
        self.store = store
        self.logger = logger
    }

    private struct Pending {
        var action: Action
        var undo: [Action]
    }

    public func run(_ plan: Plan) throws(ExecutionError) {
        // A plan that suspends or freezes runs under a window guardian: if this process dies
        // while anything is suspended or frozen, the guardian resumes and thaws.
        let guardian: (any WindowGuard)?
        do { guardian = try startGuardian(for: plan) } catch {
            // Nothing was done yet: reported against the first step that needed the guardian.
            let step = plan.steps.first(where: \.action.opensWindow)!.action
            throw ExecutionError(step: step, cause: .kernel(error), committed: false, leftovers: [], stateDirectory: store.location)
        }
        defer { guardian?.stop() }
        // (after a failure in the window, its rollback has resumed and thawed by now)
        defer { kernel.holdUdevWaits(false) }
        attachedLoops = [:]
        cgroupsFrozen = nil
        cgroupFreezeStart = nil
        defer {
            attachedLoops = loops.mapValues(\.number)
            for loop in loops.values { kernel.releaseLoop(loop) }
            loops = [:]
        }
        watchdog = startWatchdog(for: plan)
        defer {
            watchdog?.finish()
            watchdog = nil
        }
        let lastFreeze = plan.steps.lastIndex { if case .freeze = $0.action { true } else { false } }
        var pending: [Pending] = []
        var committed = plan.commitIndex < 0
        var windowOpen = false
        func holdsWindow() -> Bool {
            pending.contains { switch $0.action { case .suspend, .freeze, .freezeCgroup: true; default: false } }
        }
        for (index, step) in plan.steps.enumerated() {
            if !committed, let signal = interruption?() {
                let leftovers = rollback(pending, onlySafety: false)
                throw ExecutionError(step: step.action, cause: .interrupted(signal: signal), committed: false,
                                     leftovers: leftovers, stateDirectory: store.location)
            }
            if !windowOpen, step.action.opensWindow {
                guardian?.windowOpens()
                // no udev round trip while filesystems are frozen: waited for once they are not
                kernel.holdUdevWaits(true)
                windowOpen = true
            }
            do {
                try perform(step.action)
            } catch where step.warning != nil && committed {
                logger.warning("\(step.warning!) (\(error))")
                continue
            } catch {
                // Filesystems the freeze watchdog thawed are thawed already.
                let thawed = watchdog?.thawed ?? []
                pending.removeAll { if case let .freeze(mp) = $0.action { thawed.contains(mp) } else { false } }
                let leftovers = rollback(pending, onlySafety: committed)
                throw ExecutionError(step: step.action, cause: error, committed: committed, leftovers: leftovers,
                                     stateDirectory: store.location)
            }
            // A resume ends the need to undo its suspend; a thaw, its freeze.
            switch step.action {
            case let .resume(name): pending.removeAll { if case .suspend(name, _) = $0.action { true } else { false } }
            case let .thaw(mp): pending.removeAll { if case .freeze(mp) = $0.action { true } else { false } }
            case let .thawCgroup(cg): pending.removeAll { if case .freezeCgroup(cg) = $0.action { true } else { false } }
            default: break
            }
            pending.append(Pending(action: step.action, undo: step.undo))
            if index == plan.commitIndex { committed = true }
            if index == lastFreeze { watchdog?.freezesDone() }
            if windowOpen, !holdsWindow() {
                guardian?.windowCloses()
                logger.trace("wait for udev (the window's events)")
                kernel.holdUdevWaits(false)
                logger.trace("done wait for udev")
                windowOpen = false
            }
        }
    }

    /// A watchdog for the plan's freezes, when they are bounded (nil otherwise, or when no
    /// thread can be made: then the freezes run unbounded, as the kernel allows).
    func startWatchdog(for plan: Plan) -> FreezeWatchdog? {
        guard let timeout = freezeTimeout, plan.steps.contains(where: { if case .freeze = $0.action { true } else { false } }) else {
            return nil
        }
        let kernel = UncheckedSendable(kernel)
        let logger = logger
        let dog = FreezeWatchdog(timeout: timeout) { mp in
            do { try kernel.value.thaw(mp) } catch { logger.warning("\(mp): cannot thaw after the freeze timeout (\(error))") }
        }
        guard dog.start() else {
            logger.warning("cannot start the freeze watchdog: the freezes of this take are not bounded")
            return nil
        }
        return dog
    }

    /// FIFREEZE under the plan's freeze deadline.
    func freeze(_ mountPoint: String) throws(KernelError) {
        guard let dog = watchdog, let timeout = freezeTimeout else { return try kernel.freeze(mountPoint) }
        func late() -> KernelError {
            let s = timeout.components
            let shown = s.attoseconds == 0 ? "\(s.seconds) s" : "\(timeout.seconds) s"
            return KernelError(call: "freeze", device: mountPoint, errno: nil,
                               detail: "did not freeze within \(shown) (a device under it is slow or stuck)")
        }
        guard dog.willFreeze() else { throw late() }
        try kernel.freeze(mountPoint)
        guard dog.didFreeze(mountPoint) else {
            // The deadline passed while this freeze ran: the others are thawed already.
            do { try kernel.thaw(mountPoint) } catch {
                logger.warning("\(mountPoint): cannot thaw after a late freeze (\(error)); run 'fsfreeze -u \(mountPoint)'")
            }
            throw late()
        }
    }

    /// A guardian for the devices the plan suspends and the filesystems it freezes (nil when it
    /// does neither).
    func startGuardian(for plan: Plan) throws(KernelError) -> (any WindowGuard)? {
        var devices: [(name: DeviceName, lockfs: Bool)] = []
        var mountPoints: [String] = []
        var cgroups: [String] = []
        for step in plan.steps {
            for action in [step.action] + step.undo {
                switch action {
                case let .suspend(name, lockfs) where !devices.contains(where: { $0.name == name }): devices.append((name, lockfs))
                case let .freeze(mp) where !mountPoints.contains(mp): mountPoints.append(mp)
                case let .freezeCgroup(cg) where !cgroups.contains(cg): cgroups.append(cg)
                default: break
                }
            }
        }
        guard plan.steps.contains(where: \.action.opensWindow) else { return nil }
        return try kernel.startGuardian(devices: devices, mountPoints: mountPoints, cgroups: cgroups)
    }

    /// Undoes in reverse. After the commit point only suspends and freezes are undone.
    private func rollback(_ pending: [Pending], onlySafety: Bool) -> [ExecutionError.Leftover] {
        var leftovers: [ExecutionError.Leftover] = []
        var failedDevices: Set<DeviceName> = []
        for entry in pending.reversed() {
            if onlySafety {
                switch entry.action {
                case .suspend, .freeze, .freezeCgroup: break
                default: continue
                }
            }
            for (i, action) in entry.undo.enumerated() {
                // A device whose restore group failed keeps what that group loaded: a later
                // clear would drop the table the fix commands are about to resume.
                if case let .clearInactive(name) = action, failedDevices.contains(name) { continue }
                do {
                    try perform(action)
                } catch {
                    if let name = action.device { failedDevices.insert(name) }
                    // Keep going: the remaining actions (a resume above all) matter even more
                    // when an earlier one failed; never leave a device suspended.
                    leftovers.append(.init(action: action, error: error, then: Array(entry.undo[(i + 1)...])))
                }
            }
        }
        return leftovers
    }

    /// A busy filesystem dirties pages while it is synced, and its freeze writes those back inside
    /// the window. So a sync that took long is repeated, until one takes less than `quietSync`
    /// (little was left to write), at most 4 times and for 2 s.
    public var quietSync: Duration = .milliseconds(20)

    func syncUntilQuiet(_ mp: String) throws(KernelError) {
        let start = ContinuousClock.now
        for round in 1...4 {
            let t0 = ContinuousClock.now
            try kernel.syncFilesystem(mp)
            let now = ContinuousClock.now
            if now - t0 < quietSync || now - start > .seconds(2) || round == 4 {
                if round > 1 { logger.trace("\(mp): synced \(round) times, the last in \(Int(((now - t0).seconds * 1000).rounded())) ms") }
                return
            }
        }
    }

    /// `systemctl VERB UNIT`, given two minutes (a service's own stop timeout is 90 s by default).
    func systemctl(_ verb: String, _ unit: String) throws(KernelError) {
        let outcome = try kernel.run(["systemctl", verb, unit], environment: [:], timeout: .seconds(120))
        guard outcome.succeeded else {
            throw KernelError(call: "systemctl \(verb)", device: unit, errno: nil, detail: outcome.description)
        }
    }

    /// Snapshot tables name a base made in the same plan by name; the kernel reports it back as
    /// MAJ:MIN, so load it that way (the record then compares equal).
    func resolvingNames(_ table: Table, call: String) throws(KernelError) -> Table {
        try table.mapDevices { ref throws(KernelError) -> DeviceRef in
            if case let .path(file) = ref, let loop = loops[file] { return .number(loop.number) }
            guard case let .mapper(name) = ref else { return ref }
            guard let info = try kernel.info(name) else { throw KernelError(call: call, device: name.path, errno: .noSuchAddressOrDevice) }
            return .number(info.number)
        }
    }

    public func perform(_ action: Action) throws(StepFailure) {
        logger.trace("\(action)")
        defer { logger.trace("done \(action)") }
        do {
            switch action {
            case let .create(name, uuid, table, hidden):
                try kernel.create(name, uuid: uuid, table: try resolvingNames(table, call: "create"), hidden: hidden)
            case let .load(name, table): try kernel.load(name, table: try resolvingNames(table, call: "load"))
            case let .clearInactive(name): try kernel.clearInactive(name)
            case let .suspend(name, lockfs): try kernel.suspend(name, lockfs: lockfs)
            case let .resume(name): try kernel.resume(name)
            case let .remove(name): try kernel.remove(name)
            case let .zeroHeader(path, bytes): try kernel.zeroHeader(path, bytes: bytes)
            case let .releaseCOW(path, bytes):
                try kernel.wipeSignatures(path)
                try kernel.zeroHeader(path, bytes: bytes)
            case let .syncFilesystem(mp): try syncUntilQuiet(mp)
            case let .freeze(mp): try freeze(mp)
            case let .thaw(mp): try kernel.thaw(mp)
            case let .thawIfFrozen(mp):
                do { try kernel.thaw(mp) } catch where error.errno == .invalidArgument {}
            case let .freezeCgroup(cg):
                if cgroupFreezeStart == nil { cgroupFreezeStart = .now }
                try kernel.freezeCgroup(cg, timeout: freezeTimeout)
            case let .thawCgroup(cg):
                try kernel.thawCgroup(cg)
                if let start = cgroupFreezeStart { cgroupsFrozen = .now - start }
            case let .createView(name, uuid, origin, size, scratch):
                try kernel.createView(name, uuid: uuid, origin: origin, size: size, scratch: scratch)
            case let .createFile(path, bytes): try kernel.createFile(path, bytes: bytes)
            case let .deleteFile(path): try kernel.deleteFile(path)
            case let .attachLoop(path, directIO):
                let loop = try kernel.attachLoop(path, directIO: directIO)
                if let old = loops.updateValue(loop, forKey: path) { kernel.releaseLoop(old) }
                logger.trace("\(path) runs on \(loop.path)\(directIO ? (loop.directIO ? " with direct I/O" : " (direct I/O not possible there)") : "")")
            case let .detachLoop(path):
                if let loop = loops.removeValue(forKey: path) { kernel.releaseLoop(loop) }
            case let .makeDirectory(path): try kernel.makeDirectory(path)
            case let .removeDirectory(path): try kernel.removeDirectory(path)
            case let .mount(device, mountPoint, type, options): try kernel.mountFilesystem(device, at: mountPoint, type: type, options: options)
            case let .unmount(mountPoint): try kernel.unmountFilesystem(mountPoint)
            case let .restoreMount(entry, device, from): try kernel.restoreMount(entry, device: device, bindFrom: from)
            case let .stopUnit(unit): try systemctl("stop", unit)
            case let .startUnit(unit): try systemctl("start", unit)
            case .save, .deleteState, .saveVolume, .deleteVolume: break
            }
        } catch {
            throw .kernel(error)
        }
        do {
            switch action {
            case let .save(set): try store.save(set.with(loops: loops.mapValues(\.number)))
            case let .deleteState(name): try store.delete(name)
            case let .saveVolume(volume): try store.saveVolume(volume)
            case let .deleteVolume(name): try store.deleteVolume(name)
            default: break
            }
        } catch {
            throw .store(error)
        }
    }
}
