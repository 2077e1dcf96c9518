// DMSnapTesting — test doubles: an in-memory kernel, a memory store, fault injection. Linked by the
// unit tests, dmsnap-test and dmsnap-probe; never by the product.
import DMSnap
import SystemPackage
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An in-memory kernel for unit tests. It models what dmsnap relies on — tables in live and
/// inactive slots, suspend/resume swapping tables, devices held open by mounts and by other
/// devices' tables, filesystem freeze, and the lockfs-after-FIFREEZE trap — records every call
/// in `trace`, and fails any call on demand.
public final class FakeKernel: KernelControl {
    public struct Device: Hashable, Sendable {
        public var uuid: String
        public var number: DeviceNumber
        public var live: Table?
        public var inactive: Table?
        public var suspended = false
        /// Opens from outside device-mapper (mounts, processes).
        public var externalOpens = 0
        public var readOnly = false
    }

    public struct Block: Hashable, Sendable {
        public var size: Sectors
        public var logicalBlockSize: UInt32 = 512
        public var signature: String?
        /// Opened exclusively by something other than device-mapper (e.g. mounted).
        public var claimed = false
        /// Bytes at the start that were zeroed by `zeroHeader`.
        public var zeroedHeader = 0
        /// What `readHeader` returns (zero-padded or cut to the size asked).
        public var header: [UInt8] = []
    }

    public var isPrivileged = true
    /// The boot id the kernel reports; change it to model a reboot.
    public var bootID: String? = "boot-1"
    public private(set) var devices: [DeviceName: Device] = [:]
    public var blocks: [String: Block] = [:]
    public var blockNumbers: [String: DeviceNumber] = [:]
    /// Loop devices over files: what `loopBacking(of:)` reports.
    public var loopBackings: [DeviceNumber: LoopBacking] = [:]
    public var mountTable: [MountEntry] = []
    public private(set) var frozen: Set<String> = []
    /// Status text per device for snapshot targets; defaults to a fresh snapshot.
    public var statusOverride: [DeviceName: String] = [:]
    /// Devices whose current snapshot target hit an I/O error: their status says `Merge failed`
    /// until a fresh target replaces it (a resume that swaps in another table), as in the kernel.
    public var failedTargets: Set<DeviceName> = []
    /// Every call, in order: `"suspend live nolockfs"`.
    public private(set) var trace: [String] = []
    /// Fails the call whose 0-based index in `trace` equals this.
    public var failAtCall: Int?
    /// Fails every call whose trace line matches.
    public var failWhen: (@Sendable (String) -> Bool)?
    public var failErrno: Errno = .ioError

    private var nextMinor: UInt32 = 0
    public static let dmMajor: UInt32 = 253

    public init() {}

    // MARK: set-up helpers for tests

    /// Adds a plain block device (a loop device, a disk) at `path`.
    @discardableResult
    public func addBlock(_ path: String, number: DeviceNumber, size: Sectors, signature: String? = nil) -> DeviceNumber {
        blocks[path] = Block(size: size, signature: signature)
        blockNumbers[path] = number
        return number
    }

    /// Adds an active dm device with `table`, as a user's tools would have made it.
    @discardableResult
    public func addDevice(_ name: DeviceName, table: Table, uuid: String = "") -> DeviceNumber {
        let number = DeviceNumber(major: Self.dmMajor, minor: nextMinor)
        nextMinor += 1
        devices[name] = Device(uuid: uuid, number: number, live: table)
        return number
    }

    /// Mounts the dm device `name` at `mountPoint`.
    public func mount(_ name: DeviceName, at mountPoint: String, fsType: String = "ext4", root: String = "/",
                      options: [String] = ["rw", "relatime"], superOptions: [String] = ["rw"]) {
        guard var d = devices[name] else { return }
        d.externalOpens += 1
        devices[name] = d
        mountTable.append(MountEntry(number: d.number, mountPoint: mountPoint, fsType: fsType, source: name.path, root: root,
                                     options: options, superOptions: superOptions))
    }

    /// Someone (swap, a virtual machine) opens the dm device `name` without mounting it.
    public func openDevice(_ name: DeviceName) { devices[name]?.externalOpens += 1 }

    public func unmount(_ mountPoint: String) {
        guard let i = mountTable.firstIndex(where: { $0.mountPoint == mountPoint }) else { return }
        let entry = mountTable.remove(at: i)
        if let name = devices.first(where: { $0.value.number == entry.number })?.key {
            devices[name]?.externalOpens -= 1
        }
    }

    public func device(_ name: DeviceName) -> Device? { devices[name] }
    public func resetTrace() { trace = [] }

    // MARK: the model

    func record(_ line: String, device: String, call: String) throws(KernelError) {
        let index = trace.count
        trace.append(line)
        if failAtCall == index || (failWhen?(line) ?? false) {
            throw KernelError(call: call, device: device, errno: failErrno, detail: "injected")
        }
    }

    /// The number of a dm device named by `/dev/mapper/NAME` or `/dev/dm-N`.
    func dmNumber(_ path: String) -> DeviceNumber? {
        if path.hasPrefix("/dev/mapper/"), let name = try? DeviceName(String(path.dropFirst(12))) {
            return devices[name]?.number
        }
        if path.hasPrefix("/dev/dm-"), let minor = UInt32(path.dropFirst(8)) {
            return devices.values.first { $0.number.minor == minor }?.number
        }
        return nil
    }

    private func number(ofPath path: String) -> DeviceNumber? {
        if let n = blockNumbers[path] { return n }
        if path.hasPrefix("/dev/mapper/"), let name = try? DeviceName(String(path.dropFirst(12))) {
            return devices[name]?.number
        }
        return nil
    }

    /// The number a table's device reference names, if it exists.
    private func resolve(_ ref: DeviceRef) -> DeviceNumber? {
        switch ref {
        case let .number(n): n
        case let .mapper(name): devices[name]?.number
        case let .path(p): number(ofPath: p)
        }
    }

    /// Device numbers a table refers to (numbers and /dev paths that resolve).
    func references(_ table: Table) -> [DeviceNumber] { table.devices.compactMap(resolve) }

    private func openCount(_ d: Device) -> Int {
        d.externalOpens + devices.values.filter { other in
            [other.live, other.inactive].compactMap { $0 }.contains { references($0).contains(d.number) }
        }.count
    }

    private func existing(_ name: DeviceName, _ call: String) throws(KernelError) -> Device {
        guard let d = devices[name] else { throw KernelError(call: call, device: name.value, errno: .noSuchAddressOrDevice) }
        return d
    }

    private func checkTable(_ table: Table, for name: DeviceName, call: String) throws(KernelError) {
        let known = Set(blockNumbers.values).union(devices.values.map(\.number))
        for ref in references(table) where !known.contains(ref) {
            throw KernelError(call: call, device: name.value, errno: .noSuchAddressOrDevice, detail: "no device \(ref)")
        }
        for ref in table.devices where resolve(ref) == nil {
            throw KernelError(call: call, device: name.value, errno: .noSuchAddressOrDevice, detail: "no device \(ref)")
        }
        for t in table.targets {
            guard let p = t.params.snapshot, let origin = resolve(p.origin) else { continue }
            // The origin is claimed exclusively by the snapshot.
            if let holder = devices.first(where: { $0.key != name && $0.value.live.map { references($0).contains(origin) && $0.targets.contains { $0.params.isSnapshot } } ?? false }) {
                throw KernelError(call: call, device: name.value, errno: .resourceBusy, detail: "origin held by \(holder.key)")
            }
        }
    }

    public func list() throws(KernelError) -> [DeviceListEntry] {
        try record("list", device: "device-mapper", call: "list")
        return devices.map { DeviceListEntry(name: $0.key, number: $0.value.number) }.sorted { $0.name < $1.name }
    }

    public func info(_ name: DeviceName) throws(KernelError) -> DeviceInfo? {
        try record("info \(name)", device: name.value, call: "info")
        guard let d = devices[name] else { return nil }
        return DeviceInfo(name: name, uuid: d.uuid, number: d.number, openCount: openCount(d), suspended: d.suspended,
                          hasLiveTable: d.live != nil, hasInactiveTable: d.inactive != nil, readOnly: d.readOnly)
    }

    public func table(_ name: DeviceName) throws(KernelError) -> Table {
        try record("table \(name)", device: name.value, call: "table")
        guard let t = try existing(name, "table").live else {
            throw KernelError(call: "table", device: name.value, errno: .noSuchAddressOrDevice, detail: "no live table")
        }
        return t
    }

    public func status(_ name: DeviceName) throws(KernelError) -> [TargetStatus] {
        try record("status \(name)", device: name.value, call: "status")
        let d = try existing(name, "status")
        return (d.live?.targets ?? []).map { t in
            var text = ""
            if let p = t.params.snapshot, let cow = p.cow.number {
                let cowSize = blocks.first { blockNumbers[$0.key] == cow }?.value.size
                    ?? devices.values.first { $0.number == cow }?.live?.size ?? Sectors(0)
                text = failedTargets.contains(name) ? "Merge failed"
                    : statusOverride[name] ?? "\(p.chunk.value * 2)/\(cowSize) \(p.chunk.value * 2)"
            }
            return TargetStatus(start: t.start, length: t.length, type: t.type, text: text)
        }
    }

    public func dependencies(_ name: DeviceName) throws(KernelError) -> [DeviceNumber] {
        try record("deps \(name)", device: name.value, call: "deps")
        return try existing(name, "deps").live.map(references) ?? []
    }

    public func create(_ name: DeviceName, uuid: String, table: Table, hidden: Bool) throws(KernelError) {
        try record("create \(name) \(uuid)\(hidden ? " hidden" : "")", device: name.value, call: "create")
        guard devices[name] == nil else { throw KernelError(call: "create", device: name.value, errno: .fileExists) }
        if !uuid.isEmpty, devices.values.contains(where: { $0.uuid == uuid }) {
            throw KernelError(call: "create", device: name.value, errno: .resourceBusy, detail: "uuid in use")
        }
        try checkTable(table, for: name, call: "create")
        addDevice(name, table: table, uuid: uuid)
    }

    public func load(_ name: DeviceName, table: Table) throws(KernelError) {
        try record("load \(name) \(table.targets.map(\.type).joined(separator: ","))", device: name.value, call: "load")
        let d = try existing(name, "load")
        // The kernel allows one merge per origin: a second snapshot-merge over a live one fails.
        if table.targets.contains(where: { $0.type == "snapshot-merge" }), d.live?.targets.contains(where: { $0.type == "snapshot-merge" }) == true {
            throw KernelError(call: "load", device: name.value, errno: .invalidArgument, detail: "A snapshot is already merging")
        }
        try checkTable(table, for: name, call: "load")
        devices[name]?.inactive = table
    }

    public func clearInactive(_ name: DeviceName) throws(KernelError) {
        try record("clear \(name)", device: name.value, call: "clear")
        _ = try existing(name, "clear")
        devices[name]?.inactive = nil
        pruneLoops()
    }

    public func suspend(_ name: DeviceName, lockfs: Bool) throws(KernelError) {
        try record("suspend \(name)\(lockfs ? "" : " nolockfs")", device: name.value, call: "suspend")
        let d = try existing(name, "suspend")
        if lockfs, mountTable.contains(where: { $0.number == d.number && frozen.contains($0.mountPoint) }) {
            // The kernel's own freeze fails on a filesystem the caller already froze.
            throw KernelError(call: "suspend", device: name.value, errno: .resourceBusy)
        }
        devices[name]?.suspended = true
    }

    public func resume(_ name: DeviceName) throws(KernelError) {
        try record("resume \(name)", device: name.value, call: "resume")
        let d = try existing(name, "resume")
        if let t = d.inactive {
            devices[name]?.live = t
            devices[name]?.inactive = nil
            failedTargets.remove(name)
        }
        devices[name]?.suspended = false
        pruneLoops()
    }

    public func remove(_ name: DeviceName) throws(KernelError) {
        try record("remove \(name)", device: name.value, call: "remove")
        let d = try existing(name, "remove")
        guard openCount(d) == 0 else { throw KernelError(call: "remove", device: name.value, errno: .resourceBusy) }
        devices[name] = nil
        pruneLoops()
    }

    public func blockDevice(at path: String) throws(KernelError) -> BlockDeviceInfo {
        try record("blockdev \(path)", device: path, call: "stat")
        if let b = blocks[path], let n = blockNumbers[path] {
            return BlockDeviceInfo(path: path, number: n, size: b.size, logicalBlockSize: b.logicalBlockSize)
        }
        if path.hasPrefix("/dev/mapper/"), let name = try? DeviceName(String(path.dropFirst(12))), let d = devices[name] {
            return BlockDeviceInfo(path: path, number: d.number, size: d.live?.size ?? 0, logicalBlockSize: 512)
        }
        if path.hasPrefix("/dev/dm-"), let minor = UInt32(path.dropFirst(8)),
           let d = devices.values.first(where: { $0.number.minor == minor }) {
            return BlockDeviceInfo(path: path, number: d.number, size: d.live?.size ?? 0, logicalBlockSize: 512)
        }
        throw KernelError(call: "stat", device: path, errno: .noSuchFileOrDirectory)
    }

    public func path(of number: DeviceNumber) -> String? {
        if let path = blockNumbers.first(where: { $0.value == number })?.key { return path }
        return devices.first { $0.value.number == number }.map { $0.key.path }
    }

    public func loopBacking(of number: DeviceNumber) -> LoopBacking? { loopBackings[number] }

    /// Every guardian event, in order: `start vg0-live,vg1-live(nolockfs) /mnt/0`, `open`,
    /// `close`, `stop`, each with the number of kernel calls made before it (`trace.count`).
    public private(set) var guardianEvents: [(event: String, at: Int)] = []

    final class FakeGuard: WindowGuard {
        let kernel: FakeKernel
        init(_ kernel: FakeKernel) { self.kernel = kernel }
        func windowOpens() { kernel.guardianEvents.append(("open", kernel.trace.count)) }
        func windowCloses() { kernel.guardianEvents.append(("close", kernel.trace.count)) }
        func stop() { kernel.guardianEvents.append(("stop", kernel.trace.count)) }
    }

    /// Makes starting a guardian fail (it is not a kernel call, so it is not in `trace`).
    public var failGuardian = false

    public func startGuardian(devices: [(name: DeviceName, lockfs: Bool)], mountPoints: [String],
                              cgroups: [String]) throws(KernelError) -> any WindowGuard {
        if failGuardian { throw KernelError(call: "start window guardian", device: "dmsnap", errno: .resourceTemporarilyUnavailable) }
        guardianEvents.append(("start \(devices.map { "\($0.name)\($0.lockfs ? "" : "(nolockfs)")" }.joined(separator: ",")) \(mountPoints.joined(separator: ","))"
                                + (cgroups.isEmpty ? "" : " cgroups \(cgroups.joined(separator: ","))"), trace.count))
        return FakeGuard(self)
    }

    /// What identifies each block device (by path), as libblkid and sysfs would say.
    public var identitiesByPath: [String: [VolumeIdentity]] = [:]

    public func identities(of path: String) -> [VolumeIdentity] { identitiesByPath[path] ?? [] }

    public func blockDevices(with identity: VolumeIdentity) -> [String] {
        identitiesByPath.filter { $0.value.contains(identity) && blocks[$0.key] != nil }.map(\.key).sorted()
    }

    /// `hold`/`release` of udev waits, each with the number of kernel calls made before it.
    public internal(set) var udevHolds: [(event: String, calls: Int)] = []

    public func holdUdevWaits(_ hold: Bool) {
        // a release without a hold is a no-op, as in the real kernel
        if hold || udevHolds.last?.event == "hold" { udevHolds.append((hold ? "hold" : "release", trace.count)) }
    }

    public func holders(of number: DeviceNumber) -> [DeviceNumber] {
        devices.values.filter { d in d.live.map(references)?.contains(number) == true }.map(\.number).sorted()
    }

    public func isClaimed(_ path: String) throws(KernelError) -> Bool {
        try record("claimed \(path)", device: path, call: "open")
        let n: DeviceNumber
        var claimed = false
        if let b = blocks[path], let number = blockNumbers[path] {
            n = number
            claimed = b.claimed
        } else if let number = dmNumber(path) {
            n = number
        } else {
            throw KernelError(call: "open", device: path, errno: .noSuchFileOrDirectory)
        }
        let heldByDM = devices.values.contains { d in [d.live, d.inactive].compactMap { $0 }.contains { references($0).contains(n) } }
        return claimed || heldByDM || mountTable.contains { $0.number == n }
    }

    public func probeSignature(_ path: String) throws(KernelError) -> String? {
        try record("probe \(path)", device: path, call: "blkid probe")
        guard blocks[path] != nil || dmNumber(path) != nil else { throw KernelError(call: "blkid probe", device: path, errno: .noSuchFileOrDirectory) }
        return blocks[path]?.signature
    }

    public func readHeader(_ path: String, bytes: Int) throws(KernelError) -> [UInt8] {
        try record("read \(path) \(bytes)", device: path, call: "read")
        if let f = files[path] { return Array((f.header + [UInt8](repeating: 0, count: bytes)).prefix(bytes)) }
        if let b = blocks[path] { return Array((b.header + [UInt8](repeating: 0, count: bytes)).prefix(bytes)) }
        if dmNumber(path) != nil { return [UInt8](repeating: 0, count: bytes) }
        throw KernelError(call: "open", device: path, errno: .noSuchFileOrDirectory)
    }

    /// What `readDirect` returns per path (a COW's exception store, a base's image); zeros
    /// past its end, up to the device's size.
    public var contents: [String: [UInt8]] = [:]

    public func readDirect(_ path: String, offset: UInt64, count: Int) throws(KernelError) -> [UInt8] {
        try record("readdirect \(path) \(offset) \(count)", device: path, call: "read")
        let size: UInt64
        if let b = blocks[path] {
            size = b.size.bytes
        } else if let n = dmNumber(path), let d = devices.values.first(where: { $0.number == n }) {
            size = d.live?.size.bytes ?? 0
        } else {
            throw KernelError(call: "open", device: path, errno: .noSuchFileOrDirectory)
        }
        guard offset < size else { return [] }
        let n = Int(min(UInt64(count), size - offset))
        let data = contents[path] ?? blocks[path]?.header ?? []
        return (0..<n).map { i in Int(offset) + i < data.count ? data[Int(offset) + i] : 0 }
    }

    /// Exports `contents[path]` (zeros to the device's size) raw, whatever the compression, to
    /// a real file or to nowhere (standard output); the digest is of the byte count.
    public func exportImage(_ path: String, to output: ExportOutput, compression: Compression, level: Int,
                            checksum: Bool, progress: (UInt64) -> Bool) throws(KernelError) -> ExportSummary {
        try record("export \(path)", device: path, call: "export")
        let size = try blockDevice(at: path).size.bytes
        guard progress(0) else { throw KernelError(call: "export", device: path, errno: .interrupted) }
        if case let .file(file, _) = output {
            let data = contents[path] ?? []
            let fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            guard fd >= 0 else { throw KernelError(call: "create", device: file, errno: Errno(rawValue: errno)) }
            _ = data.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            _ = ftruncate(fd, off_t(size))
            close(fd)
        }
        _ = progress(size)
        return ExportSummary(bytesRead: size, bytesWritten: size, seconds: 0, sha256: checksum ? "fake-\(size)" : nil)
    }

    /// A fake mount point (or a path in `existingFiles` under one) is on the mount's device; a
    /// real path of this machine is on "8:1"; anything else does not exist.
    public func fileSystemDevice(of path: String) -> DeviceNumber? {
        if let m = mountTable.filter({ path == $0.mountPoint || path.hasPrefix($0.mountPoint + "/") })
            .max(by: { $0.mountPoint.count < $1.mountPoint.count }) {
            return path == m.mountPoint || existingFiles.contains(path) ? m.number : nil
        }
        return access(path, F_OK) == 0 ? DeviceNumber(major: 8, minor: 1) : nil
    }

    /// COW files (see FakeKernel+Files), the directories they may go in, symlinks among the paths,
    /// the loops attached to files and the ones dmsnap still holds open.
    public var files: [String: FakeFile] = [:]
    /// cgroup directories, systemd units' cgroups, and the frozen cgroups.
    public var cgroupDirs: [String: CgroupFacts] = [:]
    public var unitCgroups: [String: String] = [:]
    public internal(set) var frozenCgroups: Set<String> = []
    /// Programs hooks may name, drop-ins per directory, how each program ends, what ran.
    public var executables: Set<String> = []
    public var hookDropIns: [String: [String]] = [:]
    public var hookOutcomes: [String: ProgramOutcome] = [:]
    /// How `dmsnap run`'s command ends (`runCommand`), and what it does while it runs.
    public var commandOutcome = ProgramOutcome(exitCode: 0)
    public var commandBody: (FakeKernel) -> Void = { _ in }
    public internal(set) var commandRuns: [(argv: [String], environment: [String: String])] = []
    /// Mount points whose unmount fails with EBUSY (a process has a file open there).
    public var busyMounts: Set<String> = []
    public internal(set) var hookRuns: [(argv: [String], environment: [String: String])] = []
    public var fileDirectories: [String: FakeDirectory] = [:]
    public var symlinks: Set<String> = []
    public internal(set) var loopFiles: [DeviceNumber: String] = [:]
    var openLoops: Set<DeviceNumber> = []

    /// Paths under a fake mount that exist.
    public var existingFiles: Set<String> = []

    public func zeroHeader(_ path: String, bytes: Int) throws(KernelError) {
        try record("zero \(path) \(bytes)", device: path, call: "write header")
        if var f = files[path] {
            f.header = [UInt8](repeating: 0, count: bytes) + f.header.dropFirst(bytes)
            f.signature = nil
            files[path] = f
            return
        }
        guard var b = blocks[path] else {
            // A dm device used as a COW: nothing to model beyond its existence.
            if dmNumber(path) != nil { return }
            throw KernelError(call: "open", device: path, errno: .noSuchFileOrDirectory)
        }
        b.zeroedHeader = max(b.zeroedHeader, bytes)
        b.signature = nil
        b.header = [UInt8](repeating: 0, count: bytes) + b.header.dropFirst(bytes)
        blocks[path] = b
    }

    @discardableResult
    public func wipeSignatures(_ path: String) throws(KernelError) -> [String] {
        try record("wipe \(path)", device: path, call: "wipe signature")
        if var f = files[path] {
            let wiped = f.signature.map { [$0] } ?? []
            f.signature = nil
            files[path] = f
            return wiped
        }
        guard var b = blocks[path] else {
            if dmNumber(path) != nil { return [] }
            throw KernelError(call: "open", device: path, errno: .noSuchFileOrDirectory)
        }
        let wiped = b.signature.map { [$0] } ?? []
        b.signature = nil
        blocks[path] = b
        return wiped
    }

    public func mounts() throws(KernelError) -> [MountEntry] {
        try record("mounts", device: "/proc/self/mountinfo", call: "read")
        return mountTable
    }

    /// Directories that exist (for mount points), and whether each is empty.
    public var directories: [String: Bool] = [:]

    public func createView(_ name: DeviceName, uuid: String, origin: DeviceName, size: Sectors, scratch: Sectors) throws(KernelError) {
        try record("createview \(name) \(origin)", device: name.value, call: "create")
        guard let o = devices[origin] else { throw KernelError(call: "create", device: name.value, errno: .noSuchAddressOrDevice) }
        guard devices[name] == nil else { throw KernelError(call: "create", device: name.value, errno: .fileExists) }
        // the scratch COW: a loop that exists as long as the view does
        let scratchNumber = DeviceNumber(major: 7, minor: 200 + UInt32(devices.count))
        blockNumbers["scratch:\(name)"] = scratchNumber
        blocks["scratch:\(name)"] = Block(size: scratch)
        addDevice(name, table: Table.single(size: size, .snapshot(SnapshotParams(origin: o.number, cow: scratchNumber, store: .transient, chunk: 8))), uuid: uuid)
    }

    public func mountFilesystem(_ device: String, at mountPoint: String, type: String, options: String) throws(KernelError) {
        try record("mount \(device) \(mountPoint) \(type) \(options)", device: mountPoint, call: "mount")
        guard directories[mountPoint] != nil else { throw KernelError(call: "mount", device: mountPoint, errno: .noSuchFileOrDirectory) }
        guard device.hasPrefix("/dev/mapper/"), let name = try? DeviceName(String(device.dropFirst(12))), devices[name] != nil else {
            throw KernelError(call: "mount", device: mountPoint, errno: .noSuchFileOrDirectory)
        }
        self.mount(name, at: mountPoint, fsType: type)
    }

    public func unmountFilesystem(_ mountPoint: String) throws(KernelError) {
        try record("umount \(mountPoint)", device: mountPoint, call: "umount")
        guard mountTable.contains(where: { $0.mountPoint == mountPoint }) else { throw KernelError(call: "umount", device: mountPoint, errno: .invalidArgument) }
        if busyMounts.contains(mountPoint) { throw KernelError(call: "umount", device: mountPoint, errno: .resourceBusy) }
        unmount(mountPoint)
    }

    public func restoreMount(_ entry: MountEntry, device: String, bindFrom: String?) throws(KernelError) {
        try record("mount again \(bindFrom ?? device) \(entry.mountPoint)", device: entry.mountPoint, call: "mount")
        let name = bindFrom.flatMap { from in mountTable.first { from == $0.mountPoint || from.hasPrefix($0.mountPoint + "/") } }.flatMap { m in devices.first { $0.value.number == m.number }?.key }
            ?? (device.hasPrefix("/dev/mapper/") ? try? DeviceName(String(device.dropFirst(12))) : nil)
        guard let name, devices[name] != nil else { throw KernelError(call: "mount", device: entry.mountPoint, errno: .noSuchFileOrDirectory) }
        mount(name, at: entry.mountPoint, fsType: entry.fsType, root: entry.root, options: entry.options, superOptions: entry.superOptions)
    }

    public func makeDirectory(_ path: String) throws(KernelError) {
        try record("mkdir \(path)", device: path, call: "mkdir")
        guard directories[path] == nil else { throw KernelError(call: "mkdir", device: path, errno: .fileExists) }
        directories[path] = true
    }

    public func removeDirectory(_ path: String) throws(KernelError) {
        try record("rmdir \(path)", device: path, call: "rmdir")
        guard directories.removeValue(forKey: path) != nil else { throw KernelError(call: "rmdir", device: path, errno: .noSuchFileOrDirectory) }
    }

    public func isEmptyDirectory(_ path: String) -> Bool? { directories[path] }

    /// How long each sync of a filesystem takes, in turn (a busy one: long, then shorter).
    public var syncDurations: [String: [Duration]] = [:]

    public func syncFilesystem(_ mountPoint: String) throws(KernelError) {
        try record("syncfs \(mountPoint)", device: mountPoint, call: "syncfs")
        if var d = syncDurations[mountPoint], !d.isEmpty {
            Glibc.usleep(UInt32(d.removeFirst().seconds * 1_000_000))
            syncDurations[mountPoint] = d
        }
    }

    public func freeze(_ mountPoint: String) throws(KernelError) {
        try record("freeze \(mountPoint)", device: mountPoint, call: "freeze")
        guard !frozen.contains(mountPoint) else { throw KernelError(call: "freeze", device: mountPoint, errno: .resourceBusy) }
        frozen.insert(mountPoint)
    }

    public func thaw(_ mountPoint: String) throws(KernelError) {
        try record("thaw \(mountPoint)", device: mountPoint, call: "thaw")
        guard frozen.remove(mountPoint) != nil else { throw KernelError(call: "thaw", device: mountPoint, errno: .invalidArgument) }
    }
}
