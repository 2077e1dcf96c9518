import CDeviceMapper
import DMSnapModel
import SystemPackage
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// COW files: lookups (lstat, statfs, a write-lease probe for other users, the loops that run on
/// the file), sparse creation, growth, and the loop devices dmsnap attaches through the loop ioctls.
extension LinuxKernel: FileControl {
    static let fileSystemNames: [UInt64: String] = [
        0x0102_1994: "tmpfs", 0x8584_58f6: "ramfs", 0xEF53: "ext4", 0x5846_5342: "xfs", 0x9123_683E: "btrfs",
        0x00c0_ffee: "hostfs", 0x6969: "nfs", 0x2FC1_2FC1: "zfs", 0xF2F5_2010: "f2fs", 0x4d44: "vfat",
    ]

    static func realPath(_ path: String) throws(KernelError) -> String {
        guard let p = realpath(path, nil) else { throw KernelError(call: "resolve", device: path, errno: Errno(rawValue: errno)) }
        defer { free(p) }
        return String(cString: p)
    }

    public func inspectFile(_ path: String) throws(KernelError) -> FileFacts {
        let normal = FilePath(path)  // (no trailing slash)
        let dir = FileFacts.directory(of: normal.string)
        let name = normal.lastComponent?.string ?? ""
        var dst = stat()
        guard stat(dir, &dst) == 0 else { throw KernelError(call: "stat", device: dir, errno: Errno(rawValue: errno), detail: "directory") }
        guard (dst.st_mode & S_IFMT) == S_IFDIR else { throw KernelError(call: "stat", device: dir, errno: .notDirectory) }
        var type: UInt64 = 0, free: UInt64 = 0, total: UInt64 = 0
        guard cdm_statfs(dir, &type, &free, &total) == 0 else { throw KernelError(call: "statfs", device: dir, errno: Errno(rawValue: errno)) }
        let fsType = Self.fileSystemNames[type] ?? String(type, radix: 16)
        let canonical = (try Self.realPath(dir)) + (dir == "/" ? "" : "/") + name
        var facts = FileFacts(kind: .missing, canonicalPath: canonical,
                              fileSystemDevice: DeviceNumber(major: cdm_major(UInt64(dst.st_dev)), minor: cdm_minor(UInt64(dst.st_dev))),
                              fileSystemType: fsType, freeBytes: free, totalBytes: total)
        var st = stat()
        guard lstat(path, &st) == 0 else {
            if errno == ENOENT { return facts }
            throw KernelError(call: "stat", device: path, errno: Errno(rawValue: errno))
        }
        switch st.st_mode & S_IFMT {
        case S_IFLNK: facts.kind = .symlink; return facts
        case S_IFDIR: facts.kind = .directory; return facts
        case S_IFBLK: facts.kind = .blockDevice; return facts
        case S_IFREG: facts.kind = .regular
        default: facts.kind = .other; return facts
        }
        facts.size = UInt64(st.st_size)
        facts.allocated = UInt64(st.st_blocks) * 512
        facts.identity = "\(st.st_dev):\(st.st_ino)"
        facts.fileSystemDevice = DeviceNumber(major: cdm_major(UInt64(st.st_dev)), minor: cdm_minor(UInt64(st.st_dev)))
        facts.inUse = loopRunning(on: st).map { "attached to \($0)" }
        try Syscalls.withFile(path, .readOnly, options: .noFollow) { fd throws(KernelError) in
            facts.header = try Syscalls.readPrefix(fd, count: 4096, path: path)
            if facts.inUse == nil, cdm_file_in_use(fd.rawValue) == 1 { facts.inUse = "open by another process" }
        }
        facts.signature = try probeSignature(path)
        return facts
    }

    /// The loop device whose backing file is the file `st` describes, if one is.
    func loopRunning(on st: stat) -> String? {
        for (name, _) in Syscalls.entries("/sys/block") ?? [] {
            guard name.hasPrefix("loop") else { continue }
            let fd = open("/dev/\(name)", O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            var flags: UInt32 = 0, dev: UInt64 = 0, ino: UInt64 = 0
            if cdm_loop_status(fd, &flags, &dev, &ino) == 0, dev == UInt64(st.st_dev), ino == UInt64(st.st_ino) { return "/dev/\(name)" }
        }
        return nil
    }

    public func createFile(_ path: String, bytes: UInt64) throws(KernelError) {
        let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw KernelError(call: "create", device: path, errno: Errno(rawValue: errno)) }
        defer { close(fd) }
        guard ftruncate(fd, off_t(bytes)) == 0 else {
            let e = Errno(rawValue: errno)
            unlink(path)
            throw KernelError(call: "truncate", device: path, errno: e)
        }
        fsync(fd)
        syncDirectory(of: path)
    }

    func syncDirectory(of path: String) {
        let d = open(FileFacts.directory(of: path), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if d >= 0 { fsync(d); close(d) }
    }

    public func growFile(_ path: String, to bytes: UInt64) throws(KernelError) {
        try Syscalls.withFile(path, .readWrite, options: .noFollow, call: "open COW file") { fd throws(KernelError) in
            var st = stat()
            try Syscalls.check("stat", path) { fstat(fd.rawValue, &st) }
            guard (st.st_mode & S_IFMT) == S_IFREG else { throw KernelError(call: "grow", device: path, errno: .invalidArgument, detail: "not a regular file") }
            guard UInt64(st.st_size) < bytes else { return }
            try Syscalls.check("truncate", path) { ftruncate(fd.rawValue, off_t(bytes)) }
            try Syscalls.check("fsync", path) { fsync(fd.rawValue) }
        }
    }

    public func deleteFile(_ path: String) throws(KernelError) {
        var st = stat()
        guard lstat(path, &st) == 0 else {
            if errno == ENOENT { return }
            throw KernelError(call: "stat", device: path, errno: Errno(rawValue: errno))
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw KernelError(call: "delete", device: path, errno: .invalidArgument, detail: "not a regular file") }
        guard unlink(path) == 0 || errno == ENOENT else { throw KernelError(call: "delete", device: path, errno: Errno(rawValue: errno)) }
        syncDirectory(of: path)
    }

    public func attachLoop(_ path: String, directIO: Bool) throws(KernelError) -> LoopAttachment {
        let backing = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC)
        guard backing >= 0 else { throw KernelError(call: "open COW file", device: path, errno: Errno(rawValue: errno)) }
        defer { close(backing) }  // the loop holds the file itself
        var major: UInt32 = 0, minor: UInt32 = 0
        var loopFD: Int32 = -1
        let flags = cdm_loop_autoclear() | (directIO ? cdm_loop_direct_io() : 0)
        guard cdm_loop_attach(backing, flags, &major, &minor, &loopFD) == 0 else {
            throw KernelError(call: "attach loop", device: path, errno: Errno(rawValue: errno))
        }
        var now: UInt32 = 0, dev: UInt64 = 0, ino: UInt64 = 0
        _ = cdm_loop_status(loopFD, &now, &dev, &ino)
        let number = DeviceNumber(major: major, minor: minor)
        return LoopAttachment(number: number, path: self.path(of: number) ?? "/dev/loop\(minor)",
                              directIO: now & UInt32(cdm_loop_direct_io()) != 0, descriptor: loopFD)
    }

    public func releaseLoop(_ loop: LoopAttachment) { close(loop.descriptor) }

    public func refreshLoopCapacity(_ number: DeviceNumber, file: String) throws(KernelError) -> Sectors {
        let loop = path(of: number) ?? "/dev/loop\(number.minor)"
        var st = stat()
        guard stat(file, &st) == 0 else { throw KernelError(call: "stat", device: file, errno: Errno(rawValue: errno)) }
        return try Syscalls.withFile(loop, .readOnly) { fd throws(KernelError) in
            var flags: UInt32 = 0, dev: UInt64 = 0, ino: UInt64 = 0
            try Syscalls.check("LOOP_GET_STATUS64", loop) { cdm_loop_status(fd.rawValue, &flags, &dev, &ino) }
            guard dev == UInt64(st.st_dev), ino == UInt64(st.st_ino) else {
                throw KernelError(call: "grow", device: loop, errno: .noSuchAddressOrDevice, detail: "no longer runs on \(file)")
            }
            try Syscalls.check("LOOP_SET_CAPACITY", loop) { cdm_loop_set_capacity(fd.rawValue) }
            var bytes: UInt64 = 0
            try Syscalls.check("BLKGETSIZE64", loop) { cdm_blkgetsize64(fd.rawValue, &bytes) }
            return Sectors(bytes / 512)
        }
    }

    public func space(of path: String) throws(KernelError) -> (free: UInt64, total: UInt64) {
        var type: UInt64 = 0, free: UInt64 = 0, total: UInt64 = 0
        guard cdm_statfs(path, &type, &free, &total) == 0 else { throw KernelError(call: "statfs", device: path, errno: Errno(rawValue: errno)) }
        return (free, total)
    }
}
