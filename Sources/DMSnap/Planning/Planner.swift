import FoundationEssentials

/// A request to snapshot a set of devices.
public struct TakeRequest: Hashable, Sendable {
    public var set: String
    /// (device, cow) as given: a device is a dm name, `/dev/mapper/NAME` or `/dev/dm-N`; a COW is a block device path.
    public var pairs: [(device: String, cow: String)]
    public var chunkSize: String?
    public var force: Bool

    public init(set: String, pairs: [(device: String, cow: String)], chunkSize: String? = nil, force: Bool = false) {
        self.set = set
        self.pairs = pairs
        self.chunkSize = chunkSize
        self.force = force
    }

    /// Parses `DEVICE=COW`.
    public static func pair(_ text: String) throws(PlanError) -> (device: String, cow: String) {
        guard let eq = text.firstIndex(of: "="), eq != text.startIndex, text.index(after: eq) != text.endIndex else {
            throw PlanError(text, "expected DEVICE=COW")
        }
        return (String(text[..<eq]), String(text[text.index(after: eq)...]))
    }

    public static func == (a: TakeRequest, b: TakeRequest) -> Bool {
        a.set == b.set && a.chunkSize == b.chunkSize && a.force == b.force
            && a.pairs.map { [$0.device, $0.cow] } == b.pairs.map { [$0.device, $0.cow] }
    }
    public func hash(into h: inout Hasher) {
        h.combine(set)
        for p in pairs { h.combine(p.device); h.combine(p.cow) }
    }

    /// What planning this request needs looked up (see `KernelView.gather`). Device paths — given,
    /// or `/dev/mapper/NAME` for a device given by name — are only stat'ed and asked for their size
    /// (no I/O: a device may be suspended); COWs are probed too. Read in full: the named devices,
    /// their would-be bases, and (added by gather) the dm devices behind the paths.
    public var lookups: (paths: [String], probePaths: [String], scope: KernelView.Scope) {
        var paths: [String] = []
        var named: [String] = []
        var names: Set<DeviceName> = []
        for p in pairs {
            if p.device.hasPrefix("/") {
                paths.append(p.device)
            } else if let name = try? DeviceName(p.device) {
                named.append(name.path)
                names.insert(name)
                if let base = try? DMSnapNaming.baseName(for: name) { names.insert(base) }
            }
        }
        return (paths + named, pairs.map(\.cow).filter { $0.hasPrefix("/") }, .devices(names))
    }
}

/// How a set member's live device looks in the kernel right now.
public enum MemberState: Hashable, Sendable {
    case snapshot(SnapshotStatus?)
    case merging(SnapshotStatus?)
    case original
    case missing(String)
    case unexpected(String)
}

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
                throw PlanError(spec, error.errno == 0 ? error.detail : errnoDescription(error.errno))
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
            let name = try resolve(pair.device, view)
            guard let dev = view.devices[name] else { throw PlanError(pair.device, "no such device-mapper device") }
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
            if info.uuid.hasPrefix(DMSnapNaming.uuidPrefix)
                || table.targets.contains(where: { $0.type.hasPrefix("snapshot") }) {
                throw PlanError(name.value, "already part of a snapshot")
            }
            if !request.force, let owner = ["LVM-": "LVM", "CRYPT-": "cryptsetup", "mpath-": "multipath", "stratis-": "Stratis"]
                .first(where: { info.uuid.hasPrefix($0.key) })?.value {
                throw PlanError(name.value, "owned by \(owner) (uuid \(info.uuid)); it may reload the table and silently drop the snapshot (use --force to override)")
            }
            usedNumbers[info.number] = pair.device
            let base: DeviceName
            do { base = try DMSnapNaming.baseName(for: name) } catch {
                throw PlanError(name.value, "name too long to add '\(DMSnapNaming.baseSuffix)'")
            }
            guard view.devices[base] == nil else { throw PlanError(name.value, "hidden device \(base) already exists") }

            // The COW.
            let cowPath = pair.cow
            guard cowPath.hasPrefix("/") else { throw PlanError(cowPath, "COW must be a block device path") }
            let cow: BlockDeviceInfo
            switch view.blocks[cowPath] {
            case let .success(b)?: cow = b
            case let .failure(e)?: throw PlanError(cowPath, e.errno == ENOTBLK_ ? "not a block device" : (e.errno == 0 ? e.detail : errnoDescription(e.errno)))
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
            if view.sets.contains(where: { $0.members.contains { $0.cowNumber == cow.number } }) {
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
            let minimum = Sectors(chunk.value * 3)
            if cow.size < minimum {
                throw PlanError(cowPath, "COW too small: \(cow.size.bytes) bytes, needs at least \(minimum.bytes) (header, metadata and one data chunk)")
            }
            if !request.force, let sig = view.signatures[cowPath] {
                throw PlanError(cowPath, "COW carries a \(sig) signature; refusing to overwrite it (use --force)")
            }
            usedNumbers[cow.number] = cowPath
            members.append(SnapshotSet.Member(
                device: name, number: info.number, uuid: info.uuid, originalTable: table, base: base,
                baseUUID: DMSnapNaming.baseUUID(set: setName, index: index), cow: cowPath, cowNumber: cow.number,
                cowSize: cow.size))
        }

        let set = SnapshotSet(name: setName, created: now, phase: .taking, chunk: chunk, members: members)
        return (set, takePlan(set, view: view))
    }

    /// Bases are created and every table is loaded before the window; the window holds only
    /// freeze → suspend → resume, and commits once every device runs its snapshot table.
    static func takePlan(_ set: SnapshotSet, view: KernelView) -> Plan {
        // Recorded first, so a killed take can always be found and recovered.
        var steps: [Step] = [Step(.save(set.with(phase: .taking)), undo: [.deleteState(set.name)])]
        let headerBytes = headerBytes(set.chunk)
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
        for mp in mountPoints.compactMap({ $0 }) { steps.append(Step(.syncFilesystem(mp))) }
        for mp in mountPoints.compactMap({ $0 }) { steps.append(Step(.freeze(mp), undo: [.thaw(mp)])) }
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
        for mp in mountPoints.compactMap({ $0 }) { steps.append(Step(.thaw(mp))) }
        steps.append(Step(.save(set.with(phase: .active))))
        return Plan(steps: steps, commitIndex: commit)
    }

    /// The snapshot table for a base this plan creates, naming it by path (its number does not
    /// exist yet; the executor resolves it before loading).
    static func takeTable(_ m: SnapshotSet.Member, chunk: Sectors, merge: Bool = false) -> Table {
        try! Table([TargetLine(start: 0, length: m.size, type: merge ? "snapshot-merge" : "snapshot",
                               params: "\(m.base.path) \(m.cowNumber) P \(chunk)")])
    }

    /// How much of a COW is wiped: its header chunk, at least 4 KiB.
    static func headerBytes(_ chunk: Sectors) -> Int { Int(max(chunk.bytes, minChunkBytes)) }

    // MARK: existing sets

    public static func memberState(_ m: SnapshotSet.Member, chunk: Sectors, view: KernelView) -> MemberState {
        guard let live = view.devices[m.device] else { return .missing("\(m.device) does not exist") }
        guard let base = view.devices[m.base] else { return .missing("base device \(m.base) does not exist") }
        guard let table = live.table else { return .unexpected("\(m.device) has no active table") }
        let status = live.status.first.flatMap { try? SnapshotStatus(parsing: $0.params) }
        if table == m.snapshotTable(baseNumber: base.info.number, chunk: chunk, merge: false) { return .snapshot(status) }
        if table == m.snapshotTable(baseNumber: base.info.number, chunk: chunk, merge: true) { return .merging(status) }
        if table == m.originalTable { return .original }
        return .unexpected("\(m.device) runs an unexpected table: \(table.description.replacingNewlines())")
    }

    static func requireSettled(_ set: SnapshotSet) throws(PlanError) {
        switch set.phase {
        case .taking, .discarding:
            throw PlanError(set.name.value, "set was interrupted while \(set.phase.rawValue); run 'dmsnap recover \(set.name)'")
        case .active, .merging: break
        }
    }

    static func baseNumber(_ m: SnapshotSet.Member, _ view: KernelView) -> DeviceNumber {
        view.devices[m.base]?.info.number ?? DeviceNumber(major: 0, minor: 0)
    }

    /// Starts merging every member not merging yet. All are suspended before any is resumed, so
    /// every merge starts at the same moment; the plan commits once all are suspended.
    /// Returns nil when every member already merges.
    public static func startMerge(_ set: SnapshotSet, view: KernelView) throws(PlanError) -> Plan? {
        try requireRoot(view)
        try requireSettled(set)
        var toStart: [SnapshotSet.Member] = []
        for m in set.members {
            switch memberState(m, chunk: set.chunk, view: view) {
            case let .snapshot(status):
                switch status {
                case .invalid?, .overflow?:
                    throw PlanError(m.device.value, "snapshot is invalid (COW overflowed or failed); it cannot be merged: use 'dmsnap discard \(set.name)'")
                case .mergeFailed?:
                    throw PlanError(m.device.value, "merge failed earlier; see 'dmsnap status \(set.name)'")
                default: toStart.append(m)
                }
            case let .merging(status):
                if status == .mergeFailed {
                    throw PlanError(m.device.value, "merge failed (I/O error on the COW or the device); see 'dmsnap status \(set.name)'")
                }
            case let .missing(why), let .unexpected(why):
                throw PlanError(set.name.value, "\(why); run 'dmsnap recover \(set.name)'")
            case .original:
                throw PlanError(set.name.value, "\(m.device) no longer runs its snapshot; run 'dmsnap recover \(set.name)'")
            }
        }
        if toStart.isEmpty { return nil }
        var steps: [Step] = []
        for m in toStart {
            steps.append(Step(.load(m.device, m.snapshotTable(baseNumber: baseNumber(m, view), chunk: set.chunk, merge: true)),
                              undo: [.clearInactive(m.device)]))
        }
        steps.append(Step(.save(set.with(phase: .merging)), undo: [.save(set)]))
        for m in toStart {
            let current = m.snapshotTable(baseNumber: baseNumber(m, view), chunk: set.chunk, merge: false)
            steps.append(Step(.suspend(m.device, lockfs: true), undo: [.load(m.device, current), .resume(m.device)]))
        }
        let commit = steps.count - 1
        for m in toStart { steps.append(Step(.resume(m.device))) }
        return Plan(steps: steps, commitIndex: commit)
    }

    /// Once every merge is complete: restore each original table, remove the bases, wipe the COW
    /// headers and forget the set.
    public static func finishMerge(_ set: SnapshotSet, view: KernelView) throws(PlanError) -> Plan {
        try requireRoot(view)
        for m in set.members {
            switch memberState(m, chunk: set.chunk, view: view) {
            case let .merging(status):
                guard status?.mergeComplete == true else {
                    throw PlanError(m.device.value, "merge not complete (\(status?.description ?? "no status"))")
                }
            default:
                throw PlanError(m.device.value, "is not merging")
            }
        }
        return restorePlan(set, view: view, merge: true)
    }

    /// Throws every change away: restores the original tables. Every device must be closed.
    public static func discard(_ set: SnapshotSet, view: KernelView) throws(PlanError) -> Plan {
        try requireRoot(view)
        try requireSettled(set)
        for m in set.members {
            switch memberState(m, chunk: set.chunk, view: view) {
            case .snapshot: break
            case .merging: throw PlanError(set.name.value, "set is merging; a merge cannot be discarded")
            case let .missing(why), let .unexpected(why):
                throw PlanError(set.name.value, "\(why); run 'dmsnap recover \(set.name)'")
            case .original:
                throw PlanError(set.name.value, "\(m.device) no longer runs its snapshot; run 'dmsnap recover \(set.name)'")
            }
            if let mp = view.mountPoints(of: m.number).first {
                throw PlanError(m.device.value, "is mounted on \(mp); unmount it before discarding")
            }
            if let open = view.devices[m.device]?.info.openCount, open > 0 {
                throw PlanError(m.device.value, "is open (\(open) users); close it before discarding")
            }
        }
        return restorePlan(set, view: view, merge: false)
    }

    static func restorePlan(_ set: SnapshotSet, view: KernelView, merge: Bool) -> Plan {
        var steps: [Step] = []
        for m in set.members {
            steps.append(Step(.load(m.device, m.originalTable), undo: [.clearInactive(m.device)]))
        }
        if !merge { steps.append(Step(.save(set.with(phase: .discarding)), undo: [.save(set)])) }
        for m in set.members {
            let current = m.snapshotTable(baseNumber: baseNumber(m, view), chunk: set.chunk, merge: merge)
            steps.append(Step(.suspend(m.device, lockfs: true), undo: [.load(m.device, current), .resume(m.device)]))
        }
        for m in set.members {
            let back = m.snapshotTable(baseNumber: baseNumber(m, view), chunk: set.chunk, merge: merge)
            steps.append(Step(.resume(m.device), undo: [.load(m.device, back), .suspend(m.device, lockfs: true), .resume(m.device)]))
        }
        let commit = steps.count - 1
        for m in set.members { steps.append(Step(.remove(m.base))) }
        let headerBytes = headerBytes(set.chunk)
        for m in set.members { steps.append(Step(.zeroHeader(m.cow, bytes: headerBytes))) }
        steps.append(Step(.deleteState(set.name)))
        return Plan(steps: steps, commitIndex: commit)
    }
}

#if canImport(Glibc)
import Glibc
let ENOTBLK_ = ENOTBLK
#else
let ENOTBLK_: Int32 = 15
#endif
