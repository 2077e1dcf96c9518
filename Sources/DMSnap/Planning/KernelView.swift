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

    /// Reads everything a plan needs: every dm device, the mounts, and block-device facts for
    /// `paths`. `probePaths` (COWs) are also checked for exclusive users and signatures — never
    /// when they are suspended dm devices, whose I/O would block.
    public static func gather(_ dm: some DeviceMapperControl, store: some SetStore, paths: [String] = [],
                              probePaths: [String] = []) throws -> KernelView {
        var view = KernelView(privileged: dm.isPrivileged)
        guard view.privileged else { return view }
        view.sets = try store.list()
        for entry in try dm.list() {
            guard let info = try dm.info(entry.name) else { continue }
            let table = info.hasLiveTable ? try dm.table(entry.name) : nil
            let deps = info.hasLiveTable ? try dm.dependencies(entry.name) : []
            let status = table.map { $0.targets.contains { $0.type.hasPrefix("snapshot") } } ?? false
                ? try dm.status(entry.name) : []
            view.devices[entry.name] = Device(info: info, table: table, dependencies: deps, status: status)
        }
        view.mounts = try dm.mounts()
        var seen: Set<String> = []
        for path in paths + probePaths where seen.insert(path).inserted {
            let block: BlockDeviceInfo
            do { block = try dm.blockDevice(at: path) } catch {
                // A missing or odd path is the user's input: the planner refuses it.
                view.blocks[path] = .failure(error)
                continue
            }
            view.blocks[path] = .success(block)
            if probePaths.contains(path), view.device(numbered: block.number)?.1.info.suspended != true {
                view.claimed[path] = try dm.isClaimed(path)
                if let sig = try dm.probeSignature(path) { view.signatures[path] = sig }
            }
        }
        return view
    }
}
