import ArgumentParser
import DMSnap
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

enum Output {
    static func warning(_ message: String) {
        CLILog.flush()
        writeStandardError("dmsnap: warning: \(message)\n")
    }

    /// A line for people on stderr (where stdout belongs to someone else: `run`'s command).
    static func note(_ message: String) {
        CLILog.flush()
        writeStandardError("dmsnap: \(message)\n")
    }

    static func error(_ message: String) {
        CLILog.flush()
        writeStandardError("dmsnap: \(message)\n")
    }

    static func json<T: Encodable>(_ value: T) throws {
        print(try jsonText(value))
    }

    static func jsonText<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = Timestamp.encoding
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// Writes one line to stdout at once (not buffered: a reader of a pipe sees it now).
    static func line(_ text: String) {
        var bytes = Array((text + "\n").utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
            guard n > 0 else { return }
            bytes = bytes.dropFirst(n)
        }
    }

    /// One line (JSON lines).
    static func compactJSON<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    static var isTerminal: Bool { isatty(1) != 0 }

    /// Left-aligned columns, two spaces apart.
    static func columns(_ rows: [[String]], header: [String]?) -> String {
        let all = (header.map { [$0] } ?? []) + rows
        guard let width = all.first?.count else { return "" }
        let widths = (0..<width).map { i in all.map { $0[i].count }.max() ?? 0 }
        return all.map { row in
            row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[i] - cell.count)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}

/// `x` with exactly `digits` decimals, rounded half away from zero ("12.35"); no locale, no ICU.
func fixed(_ x: Double, _ digits: Int) -> String {
    guard x.isFinite else { return "\(x)" }
    var scale: Int64 = 1
    for _ in 0..<digits { scale *= 10 }
    let n = Int64((abs(x) * Double(scale)).rounded())
    let sign = x < 0 && n != 0 ? "-" : ""
    guard digits > 0 else { return sign + String(n) }
    let frac = String(n % scale)
    return sign + String(n / scale) + "." + String(repeating: "0", count: digits - frac.count) + frac
}
