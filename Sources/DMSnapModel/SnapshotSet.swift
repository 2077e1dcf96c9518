// DMSnapModel — the values every layer shares: checked names and numbers, sizes, typed tables,
// kernel statuses and facts, the persisted set, the state vocabulary. No I/O, no libc: depends on
// nothing but FoundationEssentials (Date, Codable) and swift-system's `Errno` (a value).
import FoundationEssentials

/// The persisted description of a snapshot set: everything needed to merge, discard or
/// rebuild it, without asking the kernel.
public struct SnapshotSet: Codable, Hashable, Sendable {
    /// The last step dmsnap committed for the set (what it was doing), as recorded. `taking` and
    /// `discarding` are transient: a set left in one of them was interrupted. What the set *is*
    /// now is a `SetState`, observed from the kernel (see `Planner.observe`).
    public enum Phase: String, Codable, Hashable, Sendable {
        case taking, active, merging, discarding
    }

    public struct Member: Codable, Hashable, Sendable {
        /// The live device: keeps its name and number; runs the snapshot table after take.
        public var device: DeviceName
        public var number: DeviceNumber
        public var uuid: String
        /// The live device's table before take; restored by merge and discard.
        public var originalTable: Table
        /// Hidden device holding the frozen image.
        public var base: DeviceName
        public var baseUUID: String
        /// The COW: a block device, or (with `cowFile`) a regular file on a loop device.
        public var cow: String
        /// The COW block device; for a COW file the loop it is attached to now (another one
        /// after a reboot: `activate` attaches the file again).
        public var cowNumber: DeviceNumber
        public var cowSize: Sectors
        /// Set when the COW is a file dmsnap runs on a loop device.
        public var cowFile: COWFile?
        /// Size and hash of the base's first `Fingerprint.bytes` (128 KiB) right after take:
        /// `activate` refuses a base that changed since (the COW would no longer match it).
        public var baseFingerprint: String?
        /// The frozen image mounted for a backup (`dmsnap mount`), if it is.
        public var view: ImageView?
        /// The dm-crypt device named in take, which sits on this one: dmsnap snapshots the layer
        /// below a crypt device (its table holds the key), so the COW holds ciphertext.
        public var namedAs: DeviceName?

        public init(device: DeviceName, number: DeviceNumber, uuid: String, originalTable: Table, base: DeviceName,
                    baseUUID: String, cow: String, cowNumber: DeviceNumber, cowSize: Sectors) {
            self.device = device
            self.number = number
            self.uuid = uuid
            self.originalTable = originalTable
            self.base = base
            self.baseUUID = baseUUID
            self.cow = cow
            self.cowNumber = cowNumber
            self.cowSize = cowSize
        }

        public var size: Sectors { originalTable.size }

        /// The live device's table while the set is active (`merge`: while merging). `base` names
        /// the base by number (as the kernel reports it) or, in a plan that creates the base, by
        /// name (the executor resolves it before loading).
        public func snapshotTable(base: DeviceRef, chunk: Sectors, merge: Bool) -> Table {
            SnapshotParams(origin: base, cow: .number(cowNumber), chunk: chunk).table(size: size, merge: merge)
        }

        /// The same, for a plan that attaches the COW file first: the table names the file
        /// (the executor puts the number of the loop it attached in its place).
        public func snapshotTableAttaching(base: DeviceRef, chunk: Sectors, merge: Bool) -> Table {
            guard cowFile != nil else { return snapshotTable(base: base, chunk: chunk, merge: merge) }
            return SnapshotParams(origin: base, cow: .path(cow), chunk: chunk).table(size: size, merge: merge)
        }
    }

    public var format = 1
    public var name: SetName
    public var created: Date
    public var phase: Phase
    public var chunk: Sectors
    public var members: [Member]
    /// The kernel's boot id when the set was taken or last activated: a set whose devices are
    /// gone in another boot is `inactive` (waiting for `dmsnap activate`), not broken.
    public var bootID: String?
    /// The cgroups (directories) frozen around the take (`--freeze-cgroup`, `--freeze-unit`),
    /// and how long they were frozen.
    public var cgroups: [String]?
    public var cgroupsFrozenMilliseconds: Double?
    /// The hooks run around the take.
    public var hooks: [Hook]?

    public init(name: SetName, created: Date, phase: Phase, chunk: Sectors, members: [Member]) {
        self.name = name
        self.created = created
        self.phase = phase
        self.chunk = chunk
        self.members = members
    }

    public func with(phase: Phase) -> SnapshotSet {
        var copy = self
        copy.phase = phase
        return copy
    }

    /// The same set with the loops a plan attached to its COW files (file path → loop).
    public func with(loops: [String: DeviceNumber]) -> SnapshotSet {
        var copy = self
        for i in copy.members.indices where copy.members[i].cowFile != nil {
            if let n = loops[copy.members[i].cow] { copy.members[i].cowNumber = n }
        }
        return copy
    }
}

/// A frozen image mounted read-only for a file-level backup: a throwaway non-persistent snapshot
/// of the base (its COW a loop over an unlinked file in memory), so the filesystem replays its
/// journal into it and the base is never written.
public struct ImageView: Codable, Hashable, Sendable {
    /// The hidden dm device of the view (`NAME-dmsnap-view`).
    public var device: DeviceName
    public var uuid: String
    public var mountPoint: String
    public var fsType: String
    /// True when dmsnap made the mount point (DIR/DEVICE): it removes it at umount.
    public var madeDirectory: Bool

    public init(device: DeviceName, uuid: String, mountPoint: String, fsType: String, madeDirectory: Bool) {
        self.device = device
        self.uuid = uuid
        self.mountPoint = mountPoint
        self.fsType = fsType
        self.madeDirectory = madeDirectory
    }
}

/// A set description that does not parse: which set, which file, and why in one line.
public struct UnreadableSet: Hashable, Sendable {
    public var name: SetName
    public var path: String
    public var reason: String
    public init(name: SetName, path: String, reason: String) {
        self.name = name
        self.path = path
        self.reason = reason
    }
}

/// The names and dm uuids of the devices dmsnap creates.
///
/// A base (and a view of a frozen image) carries the same content as the live device, so a
/// member's LVM physical-volume label shows up on it a second time. Their uuids are made so that
/// lvm2 never scans them for PVs, the way it skips its own hidden layers (an LV's `-real` and
/// `-cow` devices): `LVM-` and more than 69 characters ("Reserved uuid … on internal LV device …
/// not usable" in lvm2's `device_is_usable`, whatever `devices/scan_lvs` says). `pvs` then sees
/// the PV once and `vgchange -ay` does not refuse over a duplicate. Unlike lvm2's layers they
/// hold no `-` after `LVM-`: libblkid takes such a uuid for a private device and finds no
/// filesystem on it (mount(8) could not tell the type of a base; `dmsnap mount` could not
/// either). The `-` of a set name is written `:` there. `_` and `:` are not in lvm2's id
/// alphabet (`[A-Za-z0-9!#]`), so no VG or LV of lvm2's can ever match. Sets taken by older
/// versions have `DMSNAP-SET-baseN` bases; both forms are read.
public enum DMSnapNaming {
    public static let uuidPrefix = "DMSNAP-"
    /// What a hidden device's uuid starts with.
    public static let hiddenPrefix = "LVM-DMSNAP_"
    /// lvm2 reserves `LVM-` uuids longer than 4 + 2 × 32 + 1 characters for its internal layers.
    public static let lvmReservedLength = 70
    public static let baseSuffix = "-dmsnap-base"

    public static func baseName(for device: DeviceName) throws(ModelError) -> DeviceName {
        try DeviceName(device.value + baseSuffix)
    }

    /// `LVM-DMSNAP_SET_baseN`, padded with `_000…` to the length lvm2 reserves.
    public static func baseUUID(set: SetName, index: Int) -> String {
        hidden(set, "base\(index)")
    }

    public static let viewSuffix = "-dmsnap-view"

    public static func viewName(for device: DeviceName) throws(ModelError) -> DeviceName {
        try DeviceName(device.value + viewSuffix)
    }

    public static func viewUUID(set: SetName, index: Int) -> String {
        hidden(set, "view\(index)")
    }

    /// `LVM-DMSNAP_` + SET (its `-` as `:`) + `_` + ROLE, then `_` and zeros up to
    /// `lvmReservedLength` characters.
    static func hidden(_ set: SetName, _ role: String) -> String {
        let uuid = hiddenPrefix + String(set.value.map { $0 == "-" ? ":" : $0 }) + "_" + role
        guard uuid.count < lvmReservedLength else { return uuid }
        return uuid + "_" + String(repeating: "0", count: lvmReservedLength - uuid.count - 1)
    }

    /// The set and role (`base0`) a hidden device's uuid names; an older `DMSNAP-SET-baseN` too.
    static func parts(ofHidden uuid: String) -> (set: String, role: Substring)? {
        if uuid.hasPrefix(uuidPrefix) {
            let rest = uuid.dropFirst(uuidPrefix.count)
            guard let dash = rest.lastIndex(of: "-") else { return nil }
            return (String(rest[..<dash]), rest[rest.index(after: dash)...])
        }
        guard uuid.hasPrefix(hiddenPrefix) else { return nil }
        var rest = uuid.dropFirst(hiddenPrefix.count)
        if let pad = rest.lastIndex(of: "_"), rest[rest.index(after: pad)...].allSatisfy({ $0 == "0" }) {
            rest = rest[..<pad]
        }
        guard let sep = rest.lastIndex(of: "_") else { return nil }
        return (String(rest[..<sep].map { $0 == ":" ? "-" : $0 }), rest[rest.index(after: sep)...])
    }

    /// The set a base device's uuid names (`LVM-DMSNAP_SET_baseN_0…`, or `DMSNAP-SET-baseN` from
    /// an older version), nil for any other uuid.
    public static func set(ofBaseUUID uuid: String) -> SetName? {
        guard let (set, role) = parts(ofHidden: uuid), role.hasPrefix("base") else { return nil }
        let digits = role.dropFirst(4)
        guard !digits.isEmpty, digits.allSatisfy(\.isNumber) else { return nil }
        return try? SetName(set)
    }

    /// The live device a base was made for (`NAME-dmsnap-base` → `NAME`).
    public static func live(ofBase base: DeviceName) -> DeviceName? {
        guard base.value.hasSuffix(baseSuffix) else { return nil }
        return try? DeviceName(String(base.value.dropLast(baseSuffix.count)))
    }
}
