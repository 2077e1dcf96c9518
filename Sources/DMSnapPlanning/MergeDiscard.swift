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
        var toStart: [SnapshotSet.Member] = []
        for m in set.members {
            let seen = observe(m, in: set, view: view)
            switch seen.runs {
            case .snapshot:
                switch seen.state {
                case .invalid:
                    throw PlanError(m.device.value, "snapshot is invalid (COW overflowed or failed); it cannot be merged: use 'dmsnap discard \(set.name)'")
                case .mergeFailed:
                    throw PlanError(m.device.value, "merge failed earlier; see 'dmsnap status \(set.name)'")
                default: toStart.append(m)
                }
            case .merge:
                if seen.state == .mergeFailed {
                    throw PlanError(m.device.value, "merge failed (I/O error on the COW or the device); see 'dmsnap status \(set.name)'")
                }
            case .missing, .foreign:
                throw PlanError(set.name.value, "\(seen.reason ?? "unexpected state"); run 'dmsnap recover \(set.name)'")
            case .original:
                throw PlanError(set.name.value, "\(m.device) no longer runs its snapshot; run 'dmsnap recover \(set.name)'")
            }
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
        for m in set.members {
            let seen = observe(m, in: set, view: view)
            switch seen.runs {
            case .snapshot: break
            case .merge: throw PlanError(set.name.value, "set is merging; a merge cannot be discarded")
            case .missing, .foreign:
                throw PlanError(set.name.value, "\(seen.reason ?? "unexpected state"); run 'dmsnap recover \(set.name)'")
            case .original:
                throw PlanError(set.name.value, "\(m.device) no longer runs its snapshot; run 'dmsnap recover \(set.name)'")
            }
            if let mp = view.mountPoints(of: m.number).first {
                throw PlanError(m.device.value, "is mounted on \(mp); unmount it before discarding")
            }
            if let open = view.devices[m.device]?.info.openCount, open > 0 {
                throw PlanError(m.device.value, "is open (\(open) users); close it before discarding")
            }
        }
        return restorePlan(set, view: view, merge: false)
    }

    static func restorePlan(_ set: SnapshotSet, view: KernelView, merge: Bool) -> Plan {
        var steps: [Step] = []
        for m in set.members {
            steps.append(Step(.load(m.device, m.originalTable), undo: [.clearInactive(m.device)]))
        }
        if !merge { steps.append(Step(.save(set.with(phase: .discarding)), undo: [.save(set)])) }
        for m in set.members {
            let current = currentTable(m, set, view, merge: merge)
            steps.append(Step(.suspend(m.device, lockfs: true), undo: [.load(m.device, current), .resume(m.device)]))
        }
        for m in set.members {
            let back = currentTable(m, set, view, merge: merge)
            steps.append(Step(.resume(m.device), undo: [.load(m.device, back), .suspend(m.device, lockfs: true), .resume(m.device)]))
        }
        let commit = steps.count - 1
        for m in set.members { steps.append(Step(.remove(m.base))) }
        let headerBytes = headerBytes(set.chunk)
        for m in set.members { steps.append(Step(.zeroHeader(m.cow, bytes: headerBytes))) }
        steps.append(Step(.deleteState(set.name)))
        return Plan(steps: steps, commitIndex: commit)
    }
}
