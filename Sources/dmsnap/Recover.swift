import ArgumentParser
import DMSnap

struct Recover: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bring sets an interrupted dmsnap left half-way to a consistent state.",
        discussion: """
            Thaws filesystems left frozen and resumes devices left suspended, then finishes or undoes \
            the interrupted take, finishes an interrupted merge or discard. Safe to run again.
            """
    )

    @Argument(help: "A set; all sets when omitted.", completion: .setNames) var set: String?
    @Flag(help: "Print a JSON result.") var json = false
    @OptionGroup var common: ChangeOptions

    func run() throws {
        let manager = makeManager(common)
        let report = try cli { () throws(DMSnapError) in try manager.recover(set) }
        if json {
            struct Result: Encodable { var actions: [String] }
            try Output.json(Result(actions: report))
        } else if report.isEmpty {
            print("No snapshot sets.")
        } else {
            report.forEach { print($0) }
        }
    }
}
