import DMSnapModel

/// COW files: the checks before a take creates or uses one, and its size.
extension Planner {
    /// Share of the COW's filesystem a new COW file must leave free (the monitor's default
    /// `--keep-free` too): a sparse file takes its space only as the snapshot writes.
    public static let keepFreeFraction = 0.05

    /// The size a new COW file gets for `policy`: whole chunks, at least the kernel's minimum
    /// (else refused), at most what the origin can use (clamped: `clamped` is true).
    public static func fileCOWSize(_ policy: COWSizePolicy, origin: Sectors, chunk: Sectors,
                                   path: String) throws(PlanError) -> (size: Sectors, clamped: Bool) {
        let bytes = policy.bytes(origin: origin)
        let chunks = (bytes + chunk.bytes - 1) / chunk.bytes
        let size = Sectors(chunks * chunk.value)
        let minimum = ExceptionStore.minimum(chunk: chunk)
        guard size >= minimum else {
            throw PlanError(path, "COW size \(policy) is \(ByteCount.text(bytes)), below the minimum of \(ByteCount.text(minimum.bytes)) (header, metadata and one data chunk)")
        }
        let maximum = ExceptionStore.usefulMaximum(origin: origin, chunk: chunk)
        return size > maximum ? (maximum, true) : (size, false)
    }

    static func fileMember(index: Int, name: DeviceName, info: DeviceInfo, table: Table, base: DeviceName, setName: SetName,
                           path: String, facts: FileFacts, sizeText: String?, request: TakeRequest, chunk: Sectors,
                           view: KernelView, others: [SnapshotSet.Member]) throws(PlanError) -> SnapshotSet.Member {
        switch facts.kind {
        case .symlink: throw PlanError(path, "COW is a symbolic link; give the file's own path (dmsnap never follows a link to a COW)")
        case .directory: throw PlanError(path, "COW is a directory; give a file in it, or use --cow-dir \(path)")
        case .other: throw PlanError(path, "COW is neither a regular file nor a block device")
        case .missing, .regular, .blockDevice: break
        }
        if facts.isVolatile, !request.volatile {
            throw PlanError(path, "COW file would be on \(facts.fileSystemType) (memory): the snapshot would be lost at reboot; use --volatile to accept that")
        }
        if let use = facts.inUse { throw PlanError(path, "COW file is in use (\(use))") }
        if let other = others.first(where: { $0.cowFile != nil && (try? view.files[$0.cow]?.get())?.canonicalPath == facts.canonicalPath }) {
            throw PlanError(path, "used twice (also for \(other.device))")
        }
        if let owner = view.sets.first(where: { $0.members.contains { $0.cowFile != nil && ($0.cow == path || $0.cow == facts.canonicalPath) } }) {
            throw PlanError(path, "COW file is already used by snapshot set \(owner.name)")
        }
        let policy: COWSizePolicy
        do { policy = try COWSizePolicy(parsing: sizeText ?? request.cowSize ?? COWSizePolicy.default.description) } catch {
            throw PlanError(sizeText == nil ? "--cow-size" : path, error.description)
        }
        let size: Sectors
        if facts.kind == .regular {
            if let sizeText { throw PlanError(path, "exists (\(ByteCount.text(facts.size))); a size (:\(sizeText)) is only for a COW file dmsnap creates") }
            if !request.force {
                if let sig = facts.signature {
                    throw PlanError(path, "exists and carries a \(sig) signature, not a dmsnap COW; refusing to overwrite it (use --force)")
                }
                if facts.header.contains(where: { $0 != 0 }) {
                    throw PlanError(path, "exists and holds data (its first 4 KiB are not zero), not a dmsnap COW; refusing to overwrite it (use --force)")
                }
            }
            size = Sectors(facts.size / chunk.bytes * chunk.value)
            let minimum = ExceptionStore.minimum(chunk: chunk)
            guard size >= minimum else {
                throw PlanError(path, "COW too small: \(facts.size) bytes, needs at least \(minimum.bytes) (header, metadata and one data chunk)")
            }
        } else {
            size = try fileCOWSize(policy, origin: table.size, chunk: chunk, path: path).size
        }
        var member = SnapshotSet.Member(
            device: name, number: info.number, uuid: info.uuid, originalTable: table, base: base,
            baseUUID: DMSnapNaming.baseUUID(set: setName, index: index), cow: path,
            cowNumber: DeviceNumber(major: 0, minor: 0), cowSize: size)
        member.cowFile = COWFile(created: facts.kind == .missing, directIO: request.directIO, volatile: facts.isVolatile)
        return member
    }

    /// Refuses COW files their filesystems have no room for: each needs its size (an existing
    /// file: what it has not allocated yet), files on one filesystem together, plus the margin.
    static func refuseLackOfSpace(_ members: [SnapshotSet.Member], _ view: KernelView, _ request: TakeRequest) throws(PlanError) {
        var byFileSystem: [DeviceNumber: (needed: UInt64, facts: FileFacts, members: [SnapshotSet.Member])] = [:]
        for m in members where m.cowFile != nil {
            guard case let .success(f)? = view.files[m.cow] else { continue }
            var needed = m.cowSize.bytes
            if f.kind == .regular { needed = m.cowSize.bytes - min(m.cowSize.bytes, f.allocated) }
            byFileSystem[f.fileSystemDevice, default: (0, f, [])].needed += needed
            byFileSystem[f.fileSystemDevice]!.members.append(m)
        }
        for (_, fs) in byFileSystem.sorted(by: { $0.key < $1.key }) {
            let margin = UInt64(Double(fs.facts.totalBytes) * keepFreeFraction)
            guard fs.needed + margin > fs.facts.freeBytes else { continue }
            let m = fs.members[0]
            let what = fs.members.count > 1 ? "\(fs.members.count) COW files need \(ByteCount.text(fs.needed))"
                : fs.facts.kind == .regular ? "the COW file needs its unallocated \(ByteCount.text(fs.needed))"
                : "the COW file for \(m.device) needs \(ByteCount.text(fs.needed)) (\(request.cowSize ?? COWSizePolicy.default.description) of it unless DEVICE=COW:SIZE says otherwise)"
            throw PlanError(m.cow, "not enough space on \(FileFacts.directory(of: fs.facts.canonicalPath))'s filesystem: \(what) plus a 5% margin (\(ByteCount.text(margin))), \(ByteCount.text(fs.facts.freeBytes)) free (use a smaller --cow-size or another directory)")
        }
    }

    /// The filesystem (device) each COW file of `members` is on.
    static func fileSystems(_ members: [SnapshotSet.Member], _ view: KernelView) -> [String: DeviceNumber] {
        var out: [String: DeviceNumber] = [:]
        for m in members where m.cowFile != nil {
            if case let .success(f)? = view.files[m.cow] { out[m.cow] = f.fileSystemDevice }
        }
        return out
    }
}

extension KernelView {
    /// True when `path` was looked up and is a block device.
    public func isBlockDevice(_ path: String) -> Bool {
        if case .success? = blocks[path] { true } else { false }
    }
}
