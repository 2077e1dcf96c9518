#if canImport(Glibc)
import Glibc
#endif

/// Test hook: wraps a `DeviceMapperControl` and makes its N-th *changing* call (create, load,
/// clear, suspend, resume, remove, zero, syncfs, freeze, thaw; counted from 1) fail with EIO,
/// or kills the process with SIGKILL just before that call. The CLI turns it on only when
/// `DMSNAP_TEST_FAULT` is `fail:N` or `kill:N` (documented in README as a test hook).
public final class FaultInjector: DeviceMapperControl {
    public enum Mode: Sendable, Equatable {
        case fail(Int)
        case kill(Int)
    }

    public let inner: any DeviceMapperControl
    public let mode: Mode
    public private(set) var changingCalls = 0

    public init(_ inner: any DeviceMapperControl, mode: Mode) {
        self.inner = inner
        self.mode = mode
    }

    /// Parses `fail:N` / `kill:N`.
    public static func mode(_ text: String) -> Mode? {
        let parts = text.split(separator: ":")
        guard parts.count == 2, let n = Int(parts[1]), n > 0 else { return nil }
        switch parts[0] {
        case "fail": return .fail(n)
        case "kill": return .kill(n)
        default: return nil
        }
    }

    private func changing(_ call: String, _ device: String) throws(DeviceMapperError) {
        changingCalls += 1
        switch mode {
        case let .fail(n) where n == changingCalls:
            throw DeviceMapperError(call: call, device: device, errno: EIO, detail: "injected fault \(n)")
        case let .kill(n) where n == changingCalls:
            kill(getpid(), SIGKILL)
        default: break
        }
    }

    public var isPrivileged: Bool { inner.isPrivileged }
    public func list() throws(DeviceMapperError) -> [DeviceListEntry] { try inner.list() }
    public func info(_ name: DeviceName) throws(DeviceMapperError) -> DeviceInfo? { try inner.info(name) }
    public func table(_ name: DeviceName) throws(DeviceMapperError) -> Table { try inner.table(name) }
    public func status(_ name: DeviceName) throws(DeviceMapperError) -> [TargetStatus] { try inner.status(name) }
    public func dependencies(_ name: DeviceName) throws(DeviceMapperError) -> [DeviceNumber] { try inner.dependencies(name) }
    public func create(_ name: DeviceName, uuid: String, table: Table, hidden: Bool) throws(DeviceMapperError) {
        try changing("create", name.value)
        try inner.create(name, uuid: uuid, table: table, hidden: hidden)
    }
    public func load(_ name: DeviceName, table: Table) throws(DeviceMapperError) {
        try changing("load", name.value)
        try inner.load(name, table: table)
    }
    public func clearInactive(_ name: DeviceName) throws(DeviceMapperError) {
        try changing("clear", name.value)
        try inner.clearInactive(name)
    }
    public func suspend(_ name: DeviceName, lockfs: Bool) throws(DeviceMapperError) {
        try changing("suspend", name.value)
        try inner.suspend(name, lockfs: lockfs)
    }
    public func resume(_ name: DeviceName) throws(DeviceMapperError) {
        try changing("resume", name.value)
        try inner.resume(name)
    }
    public func remove(_ name: DeviceName) throws(DeviceMapperError) {
        try changing("remove", name.value)
        try inner.remove(name)
    }
    public func blockDevice(at path: String) throws(DeviceMapperError) -> BlockDeviceInfo { try inner.blockDevice(at: path) }
    public func isClaimed(_ path: String) throws(DeviceMapperError) -> Bool { try inner.isClaimed(path) }
    public func probeSignature(_ path: String) throws(DeviceMapperError) -> String? { try inner.probeSignature(path) }
    public func readHeader(_ path: String, bytes: Int) throws(DeviceMapperError) -> [UInt8] {
        try inner.readHeader(path, bytes: bytes)
    }
    public func zeroHeader(_ path: String, bytes: Int) throws(DeviceMapperError) {
        try changing("write header", path)
        try inner.zeroHeader(path, bytes: bytes)
    }
    public func mounts() throws(DeviceMapperError) -> [MountEntry] { try inner.mounts() }
    public func syncFilesystem(_ mountPoint: String) throws(DeviceMapperError) {
        try changing("syncfs", mountPoint)
        try inner.syncFilesystem(mountPoint)
    }
    public func freeze(_ mountPoint: String) throws(DeviceMapperError) {
        try changing("freeze", mountPoint)
        try inner.freeze(mountPoint)
    }
    public func thaw(_ mountPoint: String) throws(DeviceMapperError) {
        try changing("thaw", mountPoint)
        try inner.thaw(mountPoint)
    }
}
