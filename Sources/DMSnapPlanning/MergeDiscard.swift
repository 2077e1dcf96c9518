import DMSnapModel

/// Plans for sets that exist: merge (start and finish) and discard.
extension Planner {

    static func requireSettled(_ set: SnapshotSet) throws(PlanError) {
        switch set.phase {
        case .taking, .discarding:
            throw PlanError(set.name.value, "set was interrupted while \(set.phase.rawValue); run 'dmsnap recover \(set.name)'")
        case .active, .merging: break
        }
    }

    /// The table `m` runs now (`merge`: while merging), by the base's number as the kernel has it.
    static func currentTable(_ m: SnapshotSet.Member, _ set: SnapshotSet, _ view: KernelView, merge: Bool) -> Table {
        m.snapshotTable(base: .number(view.devices[m.base]?.info.number ?? DeviceNumber(major: 0, minor: 0)),
                        chunk: set.chunk, merge: merge)
    }

    /// Starts merging every member not merging yet. All are suspended before any is resumed, so
    /// every merge starts at the same moment; the plan commits once all are suspended.
    /// Returns nil when every member already merges.
    public static func startMerge(_ set: SnapshotSet, view: KernelView) throws(PlanError) -> Plan? {
        try requireRoot(view)
        try requireSettled(set)
        try refuseLost(set, view)
        try refuseMountedImages(set)
        var toStart: [SnapshotSet.Member] = []
        var toRestart: [(SnapshotSet.Member, fromInterim: Bool)] = []
        for m in set.members {
            let seen = observe(m, in: set, view: view)
            switch seen.runs {
            case .snapshot:
                switch seen.state {
                case .invalid:
                    throw PlanError(m.device.value, "snapshot is invalid (COW overflowed or failed); it cannot be merged: use 'dmsnap discard \(set.name)'")
                case .mergeFailed:
                    try requireRestartable(m, set, view)
                    toRestart.append((m, false))
                default: toStart.append(m)
                }
            case .merge:
                if seen.state == .mergeFailed {
                    try requireRestartable(m, set, view)
                    toRestart.append((m, false))
                }
            case .interim:
                try requireRestartable(m, set, view)
                toRestart.append((m, true))
            case .gone:
                if seen.state == .invalid {
                    throw PlanError(m.device.value, "\(seen.reason ?? "snapshot is invalid"); it cannot be merged: use 'dmsnap discard \(set.name)'")
                }
                throw PlanError(set.name.value, "set is inactive (its devices are gone after a reboot): run 'dmsnap activate \(set.name)' first")
            case .missing, .foreign:
                throw PlanError(set.name.value, "\(seen.reason ?? "unexpected state"); run 'dmsnap recover \(set.name)'")
            case .original:
                throw PlanError(set.name.value, "\(m.device) no longer runs its snapshot; run 'dmsnap recover \(set.name)'")
            }
        }
        if !toRestart.isEmpty {
            guard toStart.isEmpty else {
                throw PlanError(set.name.value, "some devices merge, others have not started: run 'dmsnap recover \(set.name)'")
            }
            return restartMerge(set, toRestart, view: view)
        }
        if toStart.isEmpty { return nil }
        var steps: [Step] = []
        for m in toStart {
            steps.append(Step(.load(m.device, currentTable(m, set, view, merge: true)), undo: [.clearInactive(m.device)]))
        }
        steps.append(Step(.save(set.with(phase: .merging)), undo: [.save(set)]))
        for m in toStart {
            let current = currentTable(m, set, view, merge: false)
            steps.append(Step(.suspend(m.device, lockfs: true), undo: [.load(m.device, current), .resume(m.device)]))
        }
        let commit = steps.count - 1
        for m in toStart { steps.append(Step(.resume(m.device))) }
        return Plan(steps: steps, commitIndex: commit)
    }

    /// The table that replaces a failed merge target so the kernel destroys it (its in-memory
    /// exceptions may be stale after a metadata write error: never hand them over to a new
    /// target, KERNEL.md "Merge failed").
    public static func interimTable(_ m: SnapshotSet.Member) -> Table { Table.single(size: m.size, .error) }

    /// A failed merge resumes only with the device closed (the interim table fails every I/O)
    /// and a COW that reads back.
    static func requireRestartable(_ m: SnapshotSet.Member, _ set: SnapshotSet, _ view: KernelView) throws(PlanError) {
        let mountPoint = view.mountPoints(of: m.number).first
        let open = view.devices[m.device]?.info.openCount ?? 0
        if mountPoint != nil || open > 0 {
            let what = mountPoint.map { "unmount \($0)" } ?? "close \(m.device) (open \(open))"
            throw PlanError(m.device.value, "the merge stopped on an I/O error; the device stays usable with every change. To resume it, make sure the COW works, \(what) (the failed target can only be replaced while the device is closed), then run 'dmsnap merge \(set.name)'")
        }
        switch view.cowHeaders[m.cow] {
        case let .success(header)? where COWHeader(header) == .valid: break
        case let .failure(e)?:
            throw PlanError(m.cow, "COW does not read back (\(e)); fix it, then run 'dmsnap merge \(set.name)' again")
        default:
            throw PlanError(m.cow, "COW has no valid snapshot header; the merge cannot resume")
        }
    }

    /// Resumes failed merges: each device gets the interim table (destroying the failed target),
    /// then a fresh `snapshot-merge` that rebuilds its exceptions from the COW on disk. Once an
    /// interim table runs there is no way back to the failed target: if the fresh load fails,
    /// the device stays on the interim table until the COW reads back.
    static func restartMerge(_ set: SnapshotSet, _ members: [(SnapshotSet.Member, fromInterim: Bool)], view: KernelView) -> Plan {
        var steps: [Step] = []
        for (m, fromInterim) in members where !fromInterim {
            steps += [Step(.load(m.device, interimTable(m)), undo: [.clearInactive(m.device)]),
                      Step(.suspend(m.device, lockfs: false), undo: [.clearInactive(m.device), .resume(m.device)]),
                      Step(.resume(m.device))]
        }
        let commit = steps.isEmpty ? -1 : steps.count - 1
        for (m, _) in members {
            steps += [Step(.load(m.device, currentTable(m, set, view, merge: true))),
                      Step(.suspend(m.device, lockfs: false)),
                      Step(.resume(m.device))]
        }
        return Plan(steps: steps, commitIndex: commit)
    }

    /// Once every merge is complete: restore each original table, remove the bases, wipe the COW
    /// headers and forget the set.
    public static func finishMerge(_ set: SnapshotSet, view: KernelView) throws(PlanError) -> Plan {
        try requireRoot(view)
        for m in set.members {
            let seen = observe(m, in: set, view: view)
            guard seen.runs == .merge else { throw PlanError(m.device.value, "is not merging") }
            guard seen.status?.mergeComplete == true else {
                throw PlanError(m.device.value, "merge not complete (\(seen.status?.description ?? "no status"))")
            }
        }
        return restorePlan(set, view: view, merge: true)
    }

    /// Throws every change away: restores the original tables. Every device must be closed.
    public static func discard(_ set: SnapshotSet, view: KernelView) throws(PlanError) -> Plan {
        try requireRoot(view)
        try requireSettled(set)
        // After a reboot the devices hold the frozen image already: forget the set, release the COWs.
        if set.members.allSatisfy({ observe($0, in: set, view: view).runs == .gone }) {
            return forgetPlan(set)
        }
        try refuseLost(set, view)
        try refuseMountedImages(set)
        for m in set.members {
            let seen = observe(m, in: set, view: view)
            switch seen.runs {
            case .snapshot: break
            case .merge, .interim: throw PlanError(set.name.value, "set is merging; a merge cannot be discarded")
            case .gone:
                throw PlanError(set.name.value, "\(m.device): \(seen.reason ?? "gone"), but not every device is; run 'dmsnap recover \(set.name)'")
            case .missing, .foreign:
                throw PlanError(set.name.value, "\(seen.reason ?? "unexpected state"); run 'dmsnap recover \(set.name)'")
            case .original:
                throw PlanError(set.name.value, "\(m.device) no longer runs its snapshot; run 'dmsnap recover \(set.name)'")
            }
            if let mp = view.mountPoints(of: m.number).first {
                throw PlanError(m.device.value, "is mounted on \(mp); unmount it before discarding")
            }
            if let open = view.devices[m.device]?.info.openCount, open > 0 {
                // name what sits on it (LVs, a LUKS container) and where those are mounted
                throw PlanError(m.device.value, view.openRefusal(m.number, openCount: open, before: "discarding"))
            }
        }
        return restorePlan(set, view: view, merge: false)
    }

    /// A lost set can only be forgotten.
    static func refuseLost(_ set: SnapshotSet, _ view: KernelView) throws(PlanError) {
        for m in set.members {
            let seen = observe(m, in: set, view: view)
            if seen.state == .lost {
                throw PlanError(set.name.value, "\(seen.reason ?? "lost"); run 'dmsnap forget \(set.name)'")
            }
        }
    }

    /// `forget`: drops what another tool took away from a set. Each lost member leaves the set:
    /// its base is removed when nothing uses it (a base is a mapping of the original device:
    /// removing it loses no data), its COW is never touched (it keeps the changes made since
    /// take). The members that still run their snapshot stay in the set (merge or discard them
    /// as usual); with none left the record is deleted. Only for a lost set.
    public static func forget(_ set: SnapshotSet, view: KernelView) throws(PlanError) -> (Plan, [String]) {
        try requireRoot(view)
        let status = SetStatus.of(set, view: view)
        guard status.state == .lost else {
            var why = "set is \(status.state.rawValue), not lost; forget only drops a set whose devices another tool changed"
            if let hint = status.hint { why += " (to move it on: \(hint))" }
            throw PlanError(set.name.value, why)
        }
        var steps: [Step] = []
        var notes: [String] = []
        var kept = set
        kept.members = []
        for m in set.members {
            guard observe(m, in: set, view: view).state == .lost else {
                kept.members.append(m)
                continue
            }
            if let base = view.devices[m.base] {
                if base.info.openCount == 0 {
                    steps.append(Step(.remove(m.base), warning: "\(m.base): cannot remove the hidden base device; remove it with 'dmsetup remove \(m.base)'"))
                } else {
                    notes.append("\(m.base) is still in use (open \(base.info.openCount)); it was left in place")
                }
            }
            notes.append("\(m.cow) still holds \(m.device)'s changes made since take; it was not wiped (wipe its first chunk before reusing it)")
        }
        if kept.members.isEmpty {
            steps.append(Step(.deleteState(set.name)))
        } else {
            steps.append(Step(.save(kept)))
            notes.append("set \(set.name) keeps \(kept.members.map(\.device.value).joined(separator: ", ")), still running its snapshot; merge or discard the set as usual")
        }
        return (Plan(steps: steps, commitIndex: -1), notes)
    }

    /// Forgets a set whose devices no longer carry it: releases each COW (a failure only warns)
    /// and deletes the record.
    static func forgetPlan(_ set: SnapshotSet) -> Plan {
        let bytes = headerBytes(set.chunk)
        return Plan(steps: set.members.map { .release($0, bytes: bytes) } + [Step(.deleteState(set.name))], commitIndex: -1)
    }

    static func restorePlan(_ set: SnapshotSet, view: KernelView, merge: Bool) -> Plan {
        var steps: [Step] = []
        for m in set.members {
            steps.append(Step(.load(m.device, m.originalTable), undo: [.clearInactive(m.device)]))
        }
        if !merge { steps.append(Step(.save(set.with(phase: .discarding)), undo: [.save(set)])) }
        for m in set.members {
            let current = currentTable(m, set, view, merge: merge)
            // A second snapshot-merge cannot be loaded over a live one (EINVAL, "A snapshot is
            // already merging"), so a finish undoes a suspend by dropping the original table it
            // loaded and resuming on the merge target still in place; a discard reloads the
            // snapshot table (the kernel hands the exceptions over).
            let undo: [Action] = merge ? [.clearInactive(m.device), .resume(m.device)] : [.load(m.device, current), .resume(m.device)]
            steps.append(Step(.suspend(m.device, lockfs: true), undo: undo))
        }
        for m in set.members {
            let back = currentTable(m, set, view, merge: merge)
            steps.append(Step(.resume(m.device), undo: [.load(m.device, back), .suspend(m.device, lockfs: true), .resume(m.device)]))
        }
        let commit = steps.count - 1
        for m in set.members { steps.append(Step(.remove(m.base))) }
        let headerBytes = headerBytes(set.chunk)
        for m in set.members { steps.append(.release(m, bytes: headerBytes)) }
        steps.append(Step(.deleteState(set.name)))
        return Plan(steps: steps, commitIndex: commit)
    }
}
