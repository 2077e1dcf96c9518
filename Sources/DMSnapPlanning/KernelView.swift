import DMSnapModel

/// What the planner knows about the kernel: a read-only snapshot of it, taken before planning
/// (by `KernelView.read` in the DMSnap library), so planning itself is pure.
public struct KernelView: Sendable {
    public struct Device: Hashable, Sendable {
        public var info: DeviceInfo
        public var table: Table?
        public var dependencies: [DeviceNumber]
        public var status: [TargetStatus]
        /// A dm-crypt device: its table (which holds the key) is never read.
        public var keyed: Bool
        public init(info: DeviceInfo, table: Table?, dependencies: [DeviceNumber] = [], status: [TargetStatus] = [],
                    keyed: Bool = false) {
            self.info = info
            self.table = table
            self.dependencies = dependencies
            self.status = status
            self.keyed = keyed
        }
    }

    public var privileged: Bool
    public var devices: [DeviceName: Device]
    /// Block device facts for every path the request names (or the error looking it up gave).
    public var blocks: [String: Result<BlockDeviceInfo, LookupFailure>]
    /// `--freeze-cgroup` directories and the cgroups of `--freeze-unit` units, and the cgroup
    /// each unit was found at (none: unknown).
    public var cgroups: [String: Result<CgroupFacts, LookupFailure>] = [:]
    public var units: [String: String] = [:]
    /// The hooks of a take, their programs checked (or why one cannot run).
    public var hooks: Result<[Hook], PlanError> = .success([])
    /// COW paths (and `--cow-dir`) as files: what is there, its filesystem, who uses it.
    public var files: [String: Result<FileFacts, LookupFailure>] = [:]
    /// The prepared volumes recorded, and what identifies each looked-up plain device.
    public var volumes: [PreparedVolume] = []
    public var identities: [String: [VolumeIdentity]] = [:]
    /// The block devices stacked directly on each looked-up device (and on those, upwards).
    public var holders: [DeviceNumber: [DeviceNumber]] = [:]
    /// The filesystems (their devices) of what dmsnap runs from, for `TakeRequest.floor`.
    public var floors: [String: DeviceNumber] = [:]
    public var claimed: [String: Bool]
    public var signatures: [String: String]
    public var mounts: [MountEntry]
    public var sets: [SnapshotSet]
    /// Loop devices among the looked-up paths (and the loops their files live on), by number.
    public var loopBackings: [DeviceNumber: LoopBacking] = [:]
    /// Set descriptions that cannot be read.
    public var unreadable: [UnreadableSet] = []
    /// dmsnap base devices (by their `DMSNAP-` uuid) that no readable recorded set owns, with
    /// the set their uuid names: an unreadable set's, or an orphaned one's.
    public var strayBases: [DeviceName: SetName] = [:]
    /// Paths of device numbers the planner may need to name (COWs of sets rebuilt from the kernel).
    public var devicePaths: [DeviceNumber: String] = [:]
    /// This boot of the kernel (`/proc/sys/kernel/random/boot_id`).
    public var bootID: String?
    /// The first bytes of the COW of every set member whose base device is gone (read to tell
    /// an inactive set after a reboot from an invalidated one), or why they could not be read.
    public var cowHeaders: [String: Result<[UInt8], LookupFailure>] = [:]

    public init(privileged: Bool, devices: [DeviceName: Device] = [:],
                blocks: [String: Result<BlockDeviceInfo, LookupFailure>] = [:], claimed: [String: Bool] = [:],
                signatures: [String: String] = [:], mounts: [MountEntry] = [], sets: [SnapshotSet] = [],
                bootID: String? = nil) {
        self.privileged = privileged
        self.devices = devices
        self.blocks = blocks
        self.claimed = claimed
        self.signatures = signatures
        self.mounts = mounts
        self.sets = sets
        self.bootID = bootID
    }

    public func device(numbered number: DeviceNumber) -> (DeviceName, Device)? {
        devices.first { $0.value.info.number == number }.map { ($0.key, $0.value) }
    }

    /// Every device number below `number` in the device stack (dm devices resolved recursively).
    public func underlying(_ number: DeviceNumber) -> Set<DeviceNumber> {
        var seen: Set<DeviceNumber> = []
        var queue = [number]
        while let n = queue.popLast() {
            guard let (_, d) = device(numbered: n) else { continue }
            for dep in d.dependencies where seen.insert(dep).inserted { queue.append(dep) }
        }
        return seen
    }

    /// Every device stacked on `number` (holders, recursively), nearest first.
    public func stacked(above number: DeviceNumber) -> [DeviceNumber] {
        var seen: [DeviceNumber] = []
        var queue = holders[number] ?? []
        while !queue.isEmpty {
            let n = queue.removeFirst()
            guard !seen.contains(n) else { continue }
            seen.append(n)
            queue += holders[n] ?? []
        }
        return seen
    }

    /// Why a device that is open cannot be changed, for a message: "is open (A (mounted on /x), B
    /// on it); close them before WHAT", or "is open (N users); close it before WHAT".
    public func openRefusal(_ number: DeviceNumber, openCount: Int, before what: String) -> String {
        let above = stacked(above: number).map { n -> String in
            let name = device(numbered: n)?.0.value ?? n.description
            return mountPoints(of: n).first.map { "\(name) (mounted on \($0))" } ?? name
        }
        let who = above.isEmpty ? "\(openCount) \(openCount == 1 ? "user" : "users")" : "\(above.joined(separator: ", ")) on it"
        return "is open (\(who)); close \(above.isEmpty ? "it" : "them") before \(what)"
    }

    public func mountPoints(of number: DeviceNumber) -> [String] {
        mounts.filter { $0.number == number }.map(\.mountPoint)
    }

    /// Which dm devices `read` reads in full (info, table, dependencies, status).
    public enum Scope: Sendable {
        /// Every dm device on the system.
        case all
        /// These names, the dm devices behind the looked-up paths, and everything they stack on.
        /// A command about one set reads its few devices, not the whole system: each device costs
        /// up to four ioctls.
        case devices(Set<DeviceName>)
        /// The devices of every recorded set.
        case recordedSets

        /// The devices of `sets`: members, their bases and the views of their mounted images.
        public static func of(_ sets: [SnapshotSet]) -> Scope { .devices(names(of: sets)) }

        public static func names(of sets: [SnapshotSet]) -> Set<DeviceName> {
            Set(sets.flatMap { $0.members.flatMap { [$0.device, $0.base] + ($0.view.map { [$0.device] } ?? []) } })
        }
    }
}
