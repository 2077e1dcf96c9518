import DMSnap
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Test hook: wraps a kernel and makes its N-th *changing* call (create, load, clear, suspend,
/// resume, remove, zero, syncfs, freeze, thaw; counted from 1) fail with EIO, or kills the
/// process with SIGKILL just before that call. Only the `dmsnap-test` executable (the kernel
/// suite's build of the CLI) turns it on, when `DMSNAP_TEST_FAULT` is `fail:N` or `kill:N`.
public final class FaultInjector: KernelControl {
    public enum Mode: Sendable, Equatable {
        case fail(Int)
        case kill(Int)
        /// Sends the process this signal just before the N-th changing call (the call still runs).
        case signal(Int, Int32)
        /// Sleeps this many milliseconds just before the N-th changing call (the call still runs),
        /// or the N-th of the calls named `call` ("freeze": the N-th filesystem freeze): widens the
        /// gap between two steps, as a slow device or a busy filesystem would.
        case delay(Int, milliseconds: Int, call: String? = nil)
    }

    public let inner: any KernelControl
    public let mode: Mode
    public private(set) var changingCalls = 0

    public init(_ inner: any KernelControl, mode: Mode) {
        self.inner = inner
        self.mode = mode
    }

    /// Changing calls made so far, by kind ("freeze", "resume", …).
    private var callsByName: [String: Int] = [:]

    /// Parses `fail:N`, `kill:N`, `int:N` (SIGINT), `term:N` (SIGTERM), `delay:N:MS` and
    /// `delay:N:MS:CALL`.
    public static func mode(_ text: String) -> Mode? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count >= 2, let n = Int(parts[1]), n > 0 else { return nil }
        if parts[0] == "delay" {
            guard parts.count == 3 || parts.count == 4, let ms = Int(parts[2]), (1...60_000).contains(ms) else { return nil }
            guard parts.count == 4 else { return .delay(n, milliseconds: ms) }
            guard !parts[3].isEmpty else { return nil }
            return .delay(n, milliseconds: ms, call: String(parts[3]))
        }
        guard parts.count == 2 else { return nil }
        switch parts[0] {
        case "fail": return .fail(n)
        case "kill": return .kill(n)
        case "int": return .signal(n, SIGINT)
        case "term": return .signal(n, SIGTERM)
        default: return nil
        }
    }

    private func changing(_ call: String, _ device: String) throws(KernelError) {
        changingCalls += 1
        callsByName[call, default: 0] += 1
        switch mode {
        case let .fail(n) where n == changingCalls:
            throw KernelError(call: call, device: device, errno: .ioError, detail: "injected fault \(n)")
        case let .kill(n) where n == changingCalls:
            kill(getpid(), SIGKILL)
        case let .signal(n, sig) where n == changingCalls:
            kill(getpid(), sig)
        case let .delay(n, ms, nil) where n == changingCalls,
             .delay(let n, let ms, call?) where n == callsByName[call]:
            usleep(useconds_t(ms) * 1000)
        default: break
        }
    }

    public var isPrivileged: Bool { inner.isPrivileged }
    public var bootID: String? { inner.bootID }
    public func list() throws(KernelError) -> [DeviceListEntry] { try inner.list() }
    public func info(_ name: DeviceName) throws(KernelError) -> DeviceInfo? { try inner.info(name) }
    public func table(_ name: DeviceName) throws(KernelError) -> Table { try inner.table(name) }
    public func status(_ name: DeviceName) throws(KernelError) -> [TargetStatus] { try inner.status(name) }
    public func dependencies(_ name: DeviceName) throws(KernelError) -> [DeviceNumber] { try inner.dependencies(name) }
    public func create(_ name: DeviceName, uuid: String, table: Table, hidden: Bool) throws(KernelError) {
        try changing("create", name.value)
        try inner.create(name, uuid: uuid, table: table, hidden: hidden)
    }
    public func load(_ name: DeviceName, table: Table) throws(KernelError) {
        try changing("load", name.value)
        try inner.load(name, table: table)
    }
    public func clearInactive(_ name: DeviceName) throws(KernelError) {
        try changing("clear", name.value)
        try inner.clearInactive(name)
    }
    public func suspend(_ name: DeviceName, lockfs: Bool) throws(KernelError) {
        try changing("suspend", name.value)
        try inner.suspend(name, lockfs: lockfs)
    }
    public func resume(_ name: DeviceName) throws(KernelError) {
        try changing("resume", name.value)
        try inner.resume(name)
    }
    public func remove(_ name: DeviceName) throws(KernelError) {
        try changing("remove", name.value)
        try inner.remove(name)
    }
    public func blockDevice(at path: String) throws(KernelError) -> BlockDeviceInfo { try inner.blockDevice(at: path) }
    public func path(of number: DeviceNumber) -> String? { inner.path(of: number) }
    public func loopBacking(of number: DeviceNumber) -> LoopBacking? { inner.loopBacking(of: number) }
    public func startGuardian(devices: [(name: DeviceName, lockfs: Bool)], mountPoints: [String],
                              cgroups: [String]) throws(KernelError) -> any WindowGuard {
        try inner.startGuardian(devices: devices, mountPoints: mountPoints, cgroups: cgroups)
    }
    public func inspectCgroup(_ path: String) throws(KernelError) -> CgroupFacts { try inner.inspectCgroup(path) }
    public func cgroup(ofUnit name: String) -> String? { inner.cgroup(ofUnit: name) }
    public func freezeCgroup(_ path: String, timeout: Duration?) throws(KernelError) {
        try changing("freeze cgroup", path)
        try inner.freezeCgroup(path, timeout: timeout)
    }
    public func run(_ argv: [String], environment: [String: String], timeout: Duration?) throws(KernelError) -> ProgramOutcome {
        try inner.run(argv, environment: environment, timeout: timeout)
    }
    public func runCommand(_ argv: [String], environment: [String: String]) throws(KernelError) -> ProgramOutcome {
        try inner.runCommand(argv, environment: environment)
    }
    public func executable(_ program: String) -> String? { inner.executable(program) }
    public func hookFiles(in directory: String) -> [String] { inner.hookFiles(in: directory) }
    public func thawCgroup(_ path: String) throws(KernelError) {
        try changing("thaw cgroup", path)
        try inner.thawCgroup(path)
    }
    public func isClaimed(_ path: String) throws(KernelError) -> Bool { try inner.isClaimed(path) }
    public func holders(of number: DeviceNumber) -> [DeviceNumber] { inner.holders(of: number) }
    public func identities(of path: String) -> [VolumeIdentity] { inner.identities(of: path) }
    public func blockDevices(with identity: VolumeIdentity) -> [String] { inner.blockDevices(with: identity) }
    public func holdUdevWaits(_ hold: Bool) { inner.holdUdevWaits(hold) }
    public func probeSignature(_ path: String) throws(KernelError) -> String? { try inner.probeSignature(path) }
    public func readHeader(_ path: String, bytes: Int) throws(KernelError) -> [UInt8] {
        try inner.readHeader(path, bytes: bytes)
    }
    public func readDirect(_ path: String, offset: UInt64, count: Int) throws(KernelError) -> [UInt8] {
        try inner.readDirect(path, offset: offset, count: count)
    }
    public func zeroHeader(_ path: String, bytes: Int) throws(KernelError) {
        try changing("write header", path)
        try inner.zeroHeader(path, bytes: bytes)
    }
    public func wipeSignatures(_ path: String) throws(KernelError) -> [String] {
        try changing("wipe signature", path)
        return try inner.wipeSignatures(path)
    }
    public func exportImage(_ path: String, to output: ExportOutput, compression: Compression, level: Int,
                            checksum: Bool, progress: (UInt64) -> Bool) throws(KernelError) -> ExportSummary {
        try inner.exportImage(path, to: output, compression: compression, level: level, checksum: checksum, progress: progress)
    }
    public func fileSystemDevice(of path: String) -> DeviceNumber? { inner.fileSystemDevice(of: path) }
    public func mounts() throws(KernelError) -> [MountEntry] { try inner.mounts() }
    public func createView(_ name: DeviceName, uuid: String, origin: DeviceName, size: Sectors, scratch: Sectors) throws(KernelError) {
        try changing("create view", name.value)
        try inner.createView(name, uuid: uuid, origin: origin, size: size, scratch: scratch)
    }
    public func mountFilesystem(_ device: String, at mountPoint: String, type: String, options: String) throws(KernelError) {
        try changing("mount", mountPoint)
        try inner.mountFilesystem(device, at: mountPoint, type: type, options: options)
    }
    public func unmountFilesystem(_ mountPoint: String) throws(KernelError) {
        try changing("umount", mountPoint)
        try inner.unmountFilesystem(mountPoint)
    }
    public func restoreMount(_ entry: MountEntry, device: String, bindFrom: String?) throws(KernelError) {
        try changing("mount", entry.mountPoint)
        try inner.restoreMount(entry, device: device, bindFrom: bindFrom)
    }
    public func makeDirectory(_ path: String) throws(KernelError) {
        try changing("mkdir", path)
        try inner.makeDirectory(path)
    }
    public func removeDirectory(_ path: String) throws(KernelError) {
        try changing("rmdir", path)
        try inner.removeDirectory(path)
    }
    public func isEmptyDirectory(_ path: String) -> Bool? { inner.isEmptyDirectory(path) }
    public func inspectFile(_ path: String) throws(KernelError) -> FileFacts { try inner.inspectFile(path) }
    public func createFile(_ path: String, bytes: UInt64) throws(KernelError) {
        try changing("createfile", path)
        try inner.createFile(path, bytes: bytes)
    }
    public func growFile(_ path: String, to bytes: UInt64) throws(KernelError) {
        try changing("growfile", path)
        try inner.growFile(path, to: bytes)
    }
    public func deleteFile(_ path: String) throws(KernelError) {
        try changing("deletefile", path)
        try inner.deleteFile(path)
    }
    public func attachLoop(_ path: String, directIO: Bool) throws(KernelError) -> LoopAttachment {
        try changing("attachloop", path)
        return try inner.attachLoop(path, directIO: directIO)
    }
    public func releaseLoop(_ loop: LoopAttachment) { inner.releaseLoop(loop) }
    public func refreshLoopCapacity(_ number: DeviceNumber, file: String) throws(KernelError) -> Sectors {
        try changing("loopcapacity", file)
        return try inner.refreshLoopCapacity(number, file: file)
    }
    public func space(of path: String) throws(KernelError) -> (free: UInt64, total: UInt64) { try inner.space(of: path) }
    public func syncFilesystem(_ mountPoint: String) throws(KernelError) {
        try changing("syncfs", mountPoint)
        try inner.syncFilesystem(mountPoint)
    }
    public func freeze(_ mountPoint: String) throws(KernelError) {
        try changing("freeze", mountPoint)
        try inner.freeze(mountPoint)
    }
    public func thaw(_ mountPoint: String) throws(KernelError) {
        try changing("thaw", mountPoint)
        try inner.thaw(mountPoint)
    }
}
