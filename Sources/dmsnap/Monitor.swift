import ArgumentParser
import DMSnap
import FoundationEssentials
import Logging
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

struct Monitor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Watch COWs and grow COW files before they fill (a foreground service).",
        usage: """
            dmsnap monitor [<set>...] [--threshold <percent>] [--grow <size>]
                   [--max <size>] [--keep-free <size>] [--json]
            """,
        discussion: """
            Watches every COW of the named sets (of all sets when none is named, sets taken later \
            too). When a COW file's use passes --threshold, the file grows by --grow (at least what \
            one second of writing at the fastest rate seen needs) and the snapshot uses the new \
            size at once. It looks more often the closer a COW is to the threshold and the faster \
            it fills (every 2 ms to 1 s). A COW it cannot \
            grow (a block device, --max, too little free space) is warned about once per crossing, \
            with the time left until it is full. Runs until SIGINT or SIGTERM; \
            dmsnap-monitor.service runs it at boot. 'dmsnap status' shows the time to full.
            """
    )

    @Argument(help: "Sets to watch; all sets when omitted.", completion: .setNames) var sets: [String] = []
    @Option(help: ArgumentHelp("Use (percent) at which a COW file grows.", valueName: "percent")) var threshold: Double = 70
    @Option(help: ArgumentHelp("How much it grows: a size or a share of the COW (default: 20%).", valueName: "size"))
    var grow = "20%"
    @Option(help: ArgumentHelp("Never grow a COW file past this size.", valueName: "size")) var max: String?
    @Option(help: ArgumentHelp("Space to leave free on a COW's filesystem (default: 5% of it).", valueName: "size"))
    var keepFree: String?
    @Flag(help: "Print one JSON object per event (and a summary at exit) on stdout.") var json = false
    @OptionGroup var common: ChangeOptions

    func validate() throws {
        guard threshold > 0, threshold < 100 else { throw ValidationError("--threshold must be a percentage above 0 and below 100") }
    }

    struct Event: Encodable {
        var event: String
        var set: String
        var device: String
        var fromBytes: UInt64?
        var toBytes: UInt64?
        var usedPercent: Double?
        var secondsToFull: Double?
        var reason: String?
        var time: Double
        enum CodingKeys: String, CodingKey {
            case event, set, device, reason, time
            case fromBytes = "from_bytes", toBytes = "to_bytes", usedPercent = "used_percent", secondsToFull = "seconds_to_full"
        }
    }

    func run() throws {
        var policy = MonitorPolicy()
        policy.threshold = threshold
        do {
            policy.grow = try COWSizePolicy(parsing: grow)
            policy.maximum = try max.map { s throws(ModelError) in try SizeParser.bytes(s) }
            policy.keepFree = try keepFree.map { s throws(ModelError) in try SizeParser.bytes(s) }
        } catch { throw CLIError(message: "\(error)", status: .refused) }
        let manager = makeManager(common)
        let monitor = try cli { () throws(DMSnapError) in try COWMonitor(manager: manager, sets: sets, policy: policy) }
        let journal = manager.journal
        let json = json
        func emit(_ e: Event) {
            guard json, let line = try? Output.compactJSON(e) else { return }
            Output.line(line)
        }
        func now() -> Double { Date().timeIntervalSince1970 }
        monitor.events = { event in
            switch event {
            case let .grew(set, device, from, to, used):
                let line = "set \(set): grew the COW of \(device) from \(ByteCount.text(from.bytes)) to \(ByteCount.text(to.bytes)) (it was \(Int(used))% used)"
                journal.notice("\(line)", metadata: ["set": "\(set)", "action": "grow", "outcome": "done"])
                if !json { writeStandardError("dmsnap: \(line)\n") }
                emit(Event(event: "grew", set: set.value, device: device.value, fromBytes: from.bytes, toBytes: to.bytes,
                           usedPercent: used, time: now()))
            case let .cannotGrow(set, device, reason, used, left):
                let when = left.map { " at the current rate it is full in \(StatusPrinter.duration($0))" } ?? ""
                let line = "set \(set): the COW of \(device) is \(Int(used))% used and cannot grow (\(reason));\(when.isEmpty ? " it is not filling now" : when)"
                journal.warning("\(line)", metadata: ["set": "\(set)", "action": "grow", "outcome": "failed"])
                writeStandardError("dmsnap: warning: \(line)\n")
                emit(Event(event: "cannot-grow", set: set.value, device: device.value, usedPercent: used, secondsToFull: left,
                           reason: reason, time: now()))
            case let .invalid(set, device):
                let line = "set \(set): the kernel dropped the snapshot of \(device) (its COW overflowed or failed); run 'dmsnap discard \(set)'"
                journal.error("\(line)", metadata: ["set": "\(set)", "action": "watch", "outcome": "failed"])
                writeStandardError("dmsnap: \(line)\n")
                emit(Event(event: "invalid", set: set.value, device: device.value, time: now()))
            }
        }
        if !json { writeStandardError("dmsnap: monitoring \(sets.isEmpty ? "every set" : sets.joined(separator: ", ")) (threshold \(fixed(threshold, 0))%)\n") }
        monitor.run { LinuxKernel.pendingSignal != nil }
        for (key, peak) in monitor.peakUse.sorted(by: { $0.key < $1.key }) {
            let parts = key.split(separator: "/", maxSplits: 1).map(String.init)
            emit(Event(event: "peak", set: parts[0], device: parts.count > 1 ? parts[1] : "", usedPercent: (peak * 100).rounded() / 100, time: now()))
        }
    }
}
