import DMSnap

/// COW files and loop devices in the fake: files in `files` (anything else under a directory in
/// `fileDirectories` is missing), loops numbered 7:N that detach themselves once neither dmsnap's
/// descriptor nor a table holds them (autoclear).
extension FakeKernel {
    public struct FakeFile: Hashable, Sendable {
        public var size: UInt64
        public var header: [UInt8] = []
        public var signature: String?
        /// Opened by someone else ("open by another process").
        public var openElsewhere = false
        public init(size: UInt64) { self.size = size }
    }

    /// A directory COW files can go in: its filesystem's device, type and space.
    public struct FakeDirectory: Hashable, Sendable {
        public var fileSystemDevice: DeviceNumber
        public var type: String
        public var free: UInt64
        public var total: UInt64
        public init(fileSystemDevice: DeviceNumber = DeviceNumber(major: 8, minor: 2), type: String = "ext4",
                    free: UInt64 = 64 << 30, total: UInt64 = 100 << 30) {
            self.fileSystemDevice = fileSystemDevice
            self.type = type
            self.free = free
            self.total = total
        }
    }

    public func inspectFile(_ path: String) throws(KernelError) -> FileFacts {
        try record("inspect \(path)", device: path, call: "stat")
        let dir = FileFacts.directory(of: path)
        if blocks[path] != nil || dmNumber(path) != nil {
            return FileFacts(kind: .blockDevice, canonicalPath: path, fileSystemDevice: DeviceNumber(major: 0, minor: 5),
                             fileSystemType: "devtmpfs", freeBytes: 0, totalBytes: 0)
        }
        guard let d = fileDirectories[dir] else {
            if fileDirectories[path] != nil {
                let p = fileDirectories[path]!
                var f = FileFacts(kind: .directory, canonicalPath: path, fileSystemDevice: p.fileSystemDevice,
                                  fileSystemType: p.type, freeBytes: p.free, totalBytes: p.total)
                f.size = 0
                return f
            }
            throw KernelError(call: "stat", device: dir, errno: .noSuchFileOrDirectory, detail: "directory")
        }
        var facts = FileFacts(kind: .missing, canonicalPath: path, fileSystemDevice: d.fileSystemDevice,
                              fileSystemType: d.type, freeBytes: d.free, totalBytes: d.total)
        if fileDirectories[path] != nil { facts.kind = .directory; return facts }
        if symlinks.contains(path) { facts.kind = .symlink; return facts }
        if blocks[path] != nil { facts.kind = .blockDevice; return facts }
        guard let f = files[path] else { return facts }
        facts.kind = .regular
        facts.size = f.size
        facts.identity = path
        facts.header = Array(f.header.prefix(4096))
        facts.signature = f.signature
        if let loop = loopFiles.first(where: { $0.value == path })?.key { facts.inUse = "attached to /dev/loop\(loop.minor)" }
        else if f.openElsewhere { facts.inUse = "open by another process" }
        return facts
    }

    public func createFile(_ path: String, bytes: UInt64) throws(KernelError) {
        try record("createfile \(path) \(bytes)", device: path, call: "create")
        guard files[path] == nil else { throw KernelError(call: "create", device: path, errno: .fileExists) }
        files[path] = FakeFile(size: bytes)
    }

    public func growFile(_ path: String, to bytes: UInt64) throws(KernelError) {
        try record("growfile \(path) \(bytes)", device: path, call: "truncate")
        guard var f = files[path] else { throw KernelError(call: "open COW file", device: path, errno: .noSuchFileOrDirectory) }
        f.size = max(f.size, bytes)
        files[path] = f
    }

    public func deleteFile(_ path: String) throws(KernelError) {
        try record("deletefile \(path)", device: path, call: "delete")
        files[path] = nil
    }

    public func attachLoop(_ path: String, directIO: Bool) throws(KernelError) -> LoopAttachment {
        try record("attachloop \(path)\(directIO ? " dio" : "")", device: path, call: "attach loop")
        guard let f = files[path] else { throw KernelError(call: "open COW file", device: path, errno: .noSuchFileOrDirectory) }
        var minor: UInt32 = 0
        while blockNumbers["/dev/loop\(minor)"] != nil { minor += 1 }
        let number = DeviceNumber(major: 7, minor: minor)
        addBlock("/dev/loop\(minor)", number: number, size: Sectors(f.size / 512))
        loopFiles[number] = path
        openLoops.insert(number)
        return LoopAttachment(number: number, path: "/dev/loop\(minor)", directIO: directIO, descriptor: Int32(minor))
    }

    public func releaseLoop(_ loop: LoopAttachment) {
        openLoops.remove(loop.number)
        pruneLoops()
    }

    /// Autoclear: a loop neither dmsnap nor a table holds is gone.
    func pruneLoops() {
        for (number, _) in loopFiles where !openLoops.contains(number) {
            let held = devices.values.contains { d in [d.live, d.inactive].compactMap { $0 }.contains { references($0).contains(number) } }
            if !held {
                loopFiles[number] = nil
                blocks["/dev/loop\(number.minor)"] = nil
                blockNumbers["/dev/loop\(number.minor)"] = nil
            }
        }
    }

    public func refreshLoopCapacity(_ number: DeviceNumber, file: String) throws(KernelError) -> Sectors {
        try record("loopcapacity \(number) \(file)", device: file, call: "LOOP_SET_CAPACITY")
        guard loopFiles[number] == file, let f = files[file] else {
            throw KernelError(call: "grow", device: "/dev/loop\(number.minor)", errno: .noSuchAddressOrDevice, detail: "no longer runs on \(file)")
        }
        blocks["/dev/loop\(number.minor)"]?.size = Sectors(f.size / 512)
        return Sectors(f.size / 512)
    }

    public func space(of path: String) throws(KernelError) -> (free: UInt64, total: UInt64) {
        guard let d = fileDirectories[FileFacts.directory(of: path)] ?? fileDirectories[path] else {
            throw KernelError(call: "statfs", device: path, errno: .noSuchFileOrDirectory)
        }
        return (d.free, d.total)
    }
}

/// cgroups in the fake: directories in `cgroupDirs`; `frozenCgroups` are the frozen ones.
extension FakeKernel {
    public func inspectCgroup(_ path: String) throws(KernelError) -> CgroupFacts {
        try record("inspectcg \(path)", device: path, call: "stat")
        guard let facts = cgroupDirs[path] else { throw KernelError(call: "stat", device: path, errno: .noSuchFileOrDirectory) }
        return facts
    }

    public func cgroup(ofUnit name: String) -> String? { unitCgroups[name] }

    public func freezeCgroup(_ path: String, timeout: Duration?) throws(KernelError) {
        try record("freezecg \(path)", device: path, call: "freeze cgroup")
        frozenCgroups.insert(path)
    }

    public func thawCgroup(_ path: String) throws(KernelError) {
        try record("thawcg \(path)", device: path, call: "write cgroup.freeze")
        frozenCgroups.remove(path)
    }
}

/// Hooks in the fake: programs in `executables` run by recording a trace line
/// (`hook PROGRAM PHASE`) and the environment they got; `hookOutcomes` says how each ends.
extension FakeKernel {
    public func run(_ argv: [String], environment: [String: String], timeout: Duration?) throws(KernelError) -> ProgramOutcome {
        let line = argv[0] == "systemctl" ? argv.joined(separator: " ") : "hook \(argv[0]) \(environment["DMSNAP_PHASE"] ?? "")"
        try record(line, device: argv[0], call: "run")
        hookRuns.append((argv, environment))
        return hookOutcomes[argv[0]] ?? ProgramOutcome(exitCode: 0)
    }

    public func runCommand(_ argv: [String], environment: [String: String]) throws(KernelError) -> ProgramOutcome {
        try record("command \(argv.joined(separator: " "))", device: argv[0], call: "run")
        commandRuns.append((argv, environment))
        commandBody(self)
        return commandOutcome
    }

    public func executable(_ program: String) -> String? { executables.contains(program) ? program : nil }

    public func hookFiles(in directory: String) -> [String] { hookDropIns[directory] ?? [] }
}
