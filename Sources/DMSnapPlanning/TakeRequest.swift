import DMSnapModel

/// A request to snapshot a set of devices.
public struct TakeRequest: Hashable, Sendable {
    public var set: String
    /// (device, cow) as given: a device is a dm name, `/dev/mapper/NAME` or `/dev/dm-N`; a COW is a block device path.
    public var pairs: [(device: String, cow: String)]
    public var chunkSize: String?
    public var force: Bool
    /// How long freezing every filesystem of the set may take; past it the take gives up, thaws
    /// and rolls back (a filesystem over a slow or stuck device). nil: no limit.
    public var freezeTimeout: Duration?

    public static let defaultFreezeTimeout: Duration = .seconds(10)

    public init(set: String, pairs: [(device: String, cow: String)], chunkSize: String? = nil, force: Bool = false,
                freezeTimeout: Duration? = TakeRequest.defaultFreezeTimeout) {
        self.set = set
        self.pairs = pairs
        self.chunkSize = chunkSize
        self.force = force
        self.freezeTimeout = freezeTimeout
    }

    /// Parses `DEVICE=COW`.
    public static func pair(_ text: String) throws(PlanError) -> (device: String, cow: String) {
        guard let eq = text.firstIndex(of: "="), eq != text.startIndex, text.index(after: eq) != text.endIndex else {
            throw PlanError(text, "expected DEVICE=COW")
        }
        return (String(text[..<eq]), String(text[text.index(after: eq)...]))
    }

    public static func == (a: TakeRequest, b: TakeRequest) -> Bool {
        a.set == b.set && a.chunkSize == b.chunkSize && a.force == b.force && a.freezeTimeout == b.freezeTimeout
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
    public var lookups: (paths: [String], probePaths: [String], scope: KernelView.Scope) {
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
        return (paths + named, pairs.map(\.cow).filter { $0.hasPrefix("/") }, .devices(names))
    }
}
