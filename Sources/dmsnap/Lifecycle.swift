import ArgumentParser
import DMSnap
import FoundationEssentials

extension CLIError {
    /// Maps a library error to one line and the documented exit status.
    init(_ error: DMSnapError) {
        switch error {
        case let .refused(e):
            self.init(message: e.description, status: .refused)
        case let .failed(e):
            if e.rollbackIncomplete {
                var lines = [e.description, "state left behind; to fix it by hand, run:"]
                lines += e.fixCommands.map { "  \($0)" }
                self.init(message: lines.joined(separator: "\n"), status: .rollbackIncomplete)
            } else if e.committed {
                self.init(message: e.description, status: .failed)
            } else {
                self.init(message: e.description, status: .rolledBack)
            }
        case let .inspect(s), let .mergeFailed(s):
            self.init(message: s, status: .failed)
        }
    }
}

/// The manager for the real kernel. With `DMSNAP_TRACE` set, every kernel step is printed to
/// stderr with its time since start when it begins (`dmsnap: trace: +1.234 ms freeze /mnt`) and
/// when it returns (`dmsnap: trace: +5.678 ms done freeze /mnt`).
func makeManager(lockWait: Double = 5) throws -> SnapshotManager {
    let env = ProcessInfo.processInfo.environment
    let manager: SnapshotManager
    if let fault = env["DMSNAP_TEST_FAULT"] {
        // Test hook (see README): fail or kill at the N-th changing kernel call.
        guard let mode = FaultInjector.mode(fault) else {
            throw CLIError(message: "DMSNAP_TEST_FAULT: expected fail:N or kill:N, got '\(fault)'", status: .usage)
        }
        manager = SnapshotManager(dm: FaultInjector(LibDeviceMapper(), mode: mode), store: FileSetStore())
        manager.lock = CommandLock()
    } else {
        manager = SnapshotManager()
    }
    manager.lockWait = lockWait
    if ProcessInfo.processInfo.environment["DMSNAP_TRACE"] != nil {
        let start = ContinuousClock.now
        let trace = { (event: String) in
            writeStandardError("dmsnap: trace: +\(fixed((ContinuousClock.now - start).seconds * 1000, 3)) ms \(event)\n")
        }
        manager.executor.observer = { trace("\($0)") }
        manager.executor.finished = { trace("done \($0)") }
    }
    return manager
}

struct LockOptions: ParsableArguments {
    @Option(name: .customLong("wait-lock"), help: "Seconds to wait for another running dmsnap command (default 5).")
    var waitLock: Double = 5

    func validate() throws {
        guard waitLock >= 0, waitLock.isFinite else { throw ValidationError("--wait-lock must be a number of seconds ≥ 0") }
    }
}

struct Take: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Snapshot a set of live devices in one freeze window.",
        discussion: """
            Each DEVICE (a dm name, /dev/mapper/NAME or /dev/dm-N) keeps its name, number and mounts;
            its writes go to COW (a block device) from now on. A hidden base device per DEVICE holds
            the frozen image. All devices are frozen together, so the set is consistent.
            """
    )

    @Argument(help: "Name of the new set: [A-Za-z0-9._+-], 1–64 characters.") var set: String
    @Argument(help: ArgumentHelp("DEVICE=COW pairs.", valueName: "DEVICE=COW")) var pairs: [String] = []
    @Option(help: "COW chunk size, a power of two from 4k to 512k (default 4k).") var chunkSize: String?
    @Flag(help: "Overwrite a COW that carries a signature; snapshot a device another tool owns.") var force = false
    @Flag(help: "Print the new set as JSON.") var json = false
    @OptionGroup var lock: LockOptions

    func run() throws {
        var parsed: [(device: String, cow: String)] = []
        for p in pairs {
            do { parsed.append(try TakeRequest.pair(p)) } catch { throw CLIError(message: error.description, status: .refused) }
        }
        let manager = try makeManager(lockWait: lock.waitLock)
        let started = ContinuousClock.now
        do {
            try manager.take(TakeRequest(set: set, pairs: parsed, chunkSize: chunkSize, force: force))
        } catch {
            throw CLIError(error)
        }
        let elapsed = ContinuousClock.now - started
        let status: [SetStatus]
        do { status = try manager.status(set) } catch { throw CLIError(error) }
        if json {
            try Output.json(status[0])
        } else {
            print("Took set \(set): \(parsed.count) device\(parsed.count == 1 ? "" : "s") in \(Int((elapsed.seconds * 1000).rounded())) ms")
            StatusPrinter.table(status, fields: StatusPrinter.defaultFields, headings: true)
        }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show snapshot sets: state and COW usage per device.",
        discussion: "Fields for -o: \(StatusPrinter.allFields.joined(separator: ","))"
    )

    @Argument(help: "A set name; all sets when omitted.") var set: String?
    @Flag(help: "Print JSON: {\"sets\":[…]} without SET, one set object with SET.") var json = false
    @Flag(help: "Omit the heading line.") var noheadings = false
    @Option(name: .short, help: "Comma-separated fields to show.") var o: String?

    func validate() throws {
        if let o {
            for f in o.split(separator: ",") where !StatusPrinter.allFields.contains(String(f)) {
                throw ValidationError("unknown field '\(f)'; fields: \(StatusPrinter.allFields.joined(separator: ","))")
            }
        }
    }

    func run() throws {
        let manager = try makeManager()
        let sets: [SetStatus]
        do { sets = try manager.status(set) } catch { throw CLIError(error) }
        if json {
            if set != nil {
                try Output.json(sets[0])
            } else {
                struct Root: Encodable { var sets: [SetStatus] }
                try Output.json(Root(sets: sets))
            }
            return
        }
        if sets.isEmpty && o == nil && !noheadings {
            print("No snapshot sets.")
            return
        }
        StatusPrinter.table(sets, fields: o.map { $0.split(separator: ",").map(String.init) } ?? StatusPrinter.defaultFields,
                            headings: !noheadings)
    }
}

enum StatusPrinter {
    static let allFields = ["set", "set_state", "created", "device", "base", "cow", "chunk_sectors", "cow_total_sectors",
                            "cow_used_sectors", "metadata_sectors", "used_percent", "state"]
    static let defaultFields = ["set", "device", "cow", "state", "used_percent", "cow_used_sectors", "cow_total_sectors"]

    static func table(_ sets: [SetStatus], fields: [String], headings: Bool) {
        var rows: [[String]] = []
        for s in sets {
            for d in s.devices {
                rows.append(fields.map { f in
                    switch f {
                    case "set": s.name
                    case "set_state": s.state.rawValue
                    case "created": Timestamp.string(s.created)
                    case "device": d.device
                    case "base": d.base
                    case "cow": d.cow
                    case "chunk_sectors": String(d.chunkSectors)
                    case "cow_total_sectors": String(d.cowTotalSectors)
                    case "cow_used_sectors": d.cowUsedSectors.map(String.init) ?? "-"
                    case "metadata_sectors": d.metadataSectors.map(String.init) ?? "-"
                    case "used_percent": d.usedPercent.map { fixed($0, 2) } ?? "-"
                    case "state": d.state.rawValue
                    default: ""
                    }
                })
            }
        }
        let header = headings ? fields.map { String($0.uppercased().map { $0 == "_" ? " " : $0 }) } : nil
        let text = Output.columns(rows, header: header)
        if !text.isEmpty { print(text) }
    }
}

struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Merge every change back into the live devices, online, and end the set.",
        discussion: "Run again after --no-wait (or an interruption) to wait for the merge and finish it."
    )

    @Argument(help: "The set.") var set: String
    @Flag(help: "Start the merge and return at once.") var noWait = false
    @Flag(help: "Print a JSON result.") var json = false
    @OptionGroup var lock: LockOptions

    struct Result: Encodable {
        var set: String
        var state: String
        var seconds: Double
    }

    func run() throws {
        let manager = try makeManager(lockWait: lock.waitLock)
        let started = ContinuousClock.now
        let bar = ProgressBar(enabled: Output.isTerminal && !json, label: "merging \(set)")
        do {
            try manager.merge(set, wait: !noWait) { bar.update($0.fraction) }
        } catch {
            bar.finish()
            throw CLIError(error)
        }
        bar.finish()
        let seconds = (ContinuousClock.now - started).seconds
        if json {
            try Output.json(Result(set: set, state: noWait ? "merging" : "merged", seconds: seconds))
        } else if noWait {
            print("Merge of set \(set) started; run 'dmsnap merge \(set)' to wait for it and finish.")
        } else {
            print("Merged set \(set) in \(fixed(seconds, 2)) s; the live devices hold every change.")
        }
    }
}

struct Discard: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Throw away every change since take; the devices return to the frozen image.",
        discussion: "Every device of the set must be unmounted and closed."
    )

    @Argument(help: "The set.") var set: String
    @Flag(help: "Print a JSON result.") var json = false
    @OptionGroup var lock: LockOptions

    func run() throws {
        let manager = try makeManager(lockWait: lock.waitLock)
        do { try manager.discard(set) } catch { throw CLIError(error) }
        if json {
            struct Result: Encodable { var set: String; var state: String }
            try Output.json(Result(set: set, state: "discarded"))
        } else {
            print("Discarded set \(set); the devices hold the frozen image again.")
        }
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// A one-line progress bar on stderr for terminals; silent otherwise.
final class ProgressBar {
    let enabled: Bool
    let label: String
    private var shown = false

    init(enabled: Bool, label: String) {
        self.enabled = enabled
        self.label = label
    }

    func update(_ fraction: Double) {
        guard enabled else { return }
        let width = 30
        let filled = Int((fraction * Double(width)).rounded(.down))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let percent = fixed(fraction * 100, 0)
        writeStandardError("\r\(label) [\(bar)] \(String(repeating: " ", count: max(0, 3 - percent.count)) + percent)%")
        shown = true
    }

    func finish() {
        if shown { writeStandardError("\n") }
        shown = false
    }
}
