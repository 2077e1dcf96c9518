import ArgumentParser
import DMSnap

struct Changes: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the byte ranges of each device changed since take.",
        discussion: """
            Read from the COW's own exception store (never through the live device): what an \
            upgrade touched, and how much a merge will copy back. Ranges are in bytes, chunk-rounded, \
            sorted and coalesced.
            """
    )

    @Argument(help: "The set.", completion: .setNames) var set: String
    @Argument(help: "One device of the set; all when omitted.", completion: .deviceNames) var device: String?
    @Flag(help: "Print JSON: {\"set\", \"devices\":[{\"device\", \"chunk_bytes\", \"changed_bytes\", \"ranges\", \"changed\":[{\"offset\", \"length\"}]}]}.")
    var json = false

    func run() throws {
        let changes = try cli { () throws(DMSnapError) in try makeManager().changes(set, device: device) }
        if json {
            struct Root: Encodable { var set: String; var devices: [DeviceChanges] }
            try Output.json(Root(set: set, devices: changes))
            return
        }
        for d in changes {
            print("\(d.device): \(d.changedBytes) bytes changed in \(d.ranges) range\(d.ranges == 1 ? "" : "s") (chunk \(d.chunkBytes) bytes)")
            if !d.changed.isEmpty {
                print(Output.columns(d.changed.map { [String($0.offset), String($0.length)] }, header: ["OFFSET", "LENGTH"]))
            }
        }
    }
}
