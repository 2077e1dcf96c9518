import DMSnapModel

/// Recovery of a set a killed dmsnap left half-way. Two stages, each a plan:
///  1. `resumeStage`: resume every suspended member (swapping in whatever table the killed run
///     loaded: that only ever rolls a step forward). Filesystems stay frozen, so nothing is
///     written while stage 2 decides.
///  2. `settleStage`, planned from a fresh look at the kernel: finish or undo what the phase
///     says was in flight, and thaw.
extension Planner {
    public static func resumeStage(_ set: SnapshotSet, view: KernelView) throws(PlanError) -> Plan {
        try requireRoot(view)
        var steps: [Step] = []
        for m in set.members {
            guard let live = view.devices[m.device] else { continue }
            if live.info.suspended { steps.append(Step(.resume(m.device))) }
        }
        return Plan(steps: steps, commitIndex: -1)
    }

    /// What stage 2 does, in words, and the plan. `needsMerge` asks the caller to run a normal
    /// merge afterwards (an interrupted merge start).
    public struct Settlement: Sendable {
        public var plan: Plan
        public var summary: String
        public var needsMerge = false
    }

    public static func settleStage(_ set: SnapshotSet, view: KernelView) throws(PlanError) -> Settlement {
        try requireRoot(view)
        let seen = set.members.map { observe($0, in: set, view: view) }
        // After a reboot there is nothing to settle: say what the set is and what moves it on.
        if seen.allSatisfy({ $0.runs == .gone }) {
            let status = SetStatus.of(set, view: view)
            return Settlement(plan: Plan(steps: [], commitIndex: -1), summary: status.summary)
        }
        for m in set.members where view.devices[m.device] == nil {
            throw PlanError(m.device.value, "device does not exist (after a reboot, recreate it and run 'dmsnap activate \(set.name)')")
        }
        let states = seen.map(\.runs)
        let mountPoints = set.members.flatMap { view.mountPoints(of: $0.number) }
            + freezePoints(set.members, view).filter { mp in !set.members.contains { view.mountPoints(of: $0.number).contains(mp) } }
        // (a cgroup that is gone with its application only earns a warning)
        let thaw = mountPoints.map { Step(.thawIfFrozen($0)) }
            + (set.cgroups ?? []).map { Step(.thawCgroup($0), warning: "\($0): cannot thaw the cgroup; run 'echo 0 > \($0)/cgroup.freeze'") }
        let headerBytes = headerBytes(set.chunk)
        func clearInactive() -> [Step] {
            set.members.filter { view.devices[$0.device]?.info.hasInactiveTable == true }.map { Step(.clearInactive($0.device)) }
        }
        func removeBasesWipeForget() -> [Step] {
            set.members.filter { view.devices[$0.base] != nil }.map { Step(.remove($0.base)) }
                + set.members.map { Step.release($0, bytes: headerBytes) }
                + [Step(.deleteState(set.name))]
        }
        func isSnapshot(_ s: Observation.Runs) -> Bool { s == .snapshot }
        func isMerging(_ s: Observation.Runs) -> Bool { s == .merge }

        switch set.phase {
        case .taking:
            if states.allSatisfy(isSnapshot) {
                return Settlement(plan: Plan(steps: clearInactive() + thaw + [Step(.save(set.with(phase: .active)))], commitIndex: -1),
                                  summary: "take had finished in the kernel: set \(set.name) is active")
            }
            // Undo. Every filesystem is still frozen (the take thaws only after the last resume),
            // so restoring the original tables loses no write.
            var steps: [Step] = []
            for (m, s) in zip(set.members, states) where isSnapshot(s) {
                steps += [Step(.load(m.device, m.originalTable)), Step(.suspend(m.device, lockfs: false)), Step(.resume(m.device))]
            }
            steps += clearInactive() + thaw
            steps += set.members.filter { view.devices[$0.base] != nil }.map { Step(.remove($0.base)) }
            // A loaded snapshot table writes its header to the COW; the take wiped it first, so
            // wipe it again: the COW is reusable as the take found it.
            steps += set.members.map { Step.release($0, bytes: headerBytes) }
            steps.append(Step(.deleteState(set.name)))
            return Settlement(plan: Plan(steps: steps, commitIndex: -1), summary: "undid the interrupted take of set \(set.name)")
        case .active:
            // Never "active" for a set that is not: say what it is and what moves it on.
            let summary = states.allSatisfy(isSnapshot) && seen.allSatisfy({ $0.state == .active })
                ? "set \(set.name) is active" : SetStatus.of(set, view: view).summary
            return Settlement(plan: Plan(steps: clearInactive() + thaw, commitIndex: -1), summary: summary)
        case .merging:
            // "Original" straight from the tables: once a finish removed a base, `observe`
            // reports the base missing, but the live device is what matters here.
            let original = set.members.map { view.devices[$0.device]?.table == $0.originalTable }
            if original.allSatisfy({ $0 }) {
                return Settlement(plan: Plan(steps: clearInactive() + thaw + removeBasesWipeForget(), commitIndex: -1),
                                  summary: "finished the merge of set \(set.name)")
            }
            if original.contains(true) {
                // The finish had begun, so every merge was complete: restore the rest.
                var steps = clearInactive() + thaw
                for (m, s) in zip(set.members, states) where isMerging(s) {
                    steps += [Step(.load(m.device, m.originalTable)), Step(.suspend(m.device, lockfs: true)), Step(.resume(m.device))]
                }
                return Settlement(plan: Plan(steps: steps + removeBasesWipeForget(), commitIndex: -1),
                                  summary: "finished the merge of set \(set.name)")
            }
            return Settlement(plan: Plan(steps: clearInactive() + thaw, commitIndex: -1),
                              summary: "continued the merge of set \(set.name)", needsMerge: true)
        case .discarding:
            var steps = clearInactive() + thaw
            for (m, s) in zip(set.members, states) where isSnapshot(s) {
                if let mp = view.mountPoints(of: m.number).first {
                    throw PlanError(m.device.value, "is mounted on \(mp); unmount it, then run 'dmsnap recover \(set.name)' again to finish the discard")
                }
                steps += [Step(.load(m.device, m.originalTable)), Step(.suspend(m.device, lockfs: true)), Step(.resume(m.device))]
            }
            return Settlement(plan: Plan(steps: steps + removeBasesWipeForget(), commitIndex: -1),
                              summary: "finished the discard of set \(set.name)")
        }
    }
}
