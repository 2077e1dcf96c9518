import DMSnapModel
import FoundationEssentials
import Logging

/// What `restoreVolumes` did with one prepared volume at boot.
public struct VolumeRestore: Hashable, Sendable, Encodable {
    public enum Outcome: String, Hashable, Sendable, Encodable { case created, present, failed }
    public var volume: String
    public var outcome: Outcome
    /// The device it was found on (created).
    public var device: String?
    /// Why it failed.
    public var detail: String?

    public init(volume: String, outcome: Outcome, device: String? = nil, detail: String? = nil) {
        self.volume = volume
        self.outcome = outcome
        self.device = device
        self.detail = detail
    }
}

/// Prepared volumes (`dmsnap prepare`): plain devices wrapped in a dm linear device so they can
/// be snapshotted; recorded by their identity, re-created at boot before the sets are activated.
extension SnapshotManager {
    public func preparedVolumes() throws(DMSnapError) -> [PreparedVolume] {
        do { return try store.volumes() } catch { throw .from(error) }
    }

    /// Wraps the unused block device at `path` in the dm linear device `name`.
    @discardableResult
    public func prepare(_ path: String, name: String) throws(DMSnapError) -> PreparedVolume {
        try requireRoot()
        return try locked { () throws(DMSnapError) -> PreparedVolume in
            // every dm device: a holder is named, the name checked against all of them
            var v = try view(paths: [path], probePaths: [path], scope: .all)
            v.volumes = try preparedVolumes()
            v.identities[path] = kernel.identities(of: path)
            if case let .success(b)? = v.blocks[path] { v.holders[b.number] = kernel.holders(of: b.number) }
            let (volume, plan) = try plan { () throws(PlanError) in try Planner.prepare(path, name: name, view: v) }
            try execute(plan)
            journal.info("prepared volume \(volume.name) on \(path) (\(volume.identity))", metadata: ["volume": "\(volume.name)"])
            return volume
        }
    }

    /// Removes the wrapper and its record; the device under it is left as it is.
    public func unprepare(_ name: String) throws(DMSnapError) {
        try requireRoot()
        try locked { () throws(DMSnapError) in
            var v = try view(scope: (try? DeviceName(name)).map { .devices([$0]) } ?? .devices([]))
            v.volumes = try preparedVolumes()
            try execute(try plan { () throws(PlanError) in try Planner.unprepare(name, view: v) })
            journal.info("unprepared volume \(name)", metadata: ["volume": "\(name)"])
        }
    }

    /// At boot, before the sets (`activate --all`): re-creates each prepared volume whose wrapper
    /// is missing, on the one plain device that carries its identity now. One failure does not
    /// stop the rest.
    public func restoreVolumes() throws(DMSnapError) -> [VolumeRestore] {
        try requireRoot()
        return try locked { () throws(DMSnapError) -> [VolumeRestore] in
            var out: [VolumeRestore] = []
            for volume in try preparedVolumes() {
                let name = volume.name.value
                do {
                    if try kernel.info(volume.name) != nil {
                        out.append(VolumeRestore(volume: name, outcome: .present))
                        continue
                    }
                    let found = kernel.blockDevices(with: volume.identity)
                    guard found.count == 1, let path = found.first else {
                        let detail = found.isEmpty ? "no device carries \(volume.identity) (yet)"
                            : "\(volume.identity) is on \(found.joined(separator: ", ")): not choosing; unplug the copy, then run 'dmsnap activate --all' again"
                        out.append(VolumeRestore(volume: name, outcome: .failed, detail: detail))
                        continue
                    }
                    let block = try kernel.blockDevice(at: path)
                    guard block.size >= volume.sectors else {
                        out.append(VolumeRestore(volume: name, outcome: .failed, device: path,
                                                 detail: "\(path) has \(block.size.value) sectors, the volume \(volume.sectors.value)"))
                        continue
                    }
                    if try kernel.isClaimed(path) {
                        out.append(VolumeRestore(volume: name, outcome: .failed, device: path, detail: "\(path) is in use"))
                        continue
                    }
                    try execute(Plan(steps: [Step(.create(volume.name, uuid: volume.uuid, table: volume.table(over: block.number), hidden: false))]))
                    journal.info("re-created prepared volume \(name) on \(path) (\(volume.identity))", metadata: ["volume": "\(name)"])
                    out.append(VolumeRestore(volume: name, outcome: .created, device: path))
                } catch {
                    out.append(VolumeRestore(volume: name, outcome: .failed, detail: "\(error)"))
                }
            }
            return out
        }
    }
}
