import ArgumentParser
import DMSnap

struct Activate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "After a reboot, rebuild a set on its re-created devices from the persistent COWs.",
        usage: """
            dmsnap activate <set> [--force] [--json] [--wait-lock <seconds>]
            dmsnap activate --all [--json] [--wait-lock <seconds>] [--no-syslog]
            """,
        discussion: """
            Recreate each live device with its original table first (your usual tools), and do not \
            mount it. dmsnap checks that each device's content is still what it was at take time, \
            then puts the snapshot back on top: the device shows every change again, and merge or \
            discard work as before. An interrupted merge continues. With --all (what \
            dmsnap-activate.service runs at boot), the prepared volumes (dmsnap prepare) are \
            re-created first, then every inactive set whose devices exist is activated; the others \
            are listed with the reason, and one failure does not stop the rest (exit 1 if any \
            failed).
            """
    )

    @Argument(help: "The set.", completion: .setNames) var set: String?
    @Flag(help: "Activate every inactive set whose devices exist.") var all = false
    @Flag(help: "Activate even if a device changed since take (the COW may no longer match: data may be corrupted).")
    var force = false
    @Flag(help: "Print a JSON result.") var json = false
    @OptionGroup var common: ChangeOptions

    func validate() throws {
        if all == (set != nil) { throw ValidationError(all ? "give a set or --all, not both" : "give a set, or --all") }
        if all, force { throw ValidationError("--force applies to one set at a time, not --all") }
    }

    func run() throws {
        if force { Output.error("warning: --force: not checking that the devices are unchanged since take") }
        let manager = makeManager(common)
        guard let set else { return try activateAll(manager) }
        try cli { () throws(DMSnapError) in try manager.activate(set, force: force) }
        if json {
            try Output.json(SetResult(set: set, state: "active"))
        } else {
            print("Activated set \(set).")
        }
    }

    func activateAll(_ manager: SnapshotManager) throws {
        let volumes = try cli { () throws(DMSnapError) in try manager.restoreVolumes() }
        let outcomes = try cli { () throws(DMSnapError) in try manager.activateAll() }
        if json {
            struct Result: Encodable { var volumes: [VolumeRestore]; var sets: [BootActivation] }
            try Output.json(Result(volumes: volumes, sets: outcomes))
        } else {
            for v in volumes {
                switch v.outcome {
                case .created: print("Re-created prepared volume \(v.volume) on \(v.device ?? "?").")
                case .present: break
                case .failed: Output.error("prepared volume \(v.volume): \(v.detail ?? "failed")")
                }
            }
            if outcomes.isEmpty { print("No snapshot sets.") }
            for o in outcomes {
                switch o.outcome {
                case .activated: print("Activated set \(o.set).")
                case .skipped: print("Skipped set \(o.set): \(o.detail ?? "")")
                case .failed: Output.error("set \(o.set): \(o.detail ?? "failed")")
                }
            }
        }
        if outcomes.contains(where: { $0.outcome == .failed }) || volumes.contains(where: { $0.outcome == .failed }) {
            throw ExitCode.failure
        }
    }
}
