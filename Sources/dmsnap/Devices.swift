import ArgumentParser
import DMSnap

struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List every device-mapper device with its number, open count, state, uuid and table."
    )

    @Flag(help: "Print JSON for scripts.") var json = false

    struct Entry: Encodable {
        var name: String
        var number: String
        var major: UInt32
        var minor: UInt32
        var open_count: Int
        var suspended: Bool
        var uuid: String
        var table: [String]
    }

    func run() throws {
        let dm = LibDeviceMapper()
        guard dm.isPrivileged else { throw CLIError(message: "must be run as root", status: .refused) }
        var entries: [Entry] = []
        do {
            for device in try dm.list() {
                // A device can vanish between list and info; skip it rather than fail.
                guard let info = try dm.info(device.name) else { continue }
                let table = info.hasLiveTable ? try dm.table(device.name).targets.map(\.description) : []
                entries.append(Entry(name: device.name.value, number: info.number.description,
                                     major: info.number.major, minor: info.number.minor,
                                     open_count: info.openCount, suspended: info.suspended, uuid: info.uuid,
                                     table: table))
            }
        } catch {
            throw CLIError(message: error.description, status: .failed)
        }
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
