/// The on-disk layout of a persistent snapshot store (the kernel's dm-snap-persistent.c), read to
/// tell which chunks of a device changed since take. Chunk 0 is the header (little-endian: magic
/// "SnAp", valid, version, chunk size in sectors); metadata areas follow at chunk
/// 1 + k·(e + 1), each one chunk of e = chunk bytes / 16 exceptions (old chunk, new chunk: both
/// 64-bit little-endian), with the data chunks of that area after it. An entry whose new chunk
/// is 0 ends the store.
public enum ExceptionStore {
    public struct Header: Hashable, Sendable {
        public var valid: Bool
        public var version: UInt32
        public var chunk: Sectors
    }

    /// One changed chunk: where it is on the device, where its data is on the COW.
    public struct Exception: Hashable, Sendable {
        public var oldChunk: UInt64
        public var newChunk: UInt64
        public init(oldChunk: UInt64, newChunk: UInt64) {
            self.oldChunk = oldChunk
            self.newChunk = newChunk
        }
    }

    /// A changed byte range of the device.
    public struct ByteRange: Hashable, Sendable, Codable {
        public var offset: UInt64
        public var length: UInt64
        public init(offset: UInt64, length: UInt64) {
            self.offset = offset
            self.length = length
        }
    }

    static func le32(_ b: [UInt8], _ at: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 | UInt32(b[at + $1]) << (8 * UInt32($1)) }
    }

    static func le64(_ b: [UInt8], _ at: Int) -> UInt64 {
        (0..<8).reduce(0) { $0 | UInt64(b[at + $1]) << (8 * UInt64($1)) }
    }

    /// The header of a persistent store; nil when `bytes` (its first 16 or more) are not one.
    public static func header(_ bytes: [UInt8]) -> Header? {
        guard bytes.count >= 16, le32(bytes, 0) == 0x7041_6e53 else { return nil }
        let chunk = le32(bytes, 12)
        guard chunk > 0, chunk & (chunk - 1) == 0 else { return nil }
        return Header(valid: le32(bytes, 4) != 0, version: le32(bytes, 8), chunk: Sectors(UInt64(chunk)))
    }

    /// Exceptions one metadata area holds.
    public static func exceptionsPerArea(chunk: Sectors) -> Int { Int(chunk.bytes / 16) }

    /// The chunk where metadata area `area` (from 0) lives.
    public static func areaChunk(_ area: Int, chunk: Sectors) -> UInt64 {
        1 + UInt64(exceptionsPerArea(chunk: chunk) + 1) * UInt64(area)
    }

    /// The exceptions of one metadata area (one chunk of bytes), and whether it is full (the next
    /// area holds more).
    public static func parseArea(_ bytes: [UInt8]) -> (exceptions: [Exception], full: Bool) {
        var out: [Exception] = []
        let e = bytes.count / 16
        for i in 0..<e {
            let new = le64(bytes, i * 16 + 8)
            if new == 0 { return (out, false) }
            out.append(Exception(oldChunk: le64(bytes, i * 16), newChunk: new))
        }
        return (out, true)
    }

    /// The changed chunks as sorted, coalesced byte ranges.
    public static func ranges(_ exceptions: [Exception], chunk: Sectors) -> [ByteRange] {
        var out: [ByteRange] = []
        for old in Set(exceptions.map(\.oldChunk)).sorted() {
            let offset = old * chunk.bytes
            if let last = out.last, last.offset + last.length == offset {
                out[out.count - 1].length += chunk.bytes
            } else {
                out.append(ByteRange(offset: offset, length: chunk.bytes))
            }
        }
        return out
    }
}
