extension SnapshotManager {
    /// Starts the merge of every member (no-op for members already merging). Returns the set.
    @discardableResult
    public func startMerge(_ name: String) throws(DMSnapError) -> SnapshotSet {
        _ = try existing(name)
        let (set, _) = try journaled(name, "merge", { $0.1 ? "merge started" : nil }) { () throws(DMSnapError) -> (SnapshotSet, Bool) in
            try locked { () throws(DMSnapError) -> (SnapshotSet, Bool) in
                let set = try existing(name)
                let v = try view(scope: .of([set]))
                guard let start = try plan({ () throws(PlanError) in try Planner.startMerge(set, view: v) }) else {
                    return (set, false)
                }
                try execute(start, for: set.name)
                return (set, true)
            }
        }
        return set.with(phase: .merging)
    }

    /// Sectors still to copy back, over all members.
    public func mergeProgress(_ set: SnapshotSet, initial: inout [DeviceName: UInt64]) throws(DMSnapError) -> MergeProgress {
        var remaining: UInt64 = 0
        var total: UInt64 = 0
        for m in set.members {
            let status: [TargetStatus]
            do { status = try kernel.status(m.device) } catch { throw .kernel(error) }
            guard let line = status.first, line.type == "snapshot-merge" else {
                throw .kernel(KernelError(call: "status", device: m.device.value, errno: nil,
                                          detail: "not merging (target \(status.first?.type ?? "none"))"))
            }
            let parsed: SnapshotStatus
            do { parsed = try SnapshotStatus(parsing: line.text) } catch {
                throw .kernel(KernelError(call: "status", device: m.device.value, errno: nil, detail: error.description))
            }
            switch parsed {
            case let .valid(a, _, meta):
                let left = a.value - meta.value
                let start = max(initial[m.device] ?? left, left)
                initial[m.device] = start
                remaining += left
                total += start
            case .mergeFailed:
                throw .mergeFailed("\(m.device): the merge stopped on an I/O error (COW or device); the device stays usable with every change; once the COW works, unmount \(m.device) and run 'dmsnap merge \(set.name)' to resume it")
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
            if let signal = interruption?() {
                throw .interrupted(signal: signal, "interrupted by \(signalName(signal)) while waiting: the merge goes on in the kernel; run 'dmsnap merge \(set.name)' to wait for it and finish it")
            }
            sleep(for: pollInterval)
        }
        try journaled(name, "merge", { "merged: every change is in the devices; set forgotten" }) { () throws(DMSnapError) in
            try locked { () throws(DMSnapError) in
                let current = try existing(name)
                let v = try view(scope: .of([current]))
                try execute(try plan { () throws(PlanError) in try Planner.finishMerge(current, view: v) }, for: current.name)
            }
        }
    }

    /// Throws every change away: each device returns to the frozen image. Every device must be closed.
    public func discard(_ name: String) throws(DMSnapError) {
        _ = try existing(name)
        try journaled(name, "discard", { "discarded: the devices hold the frozen image again; set forgotten" }) { () throws(DMSnapError) in
            try locked { () throws(DMSnapError) in
                let set = try existing(name)
                let v = try view(scope: .of([set]))
                try execute(try plan { () throws(PlanError) in try Planner.discard(set, view: v) }, for: set.name)
            }
        }
    }
}

extension SnapshotManager {
    /// Drops a lost set (another tool replaced or removed what dmsnap had set up): removes its
    /// unused bases and its record, leaves the COWs as they are. Returns one line per thing the
    /// user should know (what each COW still holds).
    public func forget(_ name: String) throws(DMSnapError) -> [String] {
        _ = try existing(name)
        return try journaled(name, "forget", { (["forgotten"] + $0).joined(separator: "; ") }) { () throws(DMSnapError) -> [String] in
            try locked { () throws(DMSnapError) -> [String] in
                let set = try existing(name)
                let v = try view(scope: .of([set]))
                let (forgetPlan, notes) = try plan { () throws(PlanError) in try Planner.forget(set, view: v) }
                try execute(forgetPlan)
                return notes
            }
        }
    }
}
