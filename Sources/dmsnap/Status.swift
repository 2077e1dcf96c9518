import ArgumentParser
import DMSnap

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show snapshot sets: state and COW usage per device.",
        discussion: """
            Fields for -o: \(StatusField.wrappableNames)

            A set that needs something says what and the command that moves it on \
            (JSON: "hint").
            """
    )

    @Argument(help: "A set name; all sets when omitted.", completion: .setNames) var set: String?
    @Flag(help: "Print JSON: {\"sets\":[…]} without SET, one set object with SET.") var json = false
    @Flag(help: "Omit the heading line.") var noheadings = false
    @Option(name: .short, help: ArgumentHelp("Comma-separated fields to show.", valueName: "fields"),
            completion: .statusFields, transform: StatusField.list)
    var o: [StatusField]?

    func run() throws {
        let manager = makeManager()
        let sets = try cli { () throws(DMSnapError) in try manager.status(set) }
        if json {
            if set != nil {
                try Output.json(sets[0])
            } else {
                struct Root: Encodable { var sets: [SetStatus] }
                try Output.json(Root(sets: sets))
            }
            return
        }
        if sets.isEmpty && o == nil && !noheadings {
            print("No snapshot sets.")
            return
        }
        var fields = o ?? StatusField.defaults
        // a running monitor knows when each COW fills up
        if o == nil, sets.contains(where: { $0.devices.contains(where: \.monitored) }) { fields.append(.timeToFull) }
        StatusPrinter.table(sets, fields: fields, headings: !noheadings)
        // For people: what each set that needs something is, and the command that moves it on.
        if o == nil && !noheadings {
            for s in sets where s.hint != nil { print(s.summary) }
            for s in sets {
                for d in s.devices { if let mp = d.imageMount { print("set \(s.name): \(d.device)'s frozen image is mounted on \(mp)") } }
                if let hooks = s.hooks { print("set \(s.name): hooks at take: \(hooks.joined(separator: "; "))") }
                if let cgroups = s.cgroups {
                    let ms = s.cgroupsFrozenMilliseconds.map { " for \(fixed($0, 1)) ms" } ?? ""
                    print("set \(s.name): froze \(cgroups.joined(separator: ", "))\(ms) at take")
                }
                for d in s.devices where d.volatile {
                    print("set \(s.name): \(d.device)'s COW file is in memory (tmpfs): the set is lost at reboot")
                }
            }
        }
    }
}
