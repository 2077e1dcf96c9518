/// A block device number, `MAJOR:MINOR`.
public struct DeviceNumber: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public var major: UInt32
    public var minor: UInt32

    public init(major: UInt32, minor: UInt32) {
        self.major = major
        self.minor = minor
    }

    /// Parses `253:0`.
    public init(_ text: some StringProtocol) throws(ModelError) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let ma = UInt32(parts[0]), let mi = UInt32(parts[1]) else {
            throw .invalidNumber(String(text))
        }
        major = ma
        minor = mi
    }

    public var description: String { "\(major):\(minor)" }

    public static func < (a: DeviceNumber, b: DeviceNumber) -> Bool { (a.major, a.minor) < (b.major, b.minor) }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let raw = try container.decode(String.self)
        do { try self.init(raw) } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.description)
        }
    }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
