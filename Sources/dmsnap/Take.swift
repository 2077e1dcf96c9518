import ArgumentParser
import DMSnap

struct Take: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Snapshot a set of live devices in one freeze window.",
        usage: """
            dmsnap take <set> <DEVICE=COW[:SIZE]>... [--cow-size <size>] [--force]
                   [--chunk-size <size>] [--freeze-timeout <seconds>] [--json]
            dmsnap take <set> <DEVICE>... --cow-dir <dir> [--cow-size <size>] ...
            dmsnap take <set> ... [--freeze-cgroup <path>]... [--freeze-unit <unit>]
            """,
        discussion: """
            Each DEVICE (a dm name, /dev/mapper/NAME or /dev/dm-N) keeps its name, number and mounts; \
            its writes go to COW from now on. A hidden base device per DEVICE holds the frozen image. \
            All devices are frozen together, so the set is consistent.

            COW is a block device, or a file: dmsnap creates a missing file sparse (SIZE, else \
            --cow-size) and runs it on a loop device; merge and discard delete it again. \
            'dmsnap monitor' grows COW files before they fill.

            --freeze-cgroup and --freeze-unit stop an application's processes (cgroup v2 \
            freezer) before the filesystems are synced and frozen, and let them go on after the \
            thaw: the image holds no half-done update of theirs. Hooks (--pre-freeze, \
            --post-thaw, and the executables of /etc/dmsnap/hooks.d in name order, called with \
            the phase) run outside the freeze window, without a shell, with DMSNAP_SET, \
            DMSNAP_PHASE, DMSNAP_DEVICES (and DMSNAP_RESULT after) in their environment.
            """
    )

    @Argument(help: "Name of the new set: 1-64 of [A-Za-z0-9._+-].") var set: String
    @Argument(help: ArgumentHelp("DEVICE=COW pairs (DEVICE alone with --cow-dir).", valueName: "DEVICE=COW[:SIZE]"))
    var pairs: [DevicePair] = []
    @OptionGroup var options: TakeOptions
    @Flag(help: "Print the new set as JSON.") var json = false
    @OptionGroup var common: ChangeOptions

    func run() throws {
        let request = try options.request(set: set, pairs: pairs)
        let manager = makeManager(common)
        let started = ContinuousClock.now
        let taken = try cli { () throws(DMSnapError) in try manager.take(request) }
        let elapsed = ContinuousClock.now - started
        for m in taken.members {
            guard let crypt = m.namedAs else { continue }
            Output.note("\(crypt) is a dm-crypt device: snapshotted \(m.device), the layer below it (the COW holds ciphertext; the key is never read)")
        }
        if let signal = LinuxKernel.pendingSignal {
            Output.warning("interrupted by \(signalName(signal)) after the point of no return: the take finished")
        }
        let status = try cli { () throws(DMSnapError) in try manager.status(set) }
        if json {
            try Output.json(status[0])
        } else {
            print("Took set \(set): \(request.pairs.count) device\(request.pairs.count == 1 ? "" : "s") in \(Int((elapsed.seconds * 1000).rounded())) ms")
            StatusPrinter.table(status, fields: StatusField.defaults, headings: true)
        }
        // the set is taken; a post-thaw hook that failed is the caller's to know
        if !manager.hookFailures.isEmpty {
            throw CLIError(message: manager.hookFailures.joined(separator: "; ") + " (the set was taken)", status: .failed)
        }
    }
}

/// The options of a take, shared by `take` and `run`.
struct TakeOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Make the COW files here, one per device (SET-DEVICE.cow).", valueName: "dir"))
    var cowDir: String?
    @Option(help: ArgumentHelp("Size of new COW files: bytes (512M, 2G) or a share of the device (default: 20%).",
                               valueName: "size"))
    var cowSize: String?
    @Flag(help: "Accept COW files on tmpfs or ramfs: the set is lost at reboot.") var volatile = false
    @Flag(help: "Run COW files' loops through the page cache instead of direct I/O.") var bufferedCow = false
    @Option(name: .customLong("freeze-cgroup"),
            help: ArgumentHelp("Freeze this cgroup v2 directory's processes first (repeatable).", valueName: "path"))
    var freezeCgroups: [String] = []
    @Option(name: .customLong("freeze-unit"),
            help: ArgumentHelp("Freeze this systemd unit's cgroup first (repeatable).", valueName: "unit"))
    var freezeUnits: [String] = []
    @Option(name: .customLong("pre-freeze"),
            help: ArgumentHelp("Run this before the freeze; if it fails, nothing is taken (repeatable).", valueName: "command"))
    var preFreeze: [String] = []
    @Option(name: .customLong("post-thaw"),
            help: ArgumentHelp("Run this after the thaw, also when the take failed (repeatable).", valueName: "command"))
    var postThaw: [String] = []
    @Option(help: ArgumentHelp("Kill a hook that runs longer.", valueName: "seconds")) var hookTimeout: Double = 60
    @Option(help: ArgumentHelp("COW chunk size, a power of two from 4k to 512k (default: 4k).", valueName: "size"))
    var chunkSize: String?
    @Flag(help: "Overwrite a COW that carries a signature; snapshot a device another tool owns.") var force = false
    @Option(help: ArgumentHelp("Give up, thaw and roll back when freezing the set takes longer.",
                               valueName: "seconds"))
    var freezeTimeout: Double = 10

    func validate() throws {
        guard freezeTimeout > 0, freezeTimeout.isFinite else { throw ValidationError("--freeze-timeout must be a number of seconds > 0") }
        guard hookTimeout > 0, hookTimeout.isFinite else { throw ValidationError("--hook-timeout must be a number of seconds > 0") }
    }

    /// The library's request for `set` and the `DEVICE=COW` pairs; a malformed pair is refused
    /// (exit 3) like any other bad input.
    func request(set: String, pairs: [DevicePair]) throws -> TakeRequest {
        var parsed: [(device: String, cow: String)] = []
        for p in pairs {
            do { parsed.append(try TakeRequest.pair(p.text)) } catch { throw CLIError(message: error.description, status: .refused) }
        }
        var request = TakeRequest(set: set, pairs: parsed, chunkSize: chunkSize, force: force,
                                  freezeTimeout: .milliseconds(Int64((freezeTimeout * 1000).rounded())))
        request.cowDirectory = cowDir
        request.cowSize = cowSize
        request.volatile = volatile
        request.directIO = !bufferedCow
        request.cgroups = freezeCgroups
        request.units = freezeUnits
        request.preFreeze = preFreeze
        request.postThaw = postThaw
        request.hookTimeout = .milliseconds(Int64((hookTimeout * 1000).rounded()))
        return request
    }
}
