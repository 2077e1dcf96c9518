/// A cheap, stable fingerprint of a device's start: its size and an FNV-1a hash of its first
/// `bytes` bytes (the superblock area of ext4 and xfs and the first chunks).
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
    public static func isSnapshotCOW(_ header: [UInt8]) -> Bool { COWHeader(header) == .valid }
}

/// What the first bytes of a COW say (dm-snap-persistent.c: magic "SnAp" little-endian, then
/// valid, version, chunk size; magic 0 is a new store).
public enum COWHeader: Hashable, Sendable {
    /// A persistent snapshot store the kernel can load.
    case valid
    /// A snapshot store the kernel marked invalid (the COW overflowed or failed).
    case invalidated
    /// Zeros: no snapshot store (wiped, or never used).
    case empty
    /// Anything else.
    case foreign

    public init(_ header: [UInt8]) {
        guard header.count >= 8 else { self = .foreign; return }
        if header[0..<8].allSatisfy({ $0 == 0 }) { self = .empty; return }
        guard Array(header[0..<4]) == [0x53, 0x6e, 0x41, 0x70] else { self = .foreign; return }
        self = header[4] == 1 ? .valid : .invalidated
    }
}

