import DMSnapModel

extension Planner {
    /// The member a backup reads (export, mount): its frozen image must be there and whole, so
    /// the set must be active (a merge writes into the base; an inactive set has no base; an
    /// invalid one is refused too).
    public static func imageMember(_ set: SnapshotSet, device: String?, view: KernelView, what: String) throws(PlanError) -> [SnapshotSet.Member] {
        try requireRoot(view)
        try requireSettled(set)
        var members = set.members
        if let device {
            let raw = device.hasPrefix("/dev/mapper/") ? String(device.dropFirst(12)) : device
            guard let m = set.members.first(where: { $0.device.value == raw }) else {
                throw PlanError(device, "not a device of set \(set.name) (its devices: \(set.members.map(\.device.value).joined(separator: ", ")))")
            }
            members = [m]
        }
        for m in members {
            let seen = observe(m, in: set, view: view)
            guard seen.state == .active else {
                let why = seen.state == .merging ? "set is merging: the merge writes into the frozen image" : "set is \(seen.state.rawValue)\(seen.reason.map { " (\($0))" } ?? "")"
                var line = "cannot \(what) \(m.device)'s frozen image: \(why)"
                if let hint = SetStatus.of(set, view: view).hint { line += "; to move the set on: \(hint)" }
                throw PlanError(set.name.value, line)
            }
        }
        return members
    }

    /// A place a backup writes to (an export file, a mount directory) must not be on a
    /// filesystem of the set, or on one stacked on it: the backup would land in the snapshot,
    /// and the COW would grow with it.
    public static func refuseInsideSet(_ path: String, device: DeviceNumber?, _ set: SnapshotSet, view: KernelView) throws(PlanError) {
        guard let device else { return }
        if let m = set.members.first(where: { $0.number == device || view.underlying(device).contains($0.number) }) {
            throw PlanError(path, "is on a filesystem of set \(set.name) (on \(m.device)): the backup would be written into the snapshot")
        }
    }
}
