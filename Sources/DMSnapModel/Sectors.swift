/// A count of 512-byte sectors, the unit of every device-mapper table.
public struct Sectors: Hashable, Comparable, Sendable, Codable, CustomStringConvertible,
    ExpressibleByIntegerLiteral, AdditiveArithmetic
{
    public static let size: UInt64 = 512
    public var value: UInt64

    public init(_ value: UInt64) { self.value = value }
    public init(integerLiteral value: UInt64) { self.value = value }
    /// Exact conversion; nil when `bytes` is not a multiple of 512.
    public init?(bytes: UInt64) {
        guard bytes % Self.size == 0 else { return nil }
        value = bytes / Self.size
    }

    public var bytes: UInt64 { value * Self.size }
    public var description: String { String(value) }

    public static var zero: Sectors { 0 }
    public static func + (a: Sectors, b: Sectors) -> Sectors { Sectors(a.value + b.value) }
    public static func - (a: Sectors, b: Sectors) -> Sectors { Sectors(a.value - b.value) }
    public static func < (a: Sectors, b: Sectors) -> Bool { a.value < b.value }

    public init(from decoder: any Decoder) throws {
        value = try decoder.singleValueContainer().decode(UInt64.self)
    }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(value)
    }
}

extension Duration {
    /// The duration in seconds, as a floating-point number (for rates and output).
    public var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// Parses sizes the way admins type them: `4096`, `8k`, `64K`, `1M`, `2G`, with an optional
/// trailing `B`/`iB` (`64KiB`). Suffixes are binary (k = 1024).
public enum SizeParser {
    public static func bytes(_ text: String) throws(ModelError) -> UInt64 {
        var digits = Substring(text.trimmingWhitespace())
        guard !digits.isEmpty else { throw .invalidSize(text, "empty") }
        var multiplier: UInt64 = 1
        let lower = digits.lowercased()
        for (suffix, mult) in [("kib", 1 << 10), ("mib", 1 << 20), ("gib", 1 << 30), ("tib", 1 << 40),
                               ("kb", 1 << 10), ("mb", 1 << 20), ("gb", 1 << 30), ("tb", 1 << 40),
                               ("k", 1 << 10), ("m", 1 << 20), ("g", 1 << 30), ("t", 1 << 40), ("b", 1)] as [(String, UInt64)]
            where lower.hasSuffix(suffix)
        {
            multiplier = mult
            digits = digits.dropLast(suffix.count)
            break
        }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let n = UInt64(digits) else {
            throw .invalidSize(text, "expected a whole number with an optional k/M/G suffix")
        }
        let (product, overflow) = n.multipliedReportingOverflow(by: multiplier)
        guard !overflow else { throw .invalidSize(text, "too large") }
        return product
    }
}

extension StringProtocol {
    public func trimmingWhitespace() -> String {
        String(self.drop(while: { $0.isWhitespace }).reversed().drop(while: { $0.isWhitespace }).reversed())
    }
}
