import ArgumentParser
import DMSnap

struct Discard: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Throw away every change since take; the devices return to the frozen image.",
        discussion: "Every device of the set must be unmounted and closed."
    )

    @Argument(help: "The set.", completion: .setNames) var set: String
    @Flag(help: "Print a JSON result.") var json = false
    @OptionGroup var common: ChangeOptions

    func run() throws {
        let manager = makeManager(common)
        try cli { () throws(DMSnapError) in try manager.discard(set) }
        if json {
            try Output.json(SetResult(set: set, state: "discarded"))
        } else {
            print("Discarded set \(set); the devices hold the frozen image again.")
        }
    }
}

/// `{"set": …, "state": …}`: the JSON result of discard and activate.
struct SetResult: Encodable {
    var set: String
    var state: String
}
