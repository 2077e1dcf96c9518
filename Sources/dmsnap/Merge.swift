import ArgumentParser
import DMSnap

struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Merge every change back into the live devices, online, and end the set.",
        usage: """
            dmsnap merge <set> [--no-wait] [--json]
                   [--wait-lock <seconds>] [--no-syslog]
            """,
        discussion: "Run again after --no-wait (or an interruption) to wait for the merge and finish it."
    )

    @Argument(help: "The set.", completion: .setNames) var set: String
    @Flag(help: "Start the merge and return at once.") var noWait = false
    @Flag(help: "Print a JSON result.") var json = false
    @OptionGroup var common: ChangeOptions

    struct Result: Encodable {
        var set: String
        var state: String
        var seconds: Double
    }

    func run() throws {
        let manager = makeManager(common)
        let started = ContinuousClock.now
        let bar = ProgressBar(enabled: Output.isTerminal && !json, label: "merging \(set)")
        defer { bar.finish() }
        try cli { () throws(DMSnapError) in try manager.merge(set, wait: !noWait) { bar.update($0.fraction) } }
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
