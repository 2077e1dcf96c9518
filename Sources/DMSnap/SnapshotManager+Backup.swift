/// What changed on one device of a set since take, from its COW's exception store.
public struct DeviceChanges: Hashable, Sendable, Encodable {
    public var device: String
    public var chunkBytes: UInt64
    /// Sorted, coalesced byte ranges of the device.
    public var changed: [ExceptionStore.ByteRange]
    /// Bytes in the changed chunks (what a merge copies back).
    public var changedBytes: UInt64
    public var ranges: Int { changed.count }

    enum CodingKeys: String, CodingKey {
        case device, changed, ranges
        case chunkBytes = "chunk_bytes", changedBytes = "changed_bytes"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(device, forKey: .device)
        try c.encode(chunkBytes, forKey: .chunkBytes)
        try c.encode(changedBytes, forKey: .changedBytes)
        try c.encode(ranges, forKey: .ranges)
        try c.encode(changed, forKey: .changed)
    }
}

extension SnapshotManager {
    /// The chunks of each device (or of `device` only) changed since take, read from the COW's
    /// own exception store with O_DIRECT (never through the live device).
    public func changes(_ name: String, device: String? = nil) throws(DMSnapError) -> [DeviceChanges] {
        let set = try existing(name)
        let members = try members(of: set, device)
        var out: [DeviceChanges] = []
        for m in members {
            do { out.append(try changes(of: m, in: set)) } catch { throw .kernel(error) }
        }
        return out
    }

    /// `set`'s members, or the one `device` names (by name or /dev/mapper path).
    func members(of set: SnapshotSet, _ device: String?) throws(DMSnapError) -> [SnapshotSet.Member] {
        guard let device else { return set.members }
        let raw = device.hasPrefix("/dev/mapper/") ? String(device.dropFirst(12)) : device
        guard let m = set.members.first(where: { $0.device.value == raw }) else {
            throw .refused(PlanError(device, "not a device of set \(set.name) (its devices: \(set.members.map(\.device.value).joined(separator: ", ")))"))
        }
        return [m]
    }

    func changes(of m: SnapshotSet.Member, in set: SnapshotSet) throws(KernelError) -> DeviceChanges {
        let first = try kernel.readDirect(m.cow, offset: 0, count: 4096)
        guard let header = ExceptionStore.header(first) else {
            throw KernelError(call: "read exception store", device: m.cow, errno: nil, detail: "no snapshot store on the COW")
        }
        guard header.valid else {
            throw KernelError(call: "read exception store", device: m.cow, errno: nil,
                              detail: "the kernel invalidated this snapshot (COW overflowed or failed): its changes are not known")
        }
        let chunkBytes = Int(header.chunk.bytes)
        var exceptions: [ExceptionStore.Exception] = []
        var area = 0
        while true {
            let offset = ExceptionStore.areaChunk(area, chunk: header.chunk) * UInt64(chunkBytes)
            let bytes = try kernel.readDirect(m.cow, offset: offset, count: chunkBytes)
            guard bytes.count == chunkBytes else { break }  // past the end of the COW
            let (found, full) = ExceptionStore.parseArea(bytes)
            exceptions += found
            if !full { break }
            area += 1
        }
        let ranges = ExceptionStore.ranges(exceptions, chunk: header.chunk)
        return DeviceChanges(device: m.device.value, chunkBytes: UInt64(chunkBytes), changed: ranges,
                             changedBytes: ranges.reduce(0) { $0 + $1.length })
    }
}

extension SnapshotManager {
    /// Streams `device`'s frozen image (its base) to `output`. Refused before anything is
    /// written: a set that is not active, an output file that exists (unless `overwrite`) or
    /// that lies on a filesystem of the set. With `checksum`, the summary has the SHA-256 of
    /// the raw image. `progress` gets (bytes read, image size).
    public func export(_ name: String, device: String, to output: ExportOutput, compression: Compression = .none,
                       level: Int? = nil, checksum: Bool = true, progress: (UInt64, UInt64) -> Void = { _, _ in }) throws(DMSnapError) -> ExportSummary {
        let set = try existing(name)
        let level = level ?? compression.defaultLevel
        guard compression.levels.contains(level) else {
            throw .refused(PlanError("--level", "\(compression.rawValue) takes a level from \(compression.levels.lowerBound) to \(compression.levels.upperBound)"))
        }
        let v = try view(scope: .all)
        let m = try plan { () throws(PlanError) in try Planner.imageMember(set, device: device, view: v, what: "export") }[0]
        if case let .file(path, overwrite) = output {
            let dir = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
            guard let dirDevice = kernel.fileSystemDevice(of: dir.isEmpty ? "/" : dir) else {
                throw .refused(PlanError(path, "directory \(dir) does not exist"))
            }
            if kernel.fileSystemDevice(of: path) != nil, !overwrite {
                throw .refused(PlanError(path, "exists; refusing to overwrite it (use --force)"))
            }
            try plan { () throws(PlanError) in try Planner.refuseInsideSet(path, device: dirDevice, set, view: v) }
        }
        let size = m.size.bytes
        let interruption = interruption
        do {
            return try kernel.exportImage(m.base.path, to: output, compression: compression, level: level,
                                          checksum: checksum) { done in
                progress(done, size)
                return interruption?() == nil
            }
        } catch {
            if error.errno == .interrupted, let signal = interruption?() {
                throw .interrupted(signal: signal, "interrupted by \(signalName(signal)): the export was stopped and its output removed")
            }
            throw .kernel(error)
        }
    }
}

extension SnapshotManager {
    /// Mounts the frozen image of `device` (every device, each under `dir`/DEVICE, when nil) at
    /// `dir`, read-only, for a file-level backup. Returns the views made.
    @discardableResult
    public func mount(_ name: String, device: String? = nil, at dir: String) throws(DMSnapError) -> [ImageView] {
        _ = try existing(name)
        let mounted = { (views: [ImageView]) in
            "frozen image mounted read-only at " + views.map { "\($0.mountPoint) (\($0.fsType))" }.joined(separator: ", ")
        }
        return try journaled(name, "mount", mounted) { () throws(DMSnapError) -> [ImageView] in try locked { () throws(DMSnapError) -> [ImageView] in
            let set = try existing(name)
            let v = try view(scope: .all)
            var fsTypes: [DeviceName: String] = [:]
            for m in set.members where v.devices[m.base] != nil {
                let type: String?
                do throws(KernelError) { type = try kernel.probeSignature(m.base.path) } catch { throw .kernel(error) }
                fsTypes[m.base] = type
            }
            let (updated, mountPlan) = try plan { () throws(PlanError) in
                try Planner.mountImages(set, device: device, dir: dir, view: v, fsTypes: fsTypes,
                                        dirEmpty: kernel.isEmptyDirectory(dir), dirDevice: kernel.fileSystemDevice(of: dir))
            }
            try execute(mountPlan, for: set.name)
            return zip(set.members, updated.members).compactMap { old, new in old.view == nil ? new.view : nil }
        } }
    }

    /// Unmounts frozen images `mount` mounted: all of the set's, or the one `target` (a device
    /// or a mount point) names. Returns the views removed.
    @discardableResult
    public func umount(_ name: String, target: String? = nil) throws(DMSnapError) -> [ImageView] {
        _ = try existing(name)
        let unmounted = { (views: [ImageView]) in
            "frozen image unmounted from " + views.map(\.mountPoint).joined(separator: ", ")
        }
        return try journaled(name, "umount", unmounted) { () throws(DMSnapError) -> [ImageView] in try locked { () throws(DMSnapError) -> [ImageView] in
            let set = try existing(name)
            let v = try view(scope: .of([set]))
            let (updated, umountPlan) = try plan { () throws(PlanError) in try Planner.unmountImages(set, target: target, view: v) }
            try execute(umountPlan, for: set.name)
            return zip(set.members, updated.members).compactMap { old, new in new.view == nil ? old.view : nil }
        } }
    }
}
