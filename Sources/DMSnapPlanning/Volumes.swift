import DMSnapModel
import FoundationEssentials

/// `dmsnap prepare` / `unprepare`: a plain device wrapped in a dm linear device so it can be
/// snapshotted, and unwrapped again; `activate --all` re-creates the wrappers at boot.
extension Planner {
    /// Signatures of devices another layer owns: LVM would find its PV twice (on the device and
    /// on the wrapper), md its member twice.
    static let memberSignatures = ["LVM2_member", "linux_raid_member", "isw_raid_member", "ddf_raid_member",
                                   "adaptec_raid_member", "promise_fasttrack_raid_member", "nvidia_raid_member"]

    /// Refuses before any change: a name in use, a path that is no block device, a dm device, one
    /// prepared or in use already (stacked on, mounted, open, a set's COW), an LVM or RAID member,
    /// one with no stable identity.
    public static func prepare(_ path: String, name nameText: String, view: KernelView,
                               now: Date = Date()) throws(PlanError) -> (PreparedVolume, Plan) {
        try requireRoot(view)
        let name: DeviceName
        do { name = try DeviceName(nameText) } catch { throw PlanError(nameText, error.description) }
        if view.volumes.contains(where: { $0.name == name }) { throw PlanError(name.value, "is a prepared volume already") }
        if view.devices[name] != nil { throw PlanError(name.value, "a device-mapper device of that name exists") }
        let block: BlockDeviceInfo
        switch view.blocks[path] {
        case let .success(b)?: block = b
        case let .failure(e)?: throw PlanError(path, "not a block device (\(e))")
        case nil: throw PlanError(path, "not looked up")
        }
        if let (dm, _) = view.device(numbered: block.number) {
            throw PlanError(path, "is a device-mapper device (\(dm)) already: take it as it is ('dmsnap take SET \(dm)=COW')")
        }
        if let v = view.volumes.first(where: { volume in view.identities[path]?.contains(volume.identity) == true }) {
            throw PlanError(path, "is prepared already, as \(v.name)")
        }
        if let set = view.sets.first(where: { $0.members.contains { $0.cowNumber == block.number } }) {
            throw PlanError(path, "is a COW of set \(set.name)")
        }
        if let above = view.holders[block.number], let first = above.first {
            let holder = view.device(numbered: first)?.0.value ?? first.description
            throw PlanError(path, "is in use: \(holder) is stacked on it")
        }
        if let mp = view.mountPoints(of: block.number).first { throw PlanError(path, "is mounted on \(mp); unmount it first") }
        if view.claimed[path] == true { throw PlanError(path, "is open (a program or another device holds it); close it first") }
        if let sig = view.signatures[path], memberSignatures.contains(sig) {
            throw PlanError(path, "carries a \(sig) signature: its owner (LVM, md) would find it twice, on the device and on the wrapper; snapshot the device it is assembled into instead")
        }
        guard let identity = view.identities[path]?.first else {
            throw PlanError(path, "has nothing that identifies it across reboots (no partition UUID, WWN, filesystem or LUKS UUID): put a filesystem or LUKS container on it, or prepare a partition")
        }
        guard block.size.value > 0 else { throw PlanError(path, "is empty (0 sectors)") }
        let volume = PreparedVolume(name: name, identity: identity, sectors: block.size, preparedFrom: path, created: now)
        let plan = Plan(steps: [
            Step(.saveVolume(volume), undo: [.deleteVolume(name)]),
            Step(.create(name, uuid: volume.uuid, table: volume.table(over: block.number), hidden: false), undo: [.remove(name)]),
        ])
        return (volume, plan)
    }

    /// Refused while the wrapper is in a set, mounted or open.
    public static func unprepare(_ nameText: String, view: KernelView) throws(PlanError) -> Plan {
        try requireRoot(view)
        guard let volume = view.volumes.first(where: { $0.name.value == nameText }) else {
            throw PlanError(nameText, "not a prepared volume (dmsnap prepare makes one)")
        }
        let name = volume.name
        if let set = view.sets.first(where: { $0.members.contains { $0.device == name } }) {
            throw PlanError(name.value, "is in set \(set.name); merge or discard the set first")
        }
        var steps: [Step] = []
        if let d = view.devices[name] {
            if let mp = view.mountPoints(of: d.info.number).first { throw PlanError(name.value, "is mounted on \(mp); unmount it first") }
            if d.info.openCount > 0 {
                let above = (view.holders[d.info.number] ?? []).map { view.device(numbered: $0)?.0.value ?? $0.description }
                throw PlanError(name.value, "is open\(above.isEmpty ? "" : " (\(above.joined(separator: ", ")) on it)"); close it first")
            }
            steps.append(Step(.remove(name)))
        }
        steps.append(Step(.deleteVolume(name)))
        return Plan(steps: steps)
    }
}
