/// What dmsnap needs from the kernel: device-mapper ioctls, filesystem freeze/thaw,
/// block device facts and signature probes. `LibDeviceMapper` is the real one;
/// `FakeDeviceMapper` models it in memory for unit tests. Every call is synchronous.
public protocol DeviceMapperControl: AnyObject {
    /// True when the process may issue device-mapper ioctls (root / CAP_SYS_ADMIN).
    var isPrivileged: Bool { get }

    // MARK: device-mapper
    func list() throws(DeviceMapperError) -> [DeviceListEntry]
    /// nil when no device of that name exists.
    func info(_ name: DeviceName) throws(DeviceMapperError) -> DeviceInfo?
    func table(_ name: DeviceName) throws(DeviceMapperError) -> Table
    func status(_ name: DeviceName) throws(DeviceMapperError) -> [TargetStatus]
    /// Devices the live table uses.
    func dependencies(_ name: DeviceName) throws(DeviceMapperError) -> [DeviceNumber]
    /// Creates a device and activates `table` (load + resume). `hidden` keeps udev's disk
    /// rules (by-uuid links, auto-mount) off it, like lvm2's `-real` layers.
    func create(_ name: DeviceName, uuid: String, table: Table, hidden: Bool) throws(DeviceMapperError)
    /// Loads the inactive table slot.
    func load(_ name: DeviceName, table: Table) throws(DeviceMapperError)
    /// Drops the inactive table slot.
    func clearInactive(_ name: DeviceName) throws(DeviceMapperError)
    /// `lockfs: false` skips the kernel's own filesystem freeze (needed when dmsnap froze it).
    func suspend(_ name: DeviceName, lockfs: Bool) throws(DeviceMapperError)
    /// Resumes; swaps in the inactive table when one is loaded.
    func resume(_ name: DeviceName) throws(DeviceMapperError)
    func remove(_ name: DeviceName) throws(DeviceMapperError)

    // MARK: block devices and filesystems
    /// A block device's number and size; fails for anything that is not a block device.
    func blockDevice(at path: String) throws(DeviceMapperError) -> BlockDeviceInfo
    /// True when someone else holds the device open exclusively (mounted, claimed by dm, …).
    func isClaimed(_ path: String) throws(DeviceMapperError) -> Bool
    /// The first filesystem / RAID / LVM / partition-table signature libblkid finds, if any.
    func probeSignature(_ path: String) throws(DeviceMapperError) -> String?
    /// Reads the first `bytes` bytes (fewer if the device is smaller).
    func readHeader(_ path: String, bytes: Int) throws(DeviceMapperError) -> [UInt8]
    /// Writes `bytes` zero bytes at offset 0 and syncs them.
    func zeroHeader(_ path: String, bytes: Int) throws(DeviceMapperError)
    func mounts() throws(DeviceMapperError) -> [MountEntry]
    func syncFilesystem(_ mountPoint: String) throws(DeviceMapperError)
    func freeze(_ mountPoint: String) throws(DeviceMapperError)
    func thaw(_ mountPoint: String) throws(DeviceMapperError)
}

public struct DeviceListEntry: Hashable, Sendable {
    public var name: DeviceName
    public var number: DeviceNumber
    public init(name: DeviceName, number: DeviceNumber) {
        self.name = name
        self.number = number
    }
}

public struct DeviceInfo: Hashable, Sendable {
    public var name: DeviceName
    public var uuid: String
    public var number: DeviceNumber
    public var openCount: Int
    public var suspended: Bool
    public var hasLiveTable: Bool
    public var hasInactiveTable: Bool
    public var readOnly: Bool

    public init(name: DeviceName, uuid: String, number: DeviceNumber, openCount: Int, suspended: Bool,
                hasLiveTable: Bool, hasInactiveTable: Bool, readOnly: Bool) {
        self.name = name
        self.uuid = uuid
        self.number = number
        self.openCount = openCount
        self.suspended = suspended
        self.hasLiveTable = hasLiveTable
        self.hasInactiveTable = hasInactiveTable
        self.readOnly = readOnly
    }
}

/// One line of `dmsetup status`: the same four fields as a table line, with the target's
/// status text in `params`.
public typealias TargetStatus = TargetLine

public struct BlockDeviceInfo: Hashable, Sendable {
    public var path: String
    public var number: DeviceNumber
    public var size: Sectors
    public var logicalBlockSize: UInt32
    public init(path: String, number: DeviceNumber, size: Sectors, logicalBlockSize: UInt32) {
        self.path = path
        self.number = number
        self.size = size
        self.logicalBlockSize = logicalBlockSize
    }
}

public struct MountEntry: Hashable, Sendable {
    public var number: DeviceNumber
    public var mountPoint: String
    public var fsType: String
    public var source: String
    public init(number: DeviceNumber, mountPoint: String, fsType: String, source: String) {
        self.number = number
        self.mountPoint = mountPoint
        self.fsType = fsType
        self.source = source
    }
}

/// A failed kernel call: which call, on which device, and the errno the kernel gave.
public struct DeviceMapperError: Error, Hashable, Sendable, CustomStringConvertible {
    public var call: String
    public var device: String
    public var errno: Int32
    public var detail: String

    public init(call: String, device: String, errno: Int32, detail: String = "") {
        self.call = call
        self.device = device
        self.errno = errno
        self.detail = detail
    }

    /// `vg-root: resume failed: Device or resource busy`
    public var description: String {
        var reason = errno != 0 ? errnoDescription(errno) : ""
        if !detail.isEmpty { reason = reason.isEmpty ? detail : "\(reason) (\(detail))" }
        if reason.isEmpty { reason = "failed" }
        return "\(device): \(call) failed: \(reason)"
    }
}
