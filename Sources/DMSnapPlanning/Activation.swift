import DMSnapModel

/// Rebuilding a set after a reboot: the live devices exist again with their original tables
/// (made by the admin's usual tools), the bases are gone, the persistent COWs still hold every
/// change. `activate` puts the snapshot stack back on top.
extension Planner {
    /// - Parameters:
    ///   - fingerprints: the fingerprint of each live device's content now (read by the caller).
    ///   - force: activate even when a base changed since take.
    /// The COW headers come with the view (`KernelView.cowHeaders`).
    public static func activate(_ set: SnapshotSet, view: KernelView, fingerprints: [DeviceName: String],
                                force: Bool) throws(PlanError) -> (SnapshotSet, Plan) {
        try requireRoot(view)
        guard set.phase == .active || set.phase == .merging else {
            throw PlanError(set.name.value, "set was interrupted while \(set.phase.rawValue); run 'dmsnap recover \(set.name)'")
        }
        var updated = set
        updated.bootID = view.bootID
        for (i, m) in set.members.enumerated() {
            guard let live = view.devices[m.device] else {
                throw PlanError(m.device.value, "device does not exist: recreate it (with its original table) first")
            }
            if view.devices[m.base] != nil {
                throw PlanError(set.name.value, "base device \(m.base) exists: the set is active already (see 'dmsnap status \(set.name)')")
            }
            guard live.table == m.originalTable else {
                throw PlanError(m.device.value, "runs a different table than at take (\(live.table?.oneLine ?? "none")); expected \(m.originalTable.oneLine)")
            }
            guard !live.info.suspended else { throw PlanError(m.device.value, "device is suspended") }
            if let mp = view.mountPoints(of: live.info.number).first {
                throw PlanError(m.device.value, "is mounted on \(mp); unmount it: writes made before activate would not be in the snapshot")
            }
            // (at boot: LVM's udev rules may have activated a VG on it, a container been opened)
            guard live.info.openCount == 0 else {
                throw PlanError(m.device.value, view.openRefusal(live.info.number, openCount: live.info.openCount, before: "activating"))
            }
            var cowNumber = m.cowNumber
            var cowSize = m.cowSize
            if m.cowFile != nil {
                switch view.files[m.cow] {
                case let .success(f)? where f.kind == .regular:
                    if let use = f.inUse { throw PlanError(m.cow, "COW file is in use (\(use))") }
                    cowSize = Sectors(f.size / 512)
                case .success?: throw PlanError(m.cow, "COW file is gone or not a regular file any more; use 'dmsnap discard \(set.name)' to forget the set")
                case let .failure(e)? where e.errno == .noSuchFileOrDirectory:
                    throw PlanError(m.cow, "COW file is gone: the changes since take are lost; use 'dmsnap discard \(set.name)' to forget the set (the devices hold the frozen image)")
                case let .failure(e)?: throw PlanError(m.cow, "COW file: \(e)")
                case nil: throw PlanError(m.cow, "COW file not looked up")
                }
            } else {
                let cow: BlockDeviceInfo
                switch view.blocks[m.cow] {
                case let .success(b)?: cow = b
                case let .failure(e)?: throw PlanError(m.cow, "COW: \(e)")
                case nil: throw PlanError(m.cow, "COW not looked up")
                }
                if view.claimed[m.cow] == true { throw PlanError(m.cow, "COW is in use") }
                cowNumber = cow.number
                cowSize = cow.size
            }
            switch view.cowHeaders[m.cow] {
            case let .success(header)?:
                switch COWHeader(header) {
                case .valid: break
                case .invalidated:
                    throw PlanError(m.cow, "the kernel invalidated this snapshot before the reboot (COW overflowed or failed); it cannot be activated: use 'dmsnap discard \(set.name)'")
                case .empty, .foreign:
                    throw PlanError(m.cow, "COW has no valid snapshot header (wiped or not this set's COW); use 'dmsnap discard \(set.name)' to forget the set")
                }
            case let .failure(e)?: throw PlanError(m.cow, "COW cannot be read: \(e)")
            case nil: throw PlanError(m.cow, "COW not read")
            }
            // A merge in progress writes into the device, so only an active set can be checked.
            if set.phase == .active, let recorded = m.baseFingerprint, let now = fingerprints[m.device], recorded != now, !force {
                throw PlanError(m.device.value, "content changed since take (was it mounted or written?): the COW no longer matches it; --force activates anyway and may corrupt data")
            }
            updated.members[i].number = live.info.number
            updated.members[i].uuid = live.info.uuid
            updated.members[i].cowNumber = cowNumber
            updated.members[i].cowSize = cowSize
        }
        var steps: [Step] = attachSteps(updated, creating: false)
        for m in updated.members {
            steps.append(Step(.create(m.base, uuid: m.baseUUID, table: m.originalTable, hidden: true), undo: [.remove(m.base)]))
        }
        for m in updated.members {
            steps.append(Step(.load(m.device, takeTable(m, chunk: set.chunk, merge: set.phase == .merging)),
                              undo: [.clearInactive(m.device)]))
        }
        steps.append(Step(.save(updated), undo: [.save(set)]))
        for m in updated.members {
            steps.append(Step(.suspend(m.device, lockfs: true), undo: [.load(m.device, m.originalTable), .resume(m.device)]))
        }
        for m in updated.members {
            steps.append(Step(.resume(m.device), undo: [.load(m.device, m.originalTable), .suspend(m.device, lockfs: true), .resume(m.device)]))
        }
        return (updated, Plan(steps: steps))
    }
}
