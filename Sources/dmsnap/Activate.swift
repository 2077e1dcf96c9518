import ArgumentParser
import DMSnap

struct Activate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "After a reboot, rebuild a set on its re-created devices from the persistent COWs.",
        discussion: """
            Recreate each live device with its original table first (your usual tools), and do not \
            mount it. dmsnap checks that each device's content is still what it was at take time, \
            then puts the snapshot back on top: the device shows every change again, and merge or \
            discard work as before. An interrupted merge continues.
            """
    )

    @Argument(help: "The set.") var set: String
    @Flag(help: "Activate even if a device changed since take (the COW may no longer match: data may be corrupted).")
    var force = false
    @Flag(help: "Print a JSON result.") var json = false
    @OptionGroup var lock: LockOptions

    func run() throws {
        if force { Output.error("warning: --force: not checking that the devices are unchanged since take") }
        let manager = makeManager(lockWait: lock.waitLock)
        try cli { () throws(DMSnapError) in try manager.activate(set, force: force) }
        if json {
            try Output.json(SetResult(set: set, state: "active"))
        } else {
            print("Activated set \(set).")
        }
    }
}
