/// What the planner knows about the kernel: a read-only snapshot gathered before planning,
/// so planning itself is pure.
public struct KernelView: Sendable {
    public struct Device: Hashable, Sendable {
        public var info: DeviceInfo
        public var table: Table?
        public var dependencies: [DeviceNumber]
        public var status: [TargetStatus]
        public init(info: DeviceInfo, table: Table?, dependencies: [DeviceNumber] = [], status: [TargetStatus] = []) {
            self.info = info
            self.table = table
            self.dependencies = dependencies
            self.status = status
        }
    }

    public var privileged: Bool
    public var devices: [DeviceName: Device]
    /// Block device facts for every path the request names (or the error looking it up gave).
    public var blocks: [String: Result<BlockDeviceInfo, DeviceMapperError>]
    public var claimed: [String: Bool]
    public var signatures: [String: String]
    public var mounts: [MountEntry]
    public var sets: [SnapshotSet]

    public init(privileged: Bool, devices: [DeviceName: Device] = [:],
                blocks: [String: Result<BlockDeviceInfo, DeviceMapperError>] = [:], claimed: [String: Bool] = [:],
                signatures: [String: String] = [:], mounts: [MountEntry] = [], sets: [SnapshotSet] = []) {
        self.privileged = privileged
        self.devices = devices
        self.blocks = blocks
        self.claimed = claimed
        self.signatures = signatures
        self.mounts = mounts
        self.sets = sets
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

    public func mountPoints(of number: DeviceNumber) -> [String] {
        mounts.filter { $0.number == number }.map(\.mountPoint)
    }

    /// Which dm devices `gather` reads in full (info, table, dependencies, status).
    public enum Scope: Sendable {
        /// Every dm device on the system.
        case all
        /// These names, the dm devices behind the looked-up paths, and everything they stack on.
        /// A command about one set reads its few devices, not the whole system: each device costs
        /// up to four ioctls.
        case devices(Set<DeviceName>)
        /// The devices of every recorded set.
        case recordedSets

        /// The devices of `sets`: members and their bases.
        public static func of(_ sets: [SnapshotSet]) -> Scope { .devices(names(of: sets)) }

        static func names(of sets: [SnapshotSet]) -> Set<DeviceName> {
            Set(sets.flatMap { $0.members.flatMap { [$0.device, $0.base] } })
        }
    }

    /// Reads what a plan needs: the dm devices in `scope` (one list ioctl finds every device's
    /// number; only the scope is read in full), the mounts, the recorded sets, and block-device
    /// facts for `paths`. `probePaths` (COWs) are also checked for exclusive users and
    /// signatures — never when they are suspended dm devices, whose I/O would block.
    public static func gather(_ dm: some DeviceMapperControl, store: some SetStore, paths: [String] = [],
                              probePaths: [String] = [], scope: Scope = .all) throws -> KernelView {
        var view = KernelView(privileged: dm.isPrivileged)
        guard view.privileged else { return view }
        view.sets = try store.list()
        let listed = try dm.list()
        var byNumber: [DeviceNumber: DeviceName] = [:]
        for entry in listed where byNumber[entry.number] == nil { byNumber[entry.number] = entry.name }

        // Block facts (stat + size ioctl; no I/O): they also say which dm devices the paths are.
        var seen: Set<String> = []
        for path in paths + probePaths where seen.insert(path).inserted {
            do { view.blocks[path] = .success(try dm.blockDevice(at: path)) } catch {
                // A missing or odd path is the user's input: the planner refuses it.
                view.blocks[path] = .failure(error)
            }
        }

        var queue: [DeviceName]
        switch scope {
        case .all: queue = listed.map(\.name)
        case let .devices(names): queue = names.sorted { $0.value < $1.value }
        case .recordedSets: queue = Scope.names(of: view.sets).sorted { $0.value < $1.value }
        }
        if case .all = scope {} else {
            for case let .success(block) in view.blocks.values { if let n = byNumber[block.number] { queue.append(n) } }
        }
        var read: Set<DeviceName> = []
        while !queue.isEmpty {
            let name = queue.removeFirst()
            guard read.insert(name).inserted, let info = try dm.info(name) else { continue }
            let table = info.hasLiveTable ? try dm.table(name) : nil
            let deps = info.hasLiveTable ? try dm.dependencies(name) : []
            let status = table.map { $0.targets.contains { $0.type.hasPrefix("snapshot") } } ?? false
                ? try dm.status(name) : []
            view.devices[name] = Device(info: info, table: table, dependencies: deps, status: status)
            queue += deps.compactMap { byNumber[$0] }
        }
        view.mounts = try dm.mounts()
        for path in probePaths {
            guard case let .success(block)? = view.blocks[path], view.claimed[path] == nil else { continue }
            // A dm device behind the path is in the view (read above): never probe a suspended one.
            if view.device(numbered: block.number)?.1.info.suspended == true { continue }
            view.claimed[path] = try dm.isClaimed(path)
            if let sig = try dm.probeSignature(path) { view.signatures[path] = sig }
        }
        return view
    }
}
