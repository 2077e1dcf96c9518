import DMSnapModel
import FoundationEssentials

/// A set as `dmsnap status` reports it. Field names are the JSON contract.
public struct SetStatus: Encodable, Hashable, Sendable {
    public struct Device: Encodable, Hashable, Sendable {
        public var device: String
        public var base: String
        public var cow: String
        public var chunkSectors: UInt64
        public var cowTotalSectors: UInt64
        public var cowUsedSectors: UInt64?
        public var metadataSectors: UInt64?
        public var usedPercent: Double?
        public var state: SetState
        /// Why the device is not active/merging (human text; not in the JSON contract's required fields).
        public var reason: String?
        /// Where its frozen image is mounted (`dmsnap mount`), when it is.
        public var imageMount: String?
        /// `block` or `file` (a COW file dmsnap runs on a loop device).
        public var cowKind = "block"
        /// The loop device a COW file runs on now.
        public var cowLoop: String?
        /// On tmpfs/ramfs: lost at reboot.
        public var volatile = false
        /// From a running `dmsnap monitor`: how fast the COW fills, and when it would be full.
        public var monitored = false
        public var fillRateBytesPerSecond: Double?
        public var secondsToFull: Double?

        enum CodingKeys: String, CodingKey {
            case device, base, cow, state, reason
            case imageMount = "image_mount"
            case chunkSectors = "chunk_sectors", cowTotalSectors = "cow_total_sectors", cowUsedSectors = "cow_used_sectors"
            case metadataSectors = "metadata_sectors", usedPercent = "used_percent"
            case cowKind = "cow_kind", cowLoop = "cow_loop", volatile, monitored
            case fillRateBytesPerSecond = "fill_rate_bytes_per_second", secondsToFull = "seconds_to_full"
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(device, forKey: .device)
            try c.encode(base, forKey: .base)
            try c.encode(cow, forKey: .cow)
            try c.encode(chunkSectors, forKey: .chunkSectors)
            try c.encode(cowTotalSectors, forKey: .cowTotalSectors)
            try c.encode(cowUsedSectors, forKey: .cowUsedSectors)
            try c.encode(metadataSectors, forKey: .metadataSectors)
            try c.encode(usedPercent.map { ($0 * 100).rounded() / 100 }, forKey: .usedPercent)
            try c.encode(state, forKey: .state)
            if let reason { try c.encode(reason, forKey: .reason) }
            if let imageMount { try c.encode(imageMount, forKey: .imageMount) }
            try c.encode(cowKind, forKey: .cowKind)
            if let cowLoop { try c.encode(cowLoop, forKey: .cowLoop) }
            if volatile { try c.encode(volatile, forKey: .volatile) }
            try c.encode(monitored, forKey: .monitored)
            if let fillRateBytesPerSecond { try c.encode(fillRateBytesPerSecond.rounded(), forKey: .fillRateBytesPerSecond) }
            if let secondsToFull { try c.encode((secondsToFull * 10).rounded() / 10, forKey: .secondsToFull) }
        }
    }

    public var name: String
    public var state: SetState
    /// When the set was taken; nil when its description cannot be read.
    public var created: Date?
    public var devices: [Device]
    /// The command that moves the set on from its state (nil when it is healthy: active or, for
    /// `merge --no-wait`, merging is what the user asked for). Never one that points back here.
    public var hint: String?
    /// The cgroups frozen around the take, and for how long.
    public var cgroups: [String]?
    public var cgroupsFrozenMilliseconds: Double?
    /// The hooks run at take (`pre-freeze: CMD`), as given.
    public var hooks: [String]?

    enum CodingKeys: String, CodingKey {
        case name, state, created, devices, hint, cgroups, hooks
        case cgroupsFrozenMilliseconds = "cgroups_frozen_ms"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(state, forKey: .state)
        try c.encode(created, forKey: .created)
        try c.encode(devices, forKey: .devices)
        if let hint { try c.encode(hint, forKey: .hint) }
        if let cgroups { try c.encode(cgroups, forKey: .cgroups) }
        if let hooks { try c.encode(hooks, forKey: .hooks) }
        if let ms = cgroupsFrozenMilliseconds { try c.encode((ms * 100).rounded() / 100, forKey: .cgroupsFrozenMilliseconds) }
    }

    /// One line for people: `set s1 is inactive (vg-data: its devices are gone after a reboot):
    /// run 'dmsnap activate s1'`.
    public var summary: String {
        let reasons = devices.filter { $0.state == state }.compactMap { d in d.reason.map { "\(d.device): \($0)" } }
        var text = "set \(name) is \(state.rawValue)"
        if let first = reasons.first { text += " (\(first)\(reasons.count > 1 ? "; …" : ""))" }
        if let hint { text += ": run '\(hint)'" }
        return text
    }

    /// Builds the status of `set` from what the kernel says now.
    public static func of(_ set: SnapshotSet, view: KernelView) -> SetStatus {
        var devices: [Device] = []
        for m in set.members {
            let seen = Planner.observe(m, in: set, view: view)
            var d = Device(device: m.device.value, base: m.base.value, cow: m.cow, chunkSectors: set.chunk.value,
                           cowTotalSectors: m.cowSize.value, state: seen.state, reason: seen.reason)
            d.imageMount = m.view?.mountPoint
            if let file = m.cowFile {
                d.cowKind = "file"
                d.volatile = file.volatile
                if seen.state == .active || seen.state == .merging { d.cowLoop = view.devicePaths[m.cowNumber] }
            }
            if case let .valid(a, t, meta)? = seen.status {
                d.cowTotalSectors = t.value
                d.cowUsedSectors = a.value
                d.metadataSectors = meta.value
                d.usedPercent = seen.status?.usedPercent
            }
            devices.append(d)
        }
        var state = devices.map(\.state).max() ?? .active
        if set.phase == .taking || set.phase == .discarding { state = max(state, .incomplete) }
        var status = SetStatus(name: set.name.value, state: state, created: set.created, devices: devices,
                               hint: hint(state, set.name))
        status.cgroups = set.cgroups
        status.cgroupsFrozenMilliseconds = set.cgroupsFrozenMilliseconds
        status.hooks = set.hooks.map { $0.map { "\($0.phase.rawValue): \($0.text)" } }
        return status
    }

    /// The way out of each state.
    static func hint(_ state: SetState, _ name: SetName) -> String? {
        switch state {
        case .active: nil
        case .merging: "dmsnap merge \(name)"
        case .inactive: "dmsnap activate \(name)"
        case .incomplete: "dmsnap recover \(name)"
        case .lost: "dmsnap forget \(name)"
        case .invalid: "dmsnap discard \(name)"
        case .mergeFailed: "dmsnap merge \(name)"
        case .unreadable, .orphaned: "dmsnap recover \(name)"
        }
    }
}

extension SetStatus {
    /// Sets the kernel shows but no readable description has: unreadable ones (reported by name,
    /// with the file and why) and orphaned ones (dmsnap devices whose description is gone).
    public static func strays(_ view: KernelView) -> [SetStatus] {
        var byName: [SetName: [DeviceName]] = [:]
        for (base, set) in view.strayBases { byName[set, default: []].append(base) }
        var out: [SetStatus] = []
        for u in view.unreadable {
            out.append(SetStatus(name: u.name.value, state: .unreadable, created: nil,
                                 devices: devices(byName[u.name] ?? [], view, .unreadable, "\(u.path): \(u.reason)"),
                                 hint: hint(.unreadable, u.name)))
        }
        let unreadable = Set(view.unreadable.map(\.name))
        for name in byName.keys.sorted() where !unreadable.contains(name) {
            out.append(SetStatus(name: name.value, state: .orphaned, created: nil,
                                 devices: devices(byName[name]!, view, .orphaned, "no recorded set owns these dmsnap devices"),
                                 hint: hint(.orphaned, name)))
        }
        return out.sorted { $0.name < $1.name }
    }

    static func devices(_ bases: [DeviceName], _ view: KernelView, _ state: SetState, _ reason: String) -> [Device] {
        let rows = bases.sorted().map { base -> Device in
            let live = DMSnapNaming.live(ofBase: base)
            let p = live.flatMap { view.devices[$0]?.table?.targets.first?.params.snapshot }
            let cow = p?.cow.number.map { view.devicePaths[$0] ?? $0.description } ?? "-"
            return Device(device: live?.value ?? "-", base: base.value, cow: cow, chunkSectors: p?.chunk.value ?? 0,
                          cowTotalSectors: 0, state: state, reason: reason)
        }
        // an unreadable set with no devices left still gets its row (the reason names the file)
        return rows.isEmpty ? [Device(device: "-", base: "-", cow: "-", chunkSectors: 0, cowTotalSectors: 0, state: state, reason: reason)] : rows
    }
}

/// How far a merge has come, in sectors of COW data still to copy back.
public struct MergeProgress: Hashable, Sendable {
    public var remaining: UInt64
    public var total: UInt64
    public init(remaining: UInt64, total: UInt64) {
        self.remaining = remaining
        self.total = total
    }
    public var fraction: Double { total == 0 ? 1 : 1 - Double(remaining) / Double(total) }
    public var done: Bool { remaining == 0 }
}
