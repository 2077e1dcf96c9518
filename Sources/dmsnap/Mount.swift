import ArgumentParser
import DMSnap

struct Mount: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mount a set's frozen image read-only, for a file-level backup.",
        usage: "dmsnap mount <set> [<device>] <dir> [--json] [--wait-lock <seconds>]",
        discussion: """
            The image is mounted through a throwaway snapshot of it whose changes stay in memory, \
            so the filesystem can replay its journal and the frozen image itself is never written. \
            With several devices and no DEVICE, each is mounted under DIR/DEVICE. DIR must be an \
            empty directory outside the set's filesystems. ext2/3/4 and xfs; merge and discard wait \
            for 'dmsnap umount'.
            """
    )

    @Argument(help: "The set.", completion: .setNames) var set: String
    @Argument(help: ArgumentHelp("[DEVICE] DIR: a device of the set (all when omitted), and the directory.", valueName: "device-and-dir"))
    var rest: [String] = []
    @Flag(help: "Print a JSON result.") var json = false
    @OptionGroup var common: ChangeOptions

    func validate() throws {
        guard (1...2).contains(rest.count) else { throw ValidationError("expected [DEVICE] DIR") }
    }

    func run() throws {
        let device = rest.count == 2 ? rest[0] : nil
        let dir = rest.last!
        let manager = makeManager(common)
        let views = try cli { () throws(DMSnapError) in try manager.mount(set, device: device, at: dir) }
        if json {
            struct Result: Encodable { var set: String; var mounts: [String] }
            try Output.json(Result(set: set, mounts: views.map(\.mountPoint)))
        } else {
            for v in views { print("Mounted the frozen image (\(v.fsType), read-only) on \(v.mountPoint).") }
        }
    }
}

struct Umount: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Unmount frozen images 'dmsnap mount' mounted.",
        usage: """
            dmsnap umount <set> [<target>] [--json]
                   [--wait-lock <seconds>] [--no-syslog]
            """,
        discussion: "All of the set's, or the one a device or a mount point names."
    )

    @Argument(help: "The set.", completion: .setNames) var set: String
    @Argument(help: "A device of the set, or a mount point.") var target: String?
    @Flag(help: "Print a JSON result.") var json = false
    @OptionGroup var common: ChangeOptions

    func run() throws {
        let manager = makeManager(common)
        let views = try cli { () throws(DMSnapError) in try manager.umount(set, target: target) }
        if json {
            struct Result: Encodable { var set: String; var unmounted: [String] }
            try Output.json(Result(set: set, unmounted: views.map(\.mountPoint)))
        } else {
            for v in views { print("Unmounted the frozen image from \(v.mountPoint).") }
        }
    }
}
