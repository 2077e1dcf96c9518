import SystemPackage

// What the kernel says about devices and mounts, as values. The kernel layer reads them; the
// planner decides from them.

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

/// A line of /proc/self/mountinfo.
public struct MountEntry: Hashable, Sendable {
    public var number: DeviceNumber
    public var mountPoint: String
    public var fsType: String
    public var source: String
    /// The directory of the filesystem mounted here: `/`, or a subdirectory for a bind mount.
    public var root: String
    /// The mount's own options (`rw,nosuid,relatime`) and the filesystem's (`rw,errors=remount-ro`).
    public var options: [String]
    public var superOptions: [String]
    public init(number: DeviceNumber, mountPoint: String, fsType: String, source: String, root: String = "/",
                options: [String] = [], superOptions: [String] = []) {
        self.number = number
        self.mountPoint = mountPoint
        self.fsType = fsType
        self.source = source
        self.root = root
        self.options = options
        self.superOptions = superOptions
    }
}

/// A loop device's backing file and the device of the filesystem the file lives on.
public struct LoopBacking: Hashable, Sendable {
    public var file: String
    public var fileSystemDevice: DeviceNumber
    public init(file: String, fileSystemDevice: DeviceNumber) {
        self.file = file
        self.fileSystemDevice = fileSystemDevice
    }
}

/// Why a path could not be looked up: the errno of the call that failed, or what was wrong.
public struct LookupFailure: Error, Hashable, Sendable, CustomStringConvertible {
    public var errno: Errno?
    public var detail: String
    public init(errno: Errno?, detail: String = "") {
        self.errno = errno
        self.detail = detail
    }
    /// `No such file or directory`, `not a block device`, or (without an errno) the detail.
    public var description: String {
        if errno == .notBlockDevice { return "not a block device" }
        if let errno { return errno.description }
        return detail.isEmpty ? "lookup failed" : detail
    }
}
