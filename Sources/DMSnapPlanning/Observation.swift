import DMSnapModel

/// One member of a set as the kernel shows it now.
public struct Observation: Hashable, Sendable {
    /// Which of dmsnap's tables the live device runs.
    public enum Runs: Hashable, Sendable {
        /// The snapshot table of take.
        case snapshot
        /// The `snapshot-merge` table.
        case merge
        /// The interim `error` table that replaced a failed merge target (see
        /// `Planner.startMerge`): the merge resumes once the COW reads back.
        case interim
        /// The table it had before take.
        case original
        /// After a reboot: the base is gone and the live device is too, or runs its original table
        /// again; the COW waits for `activate` (state `inactive`) or was invalidated (`invalid`).
        case gone
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
    /// True when `set` was taken (or last activated) in another boot of the kernel. Records from
    /// before dmsnap kept the boot id count as another boot.
    static func afterReboot(_ set: SnapshotSet, _ view: KernelView) -> Bool {
        guard let now = view.bootID else { return false }
        return set.bootID != now
    }

    /// A member whose devices went with the reboot: its COW header says whether the snapshot
    /// can come back.
    static func afterRebootObservation(_ m: SnapshotSet.Member, _ view: KernelView) -> Observation {
        switch view.cowHeaders[m.cow] {
        case let .success(header)?:
            switch COWHeader(header) {
            case .valid:
                return Observation(state: .inactive, runs: .gone, status: nil,
                                   reason: "its devices are gone after a reboot; the COW holds every change")
            case .invalidated:
                return Observation(state: .invalid, runs: .gone, status: .invalid,
                                   reason: "the kernel invalidated the snapshot before the reboot (COW overflowed or failed)")
            case .empty, .foreign:
                return Observation(state: .invalid, runs: .gone, status: nil,
                                   reason: "after a reboot, \(m.cow) has no snapshot header (wiped, or not this set's COW)")
            }
        case let .failure(e)? where m.cowFile != nil && e.errno == .noSuchFileOrDirectory:
            // (a --volatile set's file on tmpfs went with the reboot)
            return Observation(state: .invalid, runs: .gone, status: nil,
                               reason: "after a reboot, the COW file \(m.cow) is gone\(m.cowFile?.volatile == true ? " (it was in memory)" : ""): the changes since take are lost, the devices hold the frozen image")
        case let .failure(e)?:
            return Observation(state: .inactive, runs: .gone, status: nil,
                               reason: "its devices are gone after a reboot; the COW \(m.cow) cannot be read (\(e))")
        case nil:
            return Observation(state: .inactive, runs: .gone, status: nil, reason: "its devices are gone after a reboot")
        }
    }

    /// What member `m` of `set` is now.
    public static func observe(_ m: SnapshotSet.Member, in set: SnapshotSet, view: KernelView) -> Observation {
        func seen(_ state: SetState, _ runs: Observation.Runs, _ reason: String) -> Observation {
            Observation(state: state, runs: runs, status: nil, reason: reason)
        }
        // Something dmsnap did not do happened to a set it had settled (active or merging): lost.
        // In an interrupted phase the same sight is a step half-done: recover settles it.
        let settled = set.phase == .active || set.phase == .merging
        let live = view.devices[m.device]
        let base = view.devices[m.base]
        if base == nil, afterReboot(set, view), live == nil || live?.table == m.originalTable {
            return afterRebootObservation(m, view)
        }
        guard let live else {
            return settled ? seen(.lost, .missing, "\(m.device) was removed; the COW keeps the changes made since take")
                : seen(.incomplete, .missing, "\(m.device) does not exist")
        }
        guard let base else {
            if set.phase == .active {
                return live.table == m.originalTable
                    ? seen(.lost, .original, "\(m.device) runs its original table again: another tool removed the snapshot")
                    : seen(.lost, .missing, "base device \(m.base) does not exist")
            }
            return seen(.incomplete, .missing, "base device \(m.base) does not exist")
        }
        guard let table = live.table else {
            return seen(settled ? .lost : .incomplete, .foreign, "\(m.device) has no active table")
        }
        do {
            let status = live.status.first?.snapshot
            let byNumber = DeviceRef.number(base.info.number)
            var runs: Observation.Runs?
            if table == m.snapshotTable(base: byNumber, chunk: set.chunk, merge: false) {
                runs = .snapshot
            } else if table == m.snapshotTable(base: byNumber, chunk: set.chunk, merge: true) {
                runs = .merge
            }
            if let runs {
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
        if set.phase == .merging, table == Planner.interimTable(m) {
            return seen(.mergeFailed, .interim,
                        "the failed merge target was replaced by an interim error table; the merge resumes once the COW reads back")
        }
        if table == m.originalTable {
            // A merge whose finish restored this device already is half-done, not lost.
            if set.phase == .active {
                return seen(.lost, .original, "\(m.device) runs its original table again: another tool removed the snapshot")
            }
            return seen(.incomplete, .original, "\(m.device) runs its original table")
        }
        return seen(settled ? .lost : .incomplete, .foreign, "\(m.device) runs a table dmsnap did not load: \(table.oneLine)")
    }
}
