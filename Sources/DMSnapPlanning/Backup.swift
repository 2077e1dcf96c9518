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

extension Planner {
    /// The options a read-only view of each filesystem type is mounted with; nil: not supported.
    public static func viewMountOptions(_ fsType: String?) -> Result<String, PlanError> {
        switch fsType {
        case "ext2", "ext3", "ext4": .success("")
        // the frozen image has the live filesystem's UUID: xfs refuses it without nouuid
        case "xfs": .success("nouuid")
        case "btrfs": .failure(PlanError("", "btrfs in this kernel cannot mount a second copy of a filesystem with the same UUID; export the image instead"))
        case nil: .failure(PlanError("", "has no filesystem to mount; export it instead"))
        case let t?: .failure(PlanError("", "mounting a frozen \(t) image is not supported (ext2, ext3, ext4, xfs); export it instead"))
        }
    }

    /// The scratch space of a view: what a journal replay may write, at most the device's size.
    public static func viewScratch(_ m: SnapshotSet.Member) -> Sectors {
        Sectors(min(m.size.value, Sectors(bytes: 1 << 30)!.value))
    }

    /// Mounts the frozen image of `device` (or of every member: each under `dir`/DEVICE) at
    /// `dir`, read-only, through a throwaway snapshot of its base, so a journal replay writes into
    /// memory and never into the base. `fsTypes`: what libblkid found on each base; `dirEmpty`:
    /// nil when `dir` is no directory; `dirDevice`: the filesystem `dir` is on.
    public static func mountImages(_ set: SnapshotSet, device: String?, dir: String, view: KernelView,
                                   fsTypes: [DeviceName: String], dirEmpty: Bool?, dirDevice: DeviceNumber?) throws(PlanError) -> (SnapshotSet, Plan) {
        let members = try imageMember(set, device: device, view: view, what: "mount")
        for m in members {
            if let v = m.view { throw PlanError(m.device.value, "its frozen image is mounted on \(v.mountPoint) already") }
        }
        guard let empty = dirEmpty else { throw PlanError(dir, "does not exist or is not a directory") }
        guard empty else { throw PlanError(dir, "is not empty") }
        try refuseInsideSet(dir, device: dirDevice, set, view: view)
        let one = members.count == 1
        var updated = set
        var steps: [Step] = []
        for m in members {
            let options: String
            switch viewMountOptions(fsTypes[m.base]) {
            case let .success(o): options = o
            case let .failure(e): throw PlanError(m.device.value, "its frozen image \(e.reason)")
            }
            let index = set.members.firstIndex(of: m)!
            let name: DeviceName
            do { name = try DMSnapNaming.viewName(for: m.device) } catch { throw PlanError(m.device.value, "name too long to add '\(DMSnapNaming.viewSuffix)'") }
            guard view.devices[name] == nil else { throw PlanError(m.device.value, "hidden device \(name) already exists") }
            let mountPoint = one ? dir : "\(dir)/\(m.device)"
            let iv = ImageView(device: name, uuid: DMSnapNaming.viewUUID(set: set.name, index: index), mountPoint: mountPoint,
                               fsType: fsTypes[m.base]!, madeDirectory: !one)
            if !one { steps.append(Step(.makeDirectory(mountPoint), undo: [.removeDirectory(mountPoint)])) }
            steps.append(Step(.createView(name, uuid: iv.uuid, origin: m.base, size: m.size, scratch: viewScratch(m)), undo: [.remove(name)]))
            steps.append(Step(.mount(name.path, at: mountPoint, type: iv.fsType, options: options), undo: [.unmount(mountPoint)]))
            updated.members[index].view = iv
        }
        steps.append(Step(.save(updated)))
        return (updated, Plan(steps: steps))
    }

    /// Unmounts what `mountImages` mounted: every view of the set, or the one whose device or
    /// mount point (or parent directory) `target` names. What a reboot already took away (the
    /// mount, the device) is skipped; the record is cleared.
    public static func unmountImages(_ set: SnapshotSet, target: String?, view: KernelView) throws(PlanError) -> (SnapshotSet, Plan) {
        try requireRoot(view)
        func matches(_ m: SnapshotSet.Member, _ v: ImageView) -> Bool {
            guard var t = target else { return true }
            while t.count > 1, t.hasSuffix("/") { t.removeLast() }
            return t == m.device.value || t == m.device.path || t == v.mountPoint || (v.madeDirectory && v.mountPoint.hasPrefix(t + "/"))
        }
        let chosen = set.members.indices.filter { i in set.members[i].view.map { matches(set.members[i], $0) } ?? false }
        guard !chosen.isEmpty else {
            throw PlanError(target ?? set.name.value, target == nil ? "no frozen image of set \(set.name) is mounted"
                                                                 : "not an image dmsnap mounted for set \(set.name) (see 'dmsnap status \(set.name)')")
        }
        var updated = set
        var steps: [Step] = []
        for i in chosen {
            let v = set.members[i].view!
            if view.mounts.contains(where: { $0.mountPoint == v.mountPoint }) { steps.append(Step(.unmount(v.mountPoint))) }
            if view.devices[v.device] != nil { steps.append(Step(.remove(v.device))) }
            if v.madeDirectory { steps.append(Step(.removeDirectory(v.mountPoint), warning: "\(v.mountPoint): cannot remove the directory dmsnap made")) }
            updated.members[i].view = nil
        }
        steps.append(Step(.save(updated)))
        return (updated, Plan(steps: steps, commitIndex: -1))
    }

    /// Merge, discard and forget wait for the frozen images to be unmounted.
    static func refuseMountedImages(_ set: SnapshotSet) throws(PlanError) {
        if let m = set.members.first(where: { $0.view != nil }), let v = m.view {
            throw PlanError(set.name.value, "\(m.device)'s frozen image is mounted on \(v.mountPoint) (dmsnap mount); run 'dmsnap umount \(set.name)' first")
        }
    }
}
