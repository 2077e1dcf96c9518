#if canImport(Glibc)
import Glibc
#endif

/// A plan that failed: which step, why, and whether everything it did was undone.
public struct ExecutionError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Leftover: Hashable, Sendable {
        public var action: Action
        public var error: String
        /// The rest of the same compensation: re-run after fixing `action` (they ran, but
        /// without `action` they could not do their part).
        public var then: [Action] = []
    }

    public var step: Action
    public var cause: String
    /// True when the failure came after the commit point: the plan rolled forward instead of back.
    public var committed: Bool
    /// Compensations that failed: each is state left behind, with the command that fixes it.
    public var leftovers: [Leftover]

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
        return text
    }

    /// The commands an admin runs to finish what rollback could not.
    public var fixCommands: [String] { leftovers.flatMap { [$0.action] + $0.then }.map(\.manualCommand) }
}

/// Runs plans against the kernel with an undo stack. On failure before the commit point it undoes
/// every completed step in reverse; after it, it only undoes what must never be left behind
/// (resumes suspended devices, thaws frozen filesystems). Either way it never stops half-way
/// through compensations: every one is tried, and the ones that fail are reported.
public final class Executor {
    public let dm: any DeviceMapperControl
    public let store: any SetStore
    /// Called before each action, e.g. for tracing or timing. Never throws.
    public var observer: ((Action) -> Void)?
    /// Called when an action has returned (successful or not).
    public var finished: ((Action) -> Void)?

    public init(dm: any DeviceMapperControl, store: any SetStore) {
        self.dm = dm
        self.store = store
    }

    private struct Pending {
        var action: Action
        var undo: [Action]
    }

    public func run(_ plan: Plan) throws(ExecutionError) {
        var pending: [Pending] = []
        var committed = false
        for (index, step) in plan.steps.enumerated() {
            do {
                try perform(step.action)
            } catch {
                let leftovers = rollback(pending, onlySafety: committed)
                throw ExecutionError(step: step.action, cause: error.description, committed: committed, leftovers: leftovers)
            }
            // A resume ends the need to undo its suspend; a thaw, its freeze.
            switch step.action {
            case let .resume(name): pending.removeAll { if case .suspend(name, _) = $0.action { true } else { false } }
            case let .thaw(mp): pending.removeAll { if case .freeze(mp) = $0.action { true } else { false } }
            default: break
            }
            pending.append(Pending(action: step.action, undo: step.undo))
            if index == plan.commitIndex { committed = true }
        }
    }

    /// Undoes in reverse. After the commit point only suspends and freezes are undone.
    private func rollback(_ pending: [Pending], onlySafety: Bool) -> [ExecutionError.Leftover] {
        var leftovers: [ExecutionError.Leftover] = []
        var failedDevices: Set<DeviceName> = []
        for entry in pending.reversed() {
            if onlySafety {
                switch entry.action {
                case .suspend, .freeze: break
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
                    leftovers.append(.init(action: action, error: error.description, then: Array(entry.undo[(i + 1)...])))
                }
            }
        }
        return leftovers
    }

    /// Snapshot tables name a base made in the same plan by `/dev/mapper/NAME`; the kernel
    /// reports it back as MAJ:MIN, so load it that way (the record then compares equal).
    func resolvingDevicePaths(_ table: Table) throws(DeviceMapperError) -> Table {
        var out = table
        for (i, t) in table.targets.enumerated() where t.type.hasPrefix("snapshot") {
            var fields = t.params.split(separator: " ").map(String.init)
            for (j, f) in fields.enumerated() where f.hasPrefix("/dev/mapper/") {
                let name: DeviceName
                do { name = try DeviceName(String(f.dropFirst("/dev/mapper/".count))) } catch {
                    throw DeviceMapperError(call: "load", device: f, errno: EINVAL, detail: error.description)
                }
                guard let info = try dm.info(name) else { throw DeviceMapperError(call: "load", device: f, errno: ENXIO) }
                fields[j] = info.number.description
            }
            out.targets[i].params = fields.joined(separator: " ")
        }
        return out
    }

    public func perform(_ action: Action) throws(ExecutorFailure) {
        observer?(action)
        defer { finished?(action) }
        do {
            switch action {
            case let .create(name, uuid, table, hidden): try dm.create(name, uuid: uuid, table: table, hidden: hidden)
            case let .load(name, table): try dm.load(name, table: try resolvingDevicePaths(table))
            case let .clearInactive(name): try dm.clearInactive(name)
            case let .suspend(name, lockfs): try dm.suspend(name, lockfs: lockfs)
            case let .resume(name): try dm.resume(name)
            case let .remove(name): try dm.remove(name)
            case let .zeroHeader(path, bytes): try dm.zeroHeader(path, bytes: bytes)
            case let .syncFilesystem(mp): try dm.syncFilesystem(mp)
            case let .freeze(mp): try dm.freeze(mp)
            case let .thaw(mp): try dm.thaw(mp)
            case let .thawIfFrozen(mp):
                do { try dm.thaw(mp) } catch where error.errno == EINVAL {}
            case .save, .deleteState: break
            }
        } catch {
            throw .kernel(error)
        }
        do {
            switch action {
            case let .save(set): try store.save(set)
            case let .deleteState(name): try store.delete(name)
            default: break
            }
        } catch {
            throw .store(error)
        }
    }
}

public enum ExecutorFailure: Error, CustomStringConvertible {
    case kernel(DeviceMapperError)
    case store(StoreError)
    public var description: String {
        switch self {
        case let .kernel(e): e.description
        case let .store(e): e.description
        }
    }
}
