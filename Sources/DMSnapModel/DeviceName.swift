/// A device-mapper device name, checked the way the kernel checks it
/// (1–127 bytes, no `/`, not `.` or `..`) plus no whitespace or control bytes,
/// so a name can always be printed on one line and used in a path.
public struct DeviceName: Hashable, Comparable, Sendable, CodableAsString, CustomStringConvertible {
    public let value: String

    public static let maxLength = 127

    public init(_ value: String) throws(ModelError) {
        guard !value.isEmpty, value.utf8.count <= Self.maxLength else {
            throw .invalidDeviceName(value, "must be 1–\(Self.maxLength) bytes")
        }
        guard value != ".", value != ".." else { throw .invalidDeviceName(value, "reserved name") }
        for byte in value.utf8 {
            if byte == UInt8(ascii: "/") { throw .invalidDeviceName(value, "contains '/'") }
            if byte <= 0x20 || byte == 0x7f { throw .invalidDeviceName(value, "contains whitespace or control characters") }
        }
        if value.unicodeScalars.contains(where: {
            $0.properties.generalCategory == .control || $0.properties.isWhitespace
                || $0.properties.generalCategory == .lineSeparator || $0.properties.generalCategory == .paragraphSeparator
        }) {
            throw .invalidDeviceName(value, "contains whitespace or control characters")
        }
        self.value = value
    }

    public init(codedText: String) throws(ModelError) { try self.init(codedText) }
    public var description: String { value }
    /// `/dev/mapper/NAME`
    public var path: String { "/dev/mapper/\(value)" }

    public static func < (lhs: DeviceName, rhs: DeviceName) -> Bool { lhs.value < rhs.value }
}

/// The name of a snapshot set: `[A-Za-z0-9._+-]`, 1–64 characters, not starting with `-` or `.`.
public struct SetName: Hashable, Comparable, Sendable, CodableAsString, CustomStringConvertible {
    public let value: String

    public init(_ value: String) throws(ModelError) {
        guard !value.isEmpty, value.count <= 64 else {
            throw .invalidSetName(value, "must be 1–64 characters")
        }
        guard let first = value.first, first != "-", first != "." else {
            throw .invalidSetName(value, "must not start with '-' or '.'")
        }
        for scalar in value.unicodeScalars {
            let ok = ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar)
                || ("0"..."9").contains(scalar) || "._+-".unicodeScalars.contains(scalar)
            if !ok { throw .invalidSetName(value, "only letters, digits and . _ + - are allowed") }
        }
        self.value = value
    }

    public init(codedText: String) throws(ModelError) { try self.init(codedText) }
    public var description: String { value }
    public static func < (lhs: SetName, rhs: SetName) -> Bool { lhs.value < rhs.value }
}

/// A value stored as one validated string: decoding runs the same checks as `init(_:)`.
/// Decoding runs the parser (`init(codedText:)`), encoding writes `codedText`.
public protocol CodableAsString: Codable {
    init(codedText: String) throws(ModelError)
    /// The stored form; by default `description`.
    var codedText: String { get }
}

extension CodableAsString where Self: CustomStringConvertible {
    public var codedText: String { description }
}

extension CodableAsString {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let raw = try container.decode(String.self)
        do { try self.init(codedText: raw) } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.description)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(codedText)
    }
}
