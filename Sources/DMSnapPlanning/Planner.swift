// DMSnapPlanning — the pure planner: from a request and a `KernelView` (a value read beforehand)
// to a `Plan` of steps with compensations, or a `PlanError` that changes nothing. Depends on the
// model only: no I/O, no environment, no kernel.
import DMSnapModel
import FoundationEssentials

/// Pure planning: from a kernel view and a request to a Plan, or a PlanError saying what is wrong.
/// Every check a user's input can fail happens here, before the first change.
public enum Planner {
    public static let defaultChunk = Sectors(8)
    public static let minChunkBytes: UInt64 = 4096
    public static let maxChunkBytes: UInt64 = 512 * 1024

    public static func chunk(_ text: String?) throws(PlanError) -> Sectors {
        guard let text else { return defaultChunk }
        let bytes: UInt64
        do { bytes = try SizeParser.bytes(text) } catch { throw PlanError("chunk size", error.description) }
        guard bytes >= minChunkBytes, bytes <= maxChunkBytes, bytes & (bytes - 1) == 0 else {
            throw PlanError("chunk size", "'\(text)' must be a power of two from 4k to 512k")
        }
        return Sectors(bytes / 512)
    }

    static func requireRoot(_ view: KernelView) throws(PlanError) {
        guard view.privileged else { throw PlanError("", "must be run as root") }
    }

    /// Resolves a device argument to a dm device name.
    static func resolve(_ spec: String, _ view: KernelView) throws(PlanError) -> DeviceName {
        var raw = spec
        if spec.hasPrefix("/dev/mapper/") {
            raw = String(spec.dropFirst("/dev/mapper/".count))
        } else if spec.hasPrefix("/") {
            switch view.blocks[spec] {
            case let .success(block)?:
                guard let (name, _) = view.device(numbered: block.number) else {
                    throw PlanError(spec, "not a device-mapper device")
                }
                return name
            case let .failure(error)?:
                throw PlanError(spec, error.description)
            case nil:
                throw PlanError(spec, "not looked up")
            }
        }
        let name: DeviceName
        do { name = try DeviceName(raw) } catch { throw PlanError(spec, error.description) }
        guard view.devices[name] != nil else { throw PlanError(spec, "no such device-mapper device") }
        return name
    }

    // MARK: take

    public static func take(_ request: TakeRequest, view: KernelView, now: Date = Date()) throws(PlanError) -> (SnapshotSet, Plan) {
        try requireRoot(view)
        let setName: SetName
        do { setName = try SetName(request.set) } catch { throw PlanError("", error.description) }
        if view.sets.contains(where: { $0.name == setName }) { throw PlanError(setName.value, "set already exists") }
        let chunk = try chunk(request.chunkSize)
        guard !request.pairs.isEmpty else { throw PlanError(setName.value, "no DEVICE=COW given") }

        var members: [SnapshotSet.Member] = []
        var usedNumbers: [DeviceNumber: String] = [:]
        for (index, pair) in request.pairs.enumerated() {
            var name = try resolve(pair.device, view)
            guard var dev = view.devices[name] else { throw PlanError(pair.device, "no such device-mapper device") }
            // A crypt device's table holds the volume key, which dmsnap never copies or stores:
            // the layer below it is snapshotted instead (its filesystem, above, is frozen with it).
            var namedAs: DeviceName?
            if dev.keyed {
                guard dev.dependencies.count == 1, let (lower, lowerDevice) = view.device(numbered: dev.dependencies[0]) else {
                    let below = dev.dependencies.map { view.devicePaths[$0] ?? $0.description }.joined(separator: ", ")
                    throw PlanError(name.value, "is a dm-crypt device on \(below.isEmpty ? "no device" : below), which is not a device-mapper device: dmsnap never copies a crypt table (it holds the key) and snapshots the layer below instead; put a dm linear device under the container (dmsetup create NAME --table '0 SECTORS linear DEVICE 0', then open the container on /dev/mapper/NAME)")
                }
                namedAs = name
                name = lower
                dev = lowerDevice
            }
            let info = dev.info
            if let other = usedNumbers[info.number] { throw PlanError(pair.device, "given twice (also as \(other))") }
            guard !info.suspended else { throw PlanError(name.value, "device is suspended") }
            guard info.hasLiveTable, let table = dev.table else { throw PlanError(name.value, "device has no active table") }
            guard !info.hasInactiveTable else {
                throw PlanError(name.value, "device has an inactive table loaded (another tool is changing it)")
            }
            if let set = view.sets.first(where: { $0.members.contains { $0.device == name || $0.base == name } }) {
                throw PlanError(name.value, "already in snapshot set \(set.name)")
            }
            if DMSnapNaming.isHidden(uuid: info.uuid) || table.targets.contains(where: \.params.isSnapshot) {
                throw PlanError(name.value, "already part of a snapshot")
            }
            // The base would get a copy of the table, and the set's record would keep it: a
            // disk-encryption key must never be copied, stored or loaded by dmsnap.
            if table.holdsSecret {
                throw PlanError(name.value, "its table holds a dm-crypt key, which dmsnap never copies or stores; snapshot the device below it instead")
            }
            if !request.force, let owner = ["LVM-": "LVM", "CRYPT-": "cryptsetup", "mpath-": "multipath", "stratis-": "Stratis"]
                .first(where: { info.uuid.hasPrefix($0.key) })?.value {
                let below = owner == "LVM" ? "; name the device below it (the physical volume's) instead: its filesystems are frozen with it" : ""
                throw PlanError(name.value, "owned by \(owner) (uuid \(info.uuid)); it may reload the table and silently drop the snapshot\(below) (use --force to override)")
            }
            usedNumbers[info.number] = pair.device
            let base: DeviceName
            do { base = try DMSnapNaming.baseName(for: name) } catch {
                throw PlanError(name.value, "name too long to add '\(DMSnapNaming.baseSuffix)'")
            }
            guard view.devices[base] == nil else { throw PlanError(name.value, "hidden device \(base) already exists") }

            // The COW: a block device, or a file dmsnap runs on a loop device.
            guard let cowPath = request.cowPath(pair) else {
                throw PlanError(pair.device, "no COW given: name one as \(pair.device)=COW, or give --cow-dir DIR")
            }
            guard cowPath.hasPrefix("/") else { throw PlanError(cowPath, "COW must be an absolute path (a block device or a file)") }
            let sizeText = TakeRequest.cowSize(of: pair)
            if pair.cow.isEmpty, let dir = request.cowDirectory {
                switch view.files[dir] {
                case let .success(f)? where f.kind == .directory || f.kind == .symlink: break
                case .success?: throw PlanError(dir, "--cow-dir is not a directory")
                case let .failure(e)?: throw PlanError(dir, "--cow-dir: \(e)")
                case nil: break
                }
            }
            // Under /dev only block devices: a typo there must not become a COW file.
            let fileAllowed = !cowPath.hasPrefix("/dev/")
            if fileAllowed, case let .success(facts)? = view.files[cowPath], facts.kind != .blockDevice {
                var member = try fileMember(index: index, name: name, info: info, table: table, base: base, setName: setName,
                                            path: cowPath, facts: facts, sizeText: sizeText, request: request, chunk: chunk,
                                            view: view, others: members)
                member.namedAs = namedAs
                members.append(member)
                continue
            }
            if fileAllowed, case let .failure(e)? = view.files[cowPath], !view.isBlockDevice(cowPath) {
                if e.errno == .noSuchFileOrDirectory || e.errno == .notDirectory {
                    throw PlanError(cowPath, "directory \(FileFacts.directory(of: cowPath)) does not exist")
                }
                throw PlanError(cowPath, e.description)
            }
            if let sizeText {
                throw PlanError(cowPath, "a size (:\(sizeText)) applies to COW files; a block device is used whole")
            }
            let cow: BlockDeviceInfo
            switch view.blocks[cowPath] {
            case let .success(b)?: cow = b
            case let .failure(e)?: throw PlanError(cowPath, e.description)
            case nil: throw PlanError(cowPath, "not looked up")
            }
            if cow.number == info.number { throw PlanError(cowPath, "COW is the device \(name) itself") }
            if view.underlying(info.number).contains(cow.number) {
                throw PlanError(cowPath, "COW is a device underlying \(name)")
            }
            if let other = usedNumbers[cow.number] { throw PlanError(cowPath, "used twice (also as \(other))") }
            if let (dmName, dmDev) = view.device(numbered: cow.number) {
                if dmDev.info.suspended { throw PlanError(cowPath, "COW device \(dmName) is suspended") }
                if view.sets.contains(where: { $0.members.contains { $0.device == dmName } }) {
                    throw PlanError(cowPath, "COW device \(dmName) is in a snapshot set")
                }
            }
            if view.sets.contains(where: { $0.members.contains { $0.cowFile == nil && $0.cowNumber == cow.number } }) {
                throw PlanError(cowPath, "COW is already used by another snapshot set")
            }
            if let mp = view.mountPoints(of: cow.number).first { throw PlanError(cowPath, "COW is mounted on \(mp)") }
            if view.claimed[cowPath] == true { throw PlanError(cowPath, "COW is in use (open exclusively by another user or device)") }
            if chunk.bytes % UInt64(cow.logicalBlockSize) != 0 {
                throw PlanError(cowPath, "chunk size \(chunk.bytes) is not a multiple of the COW's logical block size \(cow.logicalBlockSize)")
            }
            if case let .success(devBlock)? = view.blocks[name.path], chunk.bytes % UInt64(devBlock.logicalBlockSize) != 0 {
                throw PlanError(name.value, "chunk size \(chunk.bytes) is not a multiple of the logical block size \(devBlock.logicalBlockSize)")
            }
            let minimum = ExceptionStore.minimum(chunk: chunk)
            if cow.size < minimum {
                throw PlanError(cowPath, "COW too small: \(cow.size.bytes) bytes, needs at least \(minimum.bytes) (header, metadata and one data chunk)")
            }
            if !request.force, let sig = view.signatures[cowPath] {
                throw PlanError(cowPath, "COW carries a \(sig) signature; refusing to overwrite it (use --force)")
            }
            usedNumbers[cow.number] = cowPath
            var member = SnapshotSet.Member(
                device: name, number: info.number, uuid: info.uuid, originalTable: table, base: base,
                baseUUID: DMSnapNaming.baseUUID(set: setName, index: index), cow: cowPath, cowNumber: cow.number,
                cowSize: cow.size)
            member.namedAs = namedAs
            members.append(member)
        }

        try refuseRecursion(members, view, fileSystems: fileSystems(members, view))
        try refuseFloor(request, members, view)
        if !request.force { try refuseUnfreezable(members, view) }
        try refuseLackOfSpace(members, view, request)
        let cgroups = try cgroupsToFreeze(request, view)
        let hooks = try view.hooks.get()
        var set = SnapshotSet(name: setName, created: now, phase: .taking, chunk: chunk, members: members)
        set.bootID = view.bootID
        set.cgroups = cgroups.isEmpty ? nil : cgroups
        set.hooks = hooks.isEmpty ? nil : hooks
        return (set, takePlan(set, view: view))
    }

    /// A COW whose writes would land on a device of the set wedges the kernel in the freeze
    /// window (the loop worker waits on the frozen filesystem while the thaw waits on the loop,
    /// KERNEL.md): refuse a COW stacked on a member, or a loop over a file on a filesystem of the
    /// set (on a member, or on a device stacked on one, through any number of loops).
    static func refuseRecursion(_ members: [SnapshotSet.Member], _ view: KernelView,
                                fileSystems: [String: DeviceNumber] = [:]) throws(PlanError) {
        let numbers = Set(members.map(\.number))
        func onTheSet(_ n: DeviceNumber) -> SnapshotSet.Member? { member(stackedOn: n, members, view) }
        let recursion = "writes to the snapshot would go into the snapshot"
        for m in members {
            // A COW file starts from the device of its filesystem, a block COW from itself; from
            // there, through the loops whose files they are on.
            let file = m.cowFile != nil
            guard let start = file ? fileSystems[m.cow] : m.cowNumber else { continue }
            if file, let owner = onTheSet(start) {
                throw PlanError(m.cow, "COW file is on a filesystem of the set (on \(owner.device)): \(recursion)")
            }
            // (a block COW that is a member itself is refused earlier)
            if !file, !numbers.contains(start), let owner = onTheSet(start) {
                throw PlanError(m.cow, "COW is stacked on \(owner.device), a device of the set: \(recursion)")
            }
            var n = start
            for _ in 0..<8 {
                guard let backing = view.loopBackings[n] else { break }
                if let owner = onTheSet(backing.fileSystemDevice) {
                    throw PlanError(m.cow, "\(file ? "COW file is on" : "COW is") a loop over \(backing.file), on a filesystem of the set (on \(owner.device)): \(recursion)")
                }
                n = backing.fileSystemDevice
            }
        }
    }

    /// Bases are created and every table is loaded before the window; the window holds only
    /// freeze → suspend → resume, and commits once every device runs its snapshot table.
    static func takePlan(_ set: SnapshotSet, view: KernelView) -> Plan {
        // Recorded first, so a killed take can always be found and recovered.
        var steps: [Step] = [Step(.save(set.with(phase: .taking)), undo: [.deleteState(set.name)])]
        let headerBytes = headerBytes(set.chunk)
        steps += attachSteps(set)
        if set.members.contains(where: { $0.cowFile != nil }) {
            // again, now with the loops' numbers (recover matches the kernel's tables by them)
            steps.append(Step(.save(set.with(phase: .taking))))
        }
        for m in set.members {
            steps.append(Step(.create(m.base, uuid: m.baseUUID, table: m.originalTable, hidden: true), undo: [.remove(m.base)]))
        }
        for m in set.members {
            // Loading the snapshot table writes a header to the COW: a rollback zeroes it again,
            // so the COW is left as this run found it after its own wipe (reusable, no stale header).
            steps.append(Step(.zeroHeader(m.cow, bytes: headerBytes), undo: [.zeroHeader(m.cow, bytes: headerBytes)]))
        }
        // The base's number is only known after create; the table names it by path, which the
        // executor turns into MAJ:MIN before loading (see Executor.resolvingDevicePaths).
        for m in set.members {
            steps.append(Step(.load(m.device, takeTable(m, chunk: set.chunk)), undo: [.clearInactive(m.device)]))
        }
        let mountPoints = set.members.map { view.mountPoints(of: $0.number).first }
        // the filesystems on the members, then those stacked on them (LVs on a PV, a crypt device's)
        let frozen = freezePoints(set.members, view)
        // The application first (its processes stopped where they are), then the filesystems.
        for cg in set.cgroups ?? [] { steps.append(Step(.freezeCgroup(cg), undo: [.thawCgroup(cg)])) }
        for mp in frozen { steps.append(Step(.syncFilesystem(mp))) }
        for mp in frozen { steps.append(Step(.freeze(mp), undo: [.thaw(mp)])) }
        for (m, mp) in zip(set.members, mountPoints) {
            // Undo loads the live table again rather than clearing: if that load fails, the
            // resume that must follow (never leave a device suspended) still cannot swap in a
            // half-made table unnoticed — the failure is reported with its fix.
            steps.append(Step(.suspend(m.device, lockfs: mp == nil),
                              undo: [.load(m.device, m.originalTable), .resume(m.device)]))
        }
        for m in set.members {
            steps.append(Step(.resume(m.device),
                              undo: [.load(m.device, m.originalTable), .suspend(m.device, lockfs: false), .resume(m.device)]))
        }
        let commit = steps.count - 1
        for mp in frozen { steps.append(Step(.thaw(mp))) }
        for cg in set.cgroups ?? [] { steps.append(Step(.thawCgroup(cg))) }
        steps.append(Step(.save(set.with(phase: .active))))
        return Plan(steps: steps, commitIndex: commit)
    }

    /// The filesystems a take freezes: the one mounted on each member, then one mounted on each
    /// device stacked on a member (in the order found), each once.
    public static func freezePoints(_ members: [SnapshotSet.Member], _ view: KernelView) -> [String] {
        var out: [String] = []
        let numbers = members.map(\.number) + members.flatMap { view.stacked(above: $0.number) }
        for n in numbers {
            if let mp = view.mountPoints(of: n).first, !out.contains(mp) { out.append(mp) }
        }
        return out
    }

    /// A device stacked on a member that is open but has nothing stacked on it and no mounted
    /// filesystem (swap, a virtual machine's disk, a database's raw device) cannot be frozen: its
    /// image would only be crash-consistent. Refused with the list (`--force` takes it anyway).
    static func refuseUnfreezable(_ members: [SnapshotSet.Member], _ view: KernelView) throws(PlanError) {
        for m in members {
            let open = view.stacked(above: m.number).compactMap { n -> String? in
                guard (view.holders[n] ?? []).isEmpty, view.mountPoints(of: n).isEmpty,
                      let (name, d) = view.device(numbered: n), d.info.openCount > 0 else { return nil }
                return name.value
            }
            guard open.isEmpty else {
                throw PlanError(m.device.value, "\(open.joined(separator: ", ")) \(open.count == 1 ? "is" : "are") stacked on it and open, but not by a mounted filesystem dmsnap can freeze (the image would only be crash-consistent); close \(open.count == 1 ? "it" : "them") or use --force")
            }
        }
    }

    /// The snapshot table a plan loads: it names the base by name (a base the plan creates has no
    /// number yet; the executor resolves it to MAJ:MIN before loading).
    static func takeTable(_ m: SnapshotSet.Member, chunk: Sectors, merge: Bool = false) -> Table {
        m.snapshotTableAttaching(base: .mapper(m.base), chunk: chunk, merge: merge)
    }

    /// Creating (when dmsnap makes it) and attaching every COW file of `set` to a loop device.
    static func attachSteps(_ set: SnapshotSet, creating: Bool = true) -> [Step] {
        var steps: [Step] = []
        for m in set.members {
            guard let file = m.cowFile else { continue }
            if creating, file.created { steps.append(Step(.createFile(m.cow, bytes: m.cowSize.bytes), undo: [.deleteFile(m.cow)])) }
            steps.append(Step(.attachLoop(m.cow, directIO: file.directIO), undo: [.detachLoop(m.cow)]))
        }
        return steps
    }

    /// How much of a COW is wiped: its header chunk, at least 4 KiB.
    static func headerBytes(_ chunk: Sectors) -> Int { Int(max(chunk.bytes, minChunkBytes)) }
}
