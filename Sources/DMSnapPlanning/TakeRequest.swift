import DMSnapModel

/// A request to snapshot a set of devices.
public struct TakeRequest: Hashable, Sendable {
    public var set: String
    /// (device, cow) as given: a device is a dm name, `/dev/mapper/NAME` or `/dev/dm-N`; a COW is
    /// a block device path, or a regular file's (`PATH` or `PATH:SIZE`), or empty with `cowDirectory`.
    public var pairs: [(device: String, cow: String)]
    public var chunkSize: String?
    public var force: Bool
    /// How long freezing every filesystem of the set may take; past it the take gives up, thaws
    /// and rolls back (a filesystem over a slow or stuck device). nil: no limit.
    public var freezeTimeout: Duration?

    /// Where COW files go for devices given without `=COW` (`SET-DEVICE.cow`).
    public var cowDirectory: String?
    /// How big new COW files are made (`--cow-size`): a size or a percentage of the origin.
    public var cowSize: String?
    /// Accept COW files on tmpfs/ramfs (the set is lost at reboot).
    public var volatile = false
    /// Run COW files' loops with direct I/O where the filesystem allows it (no double caching).
    public var directIO = true
    /// cgroup v2 directories, and systemd units (their cgroups), frozen around the take.
    public var cgroups: [String] = []
    public var units: [String] = []
    /// Commands run before the freeze and after the thaw (plus the drop-ins of the hooks
    /// directory), each given at most `hookTimeout`.
    public var preFreeze: [String] = []
    public var postThaw: [String] = []
    public var hookTimeout: Duration = .seconds(60)
    /// Paths a rollback of the set must not pull away (`run --on-failure discard`), with what
    /// each is ("dmsnap's own binary"); a member holding one is refused.
    public var floor: [String: String] = [:]

    public static let defaultFreezeTimeout: Duration = .seconds(10)

    public init(set: String, pairs: [(device: String, cow: String)], chunkSize: String? = nil, force: Bool = false,
                freezeTimeout: Duration? = TakeRequest.defaultFreezeTimeout) {
        self.set = set
        self.pairs = pairs
        self.chunkSize = chunkSize
        self.force = force
        self.freezeTimeout = freezeTimeout
    }

    /// Parses `DEVICE=COW` or (a COW file in `--cow-dir`) `DEVICE`.
    public static func pair(_ text: String) throws(PlanError) -> (device: String, cow: String) {
        guard let eq = text.firstIndex(of: "=") else {
            guard !text.isEmpty else { throw PlanError(text, "expected DEVICE=COW") }
            return (text, "")
        }
        guard eq != text.startIndex, text.index(after: eq) != text.endIndex else {
            throw PlanError(text, "expected DEVICE=COW")
        }
        return (String(text[..<eq]), String(text[text.index(after: eq)...]))
    }

    /// A COW as given: its path and, for a file, `:SIZE` (a size or a percentage) when given.
    public static func cowSpec(_ cow: String) -> (path: String, size: String?) {
        guard let colon = cow.lastIndex(of: ":") else { return (cow, nil) }
        let size = String(cow[cow.index(after: colon)...])
        // only a suffix that reads as a size is one: a path may hold a colon
        guard (try? COWSizePolicy(parsing: size)) != nil || size.first?.isNumber == true else { return (cow, nil) }
        return (String(cow[..<colon]), size)
    }

    /// The size a pair gives its COW (`DEVICE=COW:SIZE`), if it gives one.
    public static func cowSize(of pair: (device: String, cow: String)) -> String? {
        pair.cow.isEmpty ? nil : cowSpec(pair.cow).size
    }

    /// The size a new COW file for `pair` gets, as given: the pair's, else `--cow-size` (nil:
    /// the default).
    public func cowSizeText(_ pair: (device: String, cow: String)) -> String? { Self.cowSize(of: pair) ?? cowSize }

    /// The COW path for a pair: as given, or `DIR/SET-DEVICE.cow` for a device given alone.
    public func cowPath(_ pair: (device: String, cow: String)) -> String? {
        if !pair.cow.isEmpty { return Self.cowSpec(pair.cow).path }
        guard let dir = cowDirectory else { return nil }
        let device = pair.device.split(separator: "/").last.map(String.init) ?? pair.device
        return (dir.hasSuffix("/") ? String(dir.dropLast()) : dir) + "/\(set)-\(device).cow"
    }

    public static func == (a: TakeRequest, b: TakeRequest) -> Bool {
        a.set == b.set && a.chunkSize == b.chunkSize && a.force == b.force && a.freezeTimeout == b.freezeTimeout
            && a.cgroups == b.cgroups && a.units == b.units && a.preFreeze == b.preFreeze && a.postThaw == b.postThaw && a.cowDirectory == b.cowDirectory && a.cowSize == b.cowSize && a.volatile == b.volatile && a.directIO == b.directIO && a.floor == b.floor
            && a.pairs.map { [$0.device, $0.cow] } == b.pairs.map { [$0.device, $0.cow] }
    }
    public func hash(into h: inout Hasher) {
        h.combine(set)
        for p in pairs { h.combine(p.device); h.combine(p.cow) }
    }

    /// What planning this request needs looked up (see `KernelView.gather`). Device paths — given,
    /// or `/dev/mapper/NAME` for a device given by name — are only stat'ed and asked for their size
    /// (no I/O: a device may be suspended); COWs are probed too. Read in full: the named devices,
    /// their would-be bases, and (added by gather) the dm devices behind the paths.
    /// COW paths are also inspected as files (`files`), as is `--cow-dir`.
    public var lookups: (paths: [String], probePaths: [String], scope: KernelView.Scope, files: [String]) {
        var paths: [String] = []
        var named: [String] = []
        var names: Set<DeviceName> = []
        for p in pairs {
            if p.device.hasPrefix("/") {
                paths.append(p.device)
            } else if let name = try? DeviceName(p.device) {
                named.append(name.path)
                names.insert(name)
                if let base = try? DMSnapNaming.baseName(for: name) { names.insert(base) }
            }
        }
        let cows = pairs.compactMap(cowPath).filter { $0.hasPrefix("/") }
        let files = cows.filter { !$0.hasPrefix("/dev/") } + (cowDirectory.map { [$0] } ?? [])
        return (paths + named, cows, .devices(names), files)
    }
}
