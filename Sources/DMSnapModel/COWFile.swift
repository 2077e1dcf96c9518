import FoundationEssentials

/// A COW that is a regular file dmsnap attached to a loop device (`take SET DEV=/srv/cow/x.cow`).
/// The set records the file; the loop it runs on is only the current one (`Member.cowNumber`),
/// attached again by `activate` after a reboot.
public struct COWFile: Codable, Hashable, Sendable {
    /// dmsnap made the file: merge and discard delete it (a file the user made is only released).
    public var created: Bool
    /// The loop was asked for direct I/O (no second copy of COW data in the page cache).
    public var directIO: Bool
    /// On tmpfs/ramfs (`--volatile`): lost at reboot with every change since take.
    public var volatile: Bool

    public init(created: Bool, directIO: Bool, volatile: Bool = false) {
        self.created = created
        self.directIO = directIO
        self.volatile = volatile
    }
}

/// What the kernel says about a path given as a COW file (looked up before planning, no changes).
public struct FileFacts: Hashable, Sendable {
    public enum Kind: Hashable, Sendable {
        /// Nothing there yet (the directory exists): dmsnap would create the file.
        case missing
        case regular
        case directory
        case symlink
        case blockDevice
        /// Anything else (fifo, socket, character device).
        case other
    }

    public var kind: Kind
    /// Size of an existing file.
    public var size: UInt64 = 0
    /// Bytes an existing file already has allocated (st_blocks × 512).
    public var allocated: UInt64 = 0
    /// The file's identity (st_dev, st_ino), for telling one file given twice.
    public var identity: String?
    /// The directory the file is (or would be) in, with symlinks resolved: the same file given
    /// by two spellings has one `canonicalPath`.
    public var canonicalPath: String
    /// The filesystem the file is (or would be) on: its device, type and space.
    public var fileSystemDevice: DeviceNumber
    public var fileSystemType: String
    public var freeBytes: UInt64
    public var totalBytes: UInt64
    /// Not nil when the file is in use: "attached to /dev/loop3", "open by another process".
    public var inUse: String?
    /// The first 4 KiB of an existing file (fewer if it is shorter).
    public var header: [UInt8] = []
    /// A filesystem / RAID / partition signature libblkid finds in an existing file.
    public var signature: String?

    public init(kind: Kind, canonicalPath: String, fileSystemDevice: DeviceNumber, fileSystemType: String,
                freeBytes: UInt64, totalBytes: UInt64) {
        self.kind = kind
        self.canonicalPath = canonicalPath
        self.fileSystemDevice = fileSystemDevice
        self.fileSystemType = fileSystemType
        self.freeBytes = freeBytes
        self.totalBytes = totalBytes
    }

    /// tmpfs and ramfs keep the file in memory: gone at reboot.
    public var isVolatile: Bool { fileSystemType == "tmpfs" || fileSystemType == "ramfs" }
}

/// A loop device dmsnap attached to a COW file, with its own open descriptor (the loop has
/// autoclear set: it detaches itself when its last user lets go, so the descriptor is kept until
/// a table holds the loop).
public struct LoopAttachment: Hashable, Sendable {
    public var number: DeviceNumber
    public var path: String
    /// Direct I/O is in effect (the kernel turns it off where the backing filesystem cannot).
    public var directIO: Bool
    public var descriptor: Int32

    public init(number: DeviceNumber, path: String, directIO: Bool, descriptor: Int32) {
        self.number = number
        self.path = path
        self.directIO = directIO
        self.descriptor = descriptor
    }
}

/// How big a COW file is made: a size, or a percentage of its origin (`--cow-size 20%`).
public enum COWSizePolicy: Hashable, Sendable, CustomStringConvertible {
    case bytes(UInt64)
    case percent(Double)

    /// snapm's and LVM's guidance for a snapshot that is kept a while.
    public static let `default` = COWSizePolicy.percent(20)

    /// `20%`, `512M`, `2G`. Percentages must be > 0 and ≤ 100; sizes > 0.
    public init(parsing text: String) throws(ModelError) {
        let t = text.trimmingWhitespace()
        if t.hasSuffix("%") {
            guard let p = Double(t.dropLast()), p.isFinite, p > 0, p <= 100 else {
                throw .invalidSize(text, "a percentage must be a number above 0 and at most 100")
            }
            self = .percent(p)
        } else {
            let b = try SizeParser.bytes(t)
            guard b > 0 else { throw .invalidSize(text, "must be more than 0") }
            self = .bytes(b)
        }
    }

    /// The size for an origin of `origin` sectors, in bytes.
    public func bytes(origin: Sectors) -> UInt64 {
        switch self {
        case let .bytes(b): b
        case let .percent(p): UInt64((Double(origin.bytes) * p / 100).rounded(.up))
        }
    }

    public var description: String {
        switch self {
        case let .bytes(b): ByteCount.text(b)
        case let .percent(p): p == p.rounded() ? "\(Int(p))%" : "\(p)%"
        }
    }
}

/// Sizes for people: `512 MiB`, `1.5 GiB`.
public enum ByteCount {
    public static func text(_ bytes: UInt64) -> String {
        let units = ["bytes", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var i = 0
        while value >= 1024, i < units.count - 1 { value /= 1024; i += 1 }
        if i == 0 { return "\(bytes) bytes" }
        let rounded = (value * 10).rounded() / 10
        return rounded == rounded.rounded() ? "\(Int(rounded)) \(units[i])" : "\(rounded) \(units[i])"
    }
}

extension ExceptionStore {
    /// The largest COW an origin of `origin` sectors can use with chunks of `chunk` sectors:
    /// header, every chunk copied once, and the metadata areas for them (KERNEL.md); more is
    /// never used.
    public static func usefulMaximum(origin: Sectors, chunk: Sectors) -> Sectors {
        let n = (origin.value + chunk.value - 1) / chunk.value
        let e = chunk.bytes / 16
        return Sectors((1 + n + (n + 1 + e - 1) / e) * chunk.value)
    }

    /// The smallest COW the kernel accepts: header, one metadata area, one data chunk.
    public static func minimum(chunk: Sectors) -> Sectors { Sectors(chunk.value * 3) }
}

extension FileFacts {
    /// The directory part of a path (`/` for a file in the root).
    public static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}

/// What a running `dmsnap monitor` last saw of each COW it watches (for `status`): written by
/// the monitor every second or so, trusted while it is fresh and the monitor runs.
public struct MonitorReport: Codable, Hashable, Sendable {
    public struct Watched: Codable, Hashable, Sendable {
        /// Bytes per second the COW filled at lately.
        public var fillRate: Double
        /// At that rate, seconds until the COW is full (nil when it is not filling).
        public var secondsToFull: Double?
        /// False when the monitor cannot grow it (a block device, a limit, no space).
        public var grows: Bool
        public init(fillRate: Double, secondsToFull: Double?, grows: Bool) {
            self.fillRate = fillRate
            self.secondsToFull = secondsToFull
            self.grows = grows
        }
    }

    public var pid: Int32
    public var updated: Date
    /// By `SET/DEVICE`.
    public var watched: [String: Watched]

    public init(pid: Int32, updated: Date, watched: [String: Watched]) {
        self.pid = pid
        self.updated = updated
        self.watched = watched
    }

    public static func key(_ set: SetName, _ device: DeviceName) -> String { "\(set.value)/\(device.value)" }
}

/// What a directory given as `--freeze-cgroup` (or a unit's cgroup) is.
public struct CgroupFacts: Hashable, Sendable {
    /// The directory, symlinks resolved.
    public var path: String
    /// It has a `cgroup.freeze` file: a non-root cgroup v2 directory with the freezer.
    public var hasFreezer: Bool
    /// The root of the cgroup2 hierarchy (it has no freezer; freezing everything would freeze dmsnap).
    public var isRoot: Bool
    /// dmsnap's own process is in it (or below it): it would freeze itself.
    public var holdsSelf: Bool
    /// Processes in it and below it.
    public var processes: Int

    public init(path: String, hasFreezer: Bool, isRoot: Bool, holdsSelf: Bool, processes: Int) {
        self.path = path
        self.hasFreezer = hasFreezer
        self.isRoot = isRoot
        self.holdsSelf = holdsSelf
        self.processes = processes
    }
}
