import ArgumentParser
import DMSnap

struct Extend: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Grow the COW file of one device of a set, while it runs.",
        usage: """
            dmsnap extend <set> <device> +<size>|+<percent>%|<size> [--json]
                   [--wait-lock <seconds>]
            """,
        discussion: """
            +SIZE grows the COW by SIZE (512M, 2G) or by a share of its size now (+50%); SIZE \
            without + grows it to SIZE. The snapshot uses the new size at once. A block-device COW \
            is grown with its own tool (e.g. lvextend): the snapshot picks that up by itself.
            """
    )

    @Argument(help: "The set.", completion: .setNames) var set: String
    @Argument(help: "The device whose COW grows.") var device: String
    @Argument(help: ArgumentHelp("+SIZE, +N% or SIZE.", valueName: "size")) var size: String
    @Flag(help: "Print a JSON result.") var json = false
    @OptionGroup var common: ChangeOptions

    struct Result: Encodable {
        var set: String
        var device: String
        var fromBytes: UInt64
        var toBytes: UInt64
        enum CodingKeys: String, CodingKey { case set, device, fromBytes = "from_bytes", toBytes = "to_bytes" }
    }

    func run() throws {
        var by: COWSizePolicy?
        var to: UInt64?
        do {
            if size.hasPrefix("+") { by = try COWSizePolicy(parsing: String(size.dropFirst())) } else {
                guard !size.hasSuffix("%") else { throw ModelError.invalidSize(size, "a share needs a + (+50%)") }
                to = try SizeParser.bytes(size)
            }
        } catch { throw CLIError(message: "\(error)", status: .refused) }
        let manager = makeManager(common)
        let (from, grown) = try cli { () throws(DMSnapError) in try manager.extend(set, device: device, by: by, to: to) }
        if json {
            try Output.json(Result(set: set, device: device, fromBytes: from.bytes, toBytes: grown.bytes))
        } else {
            print("Grew the COW of \(device) in set \(set) from \(ByteCount.text(from.bytes)) to \(ByteCount.text(grown.bytes)).")
        }
    }
}
