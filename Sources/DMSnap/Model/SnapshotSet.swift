import FoundationEssentials

/// The persisted description of a snapshot set: everything needed to merge, discard or
/// rebuild it, without asking the kernel.
public struct SnapshotSet: Codable, Hashable, Sendable {
    /// Where the set's lifecycle stands. `taking` and `discarding` are transient: a set left in
    /// one of them was interrupted.
    public enum Phase: String, Codable, Hashable, Sendable {
        case taking, active, merging, discarding
    }

    public struct Member: Codable, Hashable, Sendable {
        /// The live device: keeps its name and number; runs the snapshot table after take.
        public var device: DeviceName
        public var number: DeviceNumber
        public var uuid: String
        /// The live device's table before take; restored by merge and discard.
        public var originalTable: Table
        /// Hidden device holding the frozen image.
        public var base: DeviceName
        public var baseUUID: String
        /// The COW block device.
        public var cow: String
        public var cowNumber: DeviceNumber
        public var cowSize: Sectors
        /// Size and hash of the base's first MiB right after take: `activate` refuses a base
        /// that changed since (the COW would no longer match it).
        public var baseFingerprint: String?

        public init(device: DeviceName, number: DeviceNumber, uuid: String, originalTable: Table, base: DeviceName,
                    baseUUID: String, cow: String, cowNumber: DeviceNumber, cowSize: Sectors) {
            self.device = device
            self.number = number
            self.uuid = uuid
            self.originalTable = originalTable
            self.base = base
            self.baseUUID = baseUUID
            self.cow = cow
            self.cowNumber = cowNumber
            self.cowSize = cowSize
        }

        public var size: Sectors { originalTable.size }

        /// The live device's table while the set is active.
        public func snapshotTable(baseNumber: DeviceNumber, chunk: Sectors, merge: Bool) -> Table {
            SnapshotParams(origin: baseNumber, cow: cowNumber, chunk: chunk).table(size: size, merge: merge)
        }
    }

    public var format = 1
    public var name: SetName
    public var created: Date
    public var phase: Phase
    public var chunk: Sectors
    public var members: [Member]

    public init(name: SetName, created: Date, phase: Phase, chunk: Sectors, members: [Member]) {
        self.name = name
        self.created = created
        self.phase = phase
        self.chunk = chunk
        self.members = members
    }

    public func with(phase: Phase) -> SnapshotSet {
        var copy = self
        copy.phase = phase
        return copy
    }
}

/// A cheap, stable fingerprint of a device's start (superblock area and first chunks).
public enum Fingerprint {
    /// The superblock area of ext4 and xfs and the first chunks.
    public static let bytes = 128 << 10

    /// `SIZE:FNV1A64` over the first `bytes` bytes.
    public static func of(header: [UInt8], size: Sectors) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        header.withUnsafeBufferPointer { buffer in
            for b in buffer {
                hash ^= UInt64(b)
                hash = hash &* 0x100_0000_01b3
            }
        }
        return "\(size.value):\(String(hash, radix: 16))"
    }

    /// True when `header` starts with a valid persistent-snapshot header ("SnAp", valid=1).
    public static func isSnapshotCOW(_ header: [UInt8]) -> Bool {
        header.count >= 8 && Array(header[0..<4]) == [0x53, 0x6e, 0x41, 0x70] && header[4] == 1
    }
}

/// dm uuids of the devices dmsnap creates all start with this.
public enum DMSnapNaming {
    public static let uuidPrefix = "DMSNAP-"
    public static let baseSuffix = "-dmsnap-base"

    public static func baseName(for device: DeviceName) throws(ModelError) -> DeviceName {
        try DeviceName(device.value + baseSuffix)
    }

    public static func baseUUID(set: SetName, index: Int) -> String {
        "\(uuidPrefix)\(set.value)-base\(index)"
    }
}
