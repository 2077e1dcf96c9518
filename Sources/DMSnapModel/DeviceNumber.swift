/// A block device number, `MAJOR:MINOR`.
public struct DeviceNumber: Hashable, Comparable, Sendable, CodableAsString, CustomStringConvertible {
    public var major: UInt32
    public var minor: UInt32

    public init(major: UInt32, minor: UInt32) {
        self.major = major
        self.minor = minor
    }

    /// Parses `253:0`.
    public init(_ text: String) throws(ModelError) { try self.init(parsing: text) }
    public init(_ text: Substring) throws(ModelError) { try self.init(parsing: text) }

    /// Parses `253:0` from any string or substring.
    public init(parsing text: some StringProtocol) throws(ModelError) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let ma = UInt32(parts[0]), let mi = UInt32(parts[1]) else {
            throw .invalidNumber(String(text))
        }
        major = ma
        minor = mi
    }

    public init(codedText: String) throws(ModelError) { try self.init(parsing: codedText) }
    public var description: String { "\(major):\(minor)" }

    public static func < (a: DeviceNumber, b: DeviceNumber) -> Bool { (a.major, a.minor) < (b.major, b.minor) }
}
