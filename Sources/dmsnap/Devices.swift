import ArgumentParser
import DMSnap

struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List every device-mapper device with its number, open count, state, uuid and table."
    )

    @Flag(help: "Print JSON for scripts.") var json = false

    /// One device in the JSON output (field names are the contract).
    struct Entry: Encodable {
        var name: String
        var number: String
        var major: UInt32
        var minor: UInt32
        var open_count: Int
        var suspended: Bool
        var uuid: String
        var table: [String]

        init(_ d: DeviceReport) {
            name = d.info.name.value
            number = d.info.number.description
            major = d.info.number.major
            minor = d.info.number.minor
            open_count = d.info.openCount
            suspended = d.info.suspended
            uuid = d.info.uuid
            table = d.table?.targets.map(\.description) ?? []
        }
    }

    func run() throws {
        let entries = try cli { () throws(DMSnapError) in try makeManager().devices() }.map(Entry.init)
        if json {
            struct Root: Encodable { var devices: [Entry] }
            try Output.json(Root(devices: entries))
            return
        }
        if entries.isEmpty {
            print("No device-mapper devices.")
            return
        }
        let rows = entries.map { e in
            [e.name, e.number, String(e.open_count), e.suspended ? "suspended" : "active", e.uuid.isEmpty ? "-" : e.uuid,
             e.table.joined(separator: " | ")]
        }
        print(Output.columns(rows, header: ["NAME", "MAJ:MIN", "OPEN", "STATE", "UUID", "TABLE"]))
    }
}
