import DMSnapModel

/// `dmsnap run`: what its rollback may not pull away, and how `--remount` takes the set's
/// filesystems away for the discard and puts them back.
extension Planner {
    /// A rollback (`--on-failure discard`) of a device holding what dmsnap runs from would pull
    /// the floor out from under it: refuse a set with a member holding one of `view.floors`.
    static func refuseFloor(_ request: TakeRequest, _ members: [SnapshotSet.Member], _ view: KernelView) throws(PlanError) {
        for (path, what) in request.floor.sorted(by: { $0.key < $1.key }) {
            guard let n = view.floors[path], let owner = member(holding: n, members, view) else { continue }
            throw PlanError(owner.device.value, "holds \(what) (\(path)): rolling it back would pull the floor out from under dmsnap; use --on-failure keep")
        }
    }

    /// For `run --remount`: `down` stops `units` and unmounts every mount of the set's devices
    /// (the last mounted first), undoing all of it when a step fails (a busy filesystem); `up`
    /// mounts them again as the mount table had them (from the live device by name; a bind
    /// mount from its filesystem's mount point) and starts the units — each tried on its own,
    /// whatever the others do.
    public static func remount(_ set: SnapshotSet, units: [String], view: KernelView) throws(PlanError) -> (down: Plan, up: [Action]) {
        var restores: [(entry: MountEntry, action: Action)] = []
        for entry in view.mounts {
            guard let m = set.members.first(where: { $0.number == entry.number }) else { continue }
            var from: String?
            if entry.root != "/" {
                guard let whole = restores.first(where: { $0.entry.number == entry.number && $0.entry.root == "/" })?.entry else {
                    throw PlanError(m.device.value, "is mounted on \(entry.mountPoint) only as a bind mount of \(entry.root): --remount cannot mount it again that way; unmount it and use 'dmsnap run' without --remount")
                }
                from = whole.mountPoint == "/" ? entry.root : whole.mountPoint + entry.root
            }
            restores.append((entry, .restoreMount(entry, device: m.device.path, bindFrom: from)))
        }
        var down = units.map { Step(.stopUnit($0), undo: [.startUnit($0)]) }
        down += restores.reversed().map { Step(.unmount($0.entry.mountPoint), undo: [$0.action]) }
        return (Plan(steps: down), restores.map(\.action) + units.map { .startUnit($0) })
    }

    /// The member `n` is or is stacked on.
    static func member(stackedOn n: DeviceNumber, _ members: [SnapshotSet.Member], _ view: KernelView) -> SnapshotSet.Member? {
        members.first { $0.number == n || view.underlying(n).contains($0.number) }
    }

    /// The member `n` is, or is stacked on, or (through loops over files) lives on.
    static func member(holding n: DeviceNumber, _ members: [SnapshotSet.Member], _ view: KernelView) -> SnapshotSet.Member? {
        var n = n
        for _ in 0..<8 {
            if let owner = member(stackedOn: n, members, view) { return owner }
            guard let backing = view.loopBackings[n] else { return nil }
            n = backing.fileSystemDevice
        }
        return nil
    }
}
