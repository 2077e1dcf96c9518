import DMSnapModel

/// One member of a set as the kernel shows it now.
public struct Observation: Hashable, Sendable {
    /// Which of dmsnap's tables the live device runs.
    public enum Runs: Hashable, Sendable {
        /// The snapshot table of take.
        case snapshot
        /// The `snapshot-merge` table.
        case merge
        /// The table it had before take.
        case original
        /// The live device or its base does not exist (see `reason`).
        case missing
        /// Some other table (see `reason`).
        case foreign
    }

    public var state: SetState
    public var runs: Runs
    /// The kernel's status of the snapshot target, when one runs.
    public var status: SnapshotStatus?
    /// Why the member is not simply active or merging, for people.
    public var reason: String?
}

extension Planner {
    /// What member `m` of `set` is now.
    public static func observe(_ m: SnapshotSet.Member, in set: SnapshotSet, view: KernelView) -> Observation {
        func seen(_ state: SetState, _ runs: Observation.Runs, _ reason: String) -> Observation {
            Observation(state: state, runs: runs, status: nil, reason: reason)
        }
        guard let live = view.devices[m.device] else { return seen(.incomplete, .missing, "\(m.device) does not exist") }
        guard let base = view.devices[m.base] else {
            return seen(.incomplete, .missing, "base device \(m.base) does not exist")
        }
        guard let table = live.table else { return seen(.incomplete, .foreign, "\(m.device) has no active table") }
        let status = live.status.first?.snapshot
        let byNumber = DeviceRef.number(base.info.number)
        let runs: Observation.Runs
        if table == m.snapshotTable(base: byNumber, chunk: set.chunk, merge: false) {
            runs = .snapshot
        } else if table == m.snapshotTable(base: byNumber, chunk: set.chunk, merge: true) {
            runs = .merge
        } else if table == m.originalTable {
            return seen(.incomplete, .original, "\(m.device) runs its original table")
        } else {
            return seen(.incomplete, .foreign, "\(m.device) runs an unexpected table: \(table.oneLine)")
        }
        switch status {
        case .invalid?, .overflow?:
            return Observation(state: .invalid, runs: runs, status: status,
                               reason: "snapshot invalidated by the kernel (COW overflowed or an I/O error)")
        case .mergeFailed?:
            return Observation(state: .mergeFailed, runs: runs, status: status, reason: "merge stopped by an I/O error")
        case .valid?, nil:
            return Observation(state: runs == .merge ? .merging : .active, runs: runs, status: status, reason: nil)
        }
    }
}
