import ArgumentParser
import DMSnap

struct Forget: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Drop a lost set: another tool replaced or removed what dmsnap had set up.",
        discussion: """
            Only for a set that status reports as lost (a live table reloaded behind dmsnap's back, \
            a device removed). Removes the set's unused hidden base devices and its record; the COWs \
            are left as they are and keep the changes made since take.
            """
    )

    @Argument(help: "The set.", completion: .setNames) var set: String
    @Flag(help: "Print a JSON result.") var json = false
    @OptionGroup var common: ChangeOptions

    struct Result: Encodable {
        var set: String
        var state: String
        var notes: [String]
    }

    func run() throws {
        let manager = makeManager(common)
        let notes = try cli { () throws(DMSnapError) in try manager.forget(set) }
        if json {
            try Output.json(Result(set: set, state: "forgotten", notes: notes))
        } else {
            notes.forEach { print($0) }
            print("Forgot set \(set).")
        }
    }
}
