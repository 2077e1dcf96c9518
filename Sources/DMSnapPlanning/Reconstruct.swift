import DMSnapModel
import FoundationEssentials

extension Planner {
    /// Rebuilds a set's description from the kernel alone, for a set whose record is gone: each
    /// of `devices` runs `snapshot BASE COW P CHUNK` (or `snapshot-merge`), BASE runs the table
    /// the device had before take. `cowPaths` names a path for each COW's number.
    public static func reconstruct(_ name: SetName, devices: [DeviceName], view: KernelView,
                                   cowPaths: [DeviceNumber: String], created: Date = Date()) throws(PlanError) -> SnapshotSet {
        var members: [SnapshotSet.Member] = []
        var chunk: Sectors?
        var merging = false
        for device in devices {
            guard let live = view.devices[device] else { throw PlanError(device.value, "no such device-mapper device") }
            guard let table = live.table, table.targets.count == 1, let p = table.targets[0].params.snapshot,
                  p.store == .persistent, let baseNumber = p.origin.number, let cowNumber = p.cow.number else {
                throw PlanError(device.value, "does not run a persistent snapshot table")
            }
            guard let (baseName, base) = view.device(numbered: baseNumber), let original = base.table else {
                throw PlanError(device.value, "its snapshot's base \(baseNumber) is not a device-mapper device with a table")
            }
            guard chunk == nil || chunk == p.chunk else { throw PlanError(device.value, "chunk size differs from the set's") }
            chunk = p.chunk
            if case .snapshotMerge = table.targets[0].params { merging = true }
            guard let cow = cowPaths[cowNumber] else { throw PlanError(device.value, "no path for its COW \(cowNumber)") }
            members.append(SnapshotSet.Member(
                device: device, number: live.info.number, uuid: live.info.uuid, originalTable: original, base: baseName,
                baseUUID: base.info.uuid, cow: cow, cowNumber: cowNumber, cowSize: view.blocks[cow].flatMap { try? $0.get().size } ?? 0))
        }
        guard let chunk else { throw PlanError(name.value, "no devices") }
        return SnapshotSet(name: name, created: created, phase: merging ? .merging : .active, chunk: chunk, members: members)
    }
}
