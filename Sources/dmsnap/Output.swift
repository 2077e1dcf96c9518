import ArgumentParser
import DMSnap
import Foundation

/// dmsnap's exit statuses. Scripts rely on them: keep them stable.
enum ExitStatus: Int32 {
    case ok = 0
    case failed = 1
    case usage = 2
    case refused = 3
    case rolledBack = 4
    case rollbackIncomplete = 5

    static let helpText = """
        Exit status:
          0  success
          1  failed (unexpected error)
          2  usage error (bad command line)
          3  refused: bad input or state; nothing was changed
          4  failed, and everything this run changed was rolled back
          5  failed, and rollback was incomplete: the message lists what is left and how to fix it
        """
}

/// An error the CLI reports as one line and an exit status.
struct CLIError: Error {
    var message: String
    var status: ExitStatus
}

enum Output {
    static func error(_ message: String) {
        writeStandardError("dmsnap: \(message)\n")
    }

    static func json<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        let data = try encoder.encode(value)
        print(String(decoding: data, as: UTF8.self))
    }

    static var isTerminal: Bool { isatty(1) != 0 }

    /// Left-aligned columns, two spaces apart.
    static func columns(_ rows: [[String]], header: [String]?) -> String {
        let all = (header.map { [$0] } ?? []) + rows
        guard let width = all.first?.count else { return "" }
        let widths = (0..<width).map { i in all.map { $0[i].count }.max() ?? 0 }
        return all.map { row in
            row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}
