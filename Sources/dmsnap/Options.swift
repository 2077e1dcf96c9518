import ArgumentParser
import DMSnap

/// `--wait-lock` and `--no-syslog`, shared by every changing command.
struct ChangeOptions: ParsableArguments {
    @Option(name: .customLong("wait-lock"), help: ArgumentHelp("Seconds to wait for another running dmsnap command.", valueName: "seconds"))
    var waitLock: Double = 5
    @Flag(name: .customLong("no-syslog"), help: "Do not log what this command changes to the system log.")
    var noSyslog = false

    func validate() throws {
        guard waitLock >= 0, waitLock.isFinite else { throw ValidationError("--wait-lock must be a number of seconds ≥ 0") }
    }
}

/// A `DEVICE=COW` argument of take, as typed. The library checks it (`TakeRequest.pair`), so a
/// malformed pair is refused like any other bad input, with nothing changed.
struct DevicePair: ExpressibleByArgument {
    var text: String
    init?(argument: String) { text = argument }
    static var defaultCompletionKind: CompletionKind { .devicePairs }
}

/// A field `status -o` can show.
enum StatusField: String, CaseIterable, ExpressibleByArgument {
    case set, setState = "set_state", created, device, base, cow, chunkSectors = "chunk_sectors"
    case cowTotalSectors = "cow_total_sectors", cowUsedSectors = "cow_used_sectors"
    case metadataSectors = "metadata_sectors", usedPercent = "used_percent", state
    case cowKind = "cow_kind", cowLoop = "cow_loop", timeToFull = "time_to_full"

    static let defaults: [StatusField] = [.set, .device, .cow, .state, .usedPercent, .cowUsedSectors, .cowTotalSectors]
    static var names: String { allCases.map(\.rawValue).joined(separator: ",") }
    /// For help texts: the same, with room to wrap.
    static var wrappableNames: String { allCases.map(\.rawValue).joined(separator: ", ") }

    /// `-o a,b,c`
    static func list(_ text: String) throws -> [StatusField] {
        try text.split(separator: ",").map { name in
            guard let f = StatusField(rawValue: String(name)) else {
                throw ValidationError("unknown field '\(name)'; fields: \(names)")
            }
            return f
        }
    }

    /// The column heading: `USED PERCENT`.
    var heading: String { String(rawValue.uppercased().map { $0 == "_" ? " " : $0 }) }
}
