import ArgumentParser
import DMSnap

struct Prepare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make a plain device (partition, disk, md, loop) snapshot-ready.",
        usage: """
            dmsnap prepare <device> --name <name> [--json]
                   [--wait-lock <seconds>] [--no-syslog]
            """,
        discussion: """
            Wraps the unmounted, unused DEVICE in a device-mapper linear device NAME over all of \
            it. Use /dev/mapper/NAME from now on (mkfs, mount, or open a LUKS container on it): \
            'dmsnap take SET NAME=COW' can then snapshot it. dmsnap records the device by its \
            partition UUID, WWN, or filesystem or LUKS UUID (never by /dev/sdX), and 'dmsnap \
            activate --all' (dmsnap-activate.service) re-creates NAME at boot, before the sets. \
            With the udev rule of the package, /dev/disk/by-uuid links point at NAME, so fstab \
            and crypttab UUID= lines keep working.
            """
    )

    @Argument(help: ArgumentHelp("The block device to wrap.", valueName: "device"), completion: .file())
    var device: String
    @Option(help: ArgumentHelp("Name of the wrapper (/dev/mapper/NAME).", valueName: "name")) var name: String
    @Flag(help: "Print a JSON result.") var json = false
    @OptionGroup var common: ChangeOptions

    struct Result: Encodable {
        var volume: String
        var device: String
        var identity: String
        var sectors: UInt64
    }

    func run() throws {
        let manager = makeManager(common)
        let volume = try cli { () throws(DMSnapError) in try manager.prepare(device, name: name) }
        if json {
            try Output.json(Result(volume: volume.name.value, device: device, identity: volume.identity.description,
                                   sectors: volume.sectors.value))
        } else {
            print("Prepared \(device) as /dev/mapper/\(volume.name) (found again by \(volume.identity)).")
        }
    }
}

struct Unprepare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove a prepared volume's wrapper; the device under it is left as it is.",
        discussion: "The wrapper must be unmounted, closed and in no set."
    )

    @Argument(help: ArgumentHelp("The prepared volume.", valueName: "name")) var name: String
    @Flag(help: "Print a JSON result.") var json = false
    @OptionGroup var common: ChangeOptions

    func run() throws {
        let manager = makeManager(common)
        try cli { () throws(DMSnapError) in try manager.unprepare(name) }
        if json {
            struct Result: Encodable { var volume: String; var state: String }
            try Output.json(Result(volume: name, state: "unprepared"))
        } else {
            print("Removed the wrapper \(name); the device under it holds the data.")
        }
    }
}
