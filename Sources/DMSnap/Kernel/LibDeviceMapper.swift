import CDeviceMapper
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

func errnoDescription(_ code: Int32) -> String {
    String(cString: strerror(code))
}

/// Called by the C shim for libdevmapper log lines when `DMSNAP_DEBUG` is set.
private let debugLogHandler: cdm_log_handler = { level, message in
    guard let message else { return }
    let line = "dmsnap: libdevmapper[\(level)]: \(String(cString: message))\n"
    writeStandardError(line)
}

/// The real kernel, through libdevmapper (ioctls on /dev/mapper/control), libblkid and a few syscalls.
public final class LibDeviceMapper: DeviceMapperControl {
    /// Sets up libdevmapper once: dmsnap's own logger instead of libdm's stderr output, and udev
    /// synchronisation only when udev is running (without it libdm makes /dev/mapper nodes itself).
    public init() {
        let env = ProcessInfo.processInfo.environment
        let noUdev = env["DM_DISABLE_UDEV"] != nil || access("/run/udev/control", F_OK) != 0
        let verbose: Int32 = env["DMSNAP_DEBUG"] != nil ? 7 : 0
        cdm_setup(noUdev ? 0 : 1, verbose, debugLogHandler)
    }

    public var isPrivileged: Bool { geteuid() == 0 }

    // MARK: tasks

    private final class Task {
        let handle: OpaquePointer
        let call: String
        let device: String
        init(_ type: Int, call: String, device: String) throws(DeviceMapperError) {
            cdm_clear_last_error()
            guard let h = dm_task_create(Int32(type)) else {
                if access("/dev/mapper/control", F_OK) != 0 {
                    throw DeviceMapperError(call: call, device: device, errno: ENODEV,
                                            detail: "device-mapper is not available: /dev/mapper/control is missing (is dm-mod loaded?)")
                }
                throw DeviceMapperError(call: call, device: device, errno: 0, detail: String(cString: cdm_last_error()))
            }
            handle = h
            self.call = call
            self.device = device
        }
        deinit { dm_task_destroy(handle) }

        func fail(_ what: String = "") -> DeviceMapperError {
            var code = dm_task_get_errno(handle)
            if code == 0 { code = errno }
            let message = String(cString: cdm_last_error())
            return DeviceMapperError(call: call, device: device, errno: code, detail: what.isEmpty ? message : what)
        }

        func name(_ name: DeviceName) throws(DeviceMapperError) {
            guard dm_task_set_name(handle, name.value) != 0 else { throw fail("set name") }
        }

        func targets(_ table: Table) throws(DeviceMapperError) {
            for t in table.targets {
                guard dm_task_add_target(handle, t.start.value, t.length.value, t.type, t.params) != 0 else {
                    throw fail("add target")
                }
            }
        }

        /// Runs the task; with `cookie`, waits for (or, without udev, performs) the /dev node changes.
        func run(cookieFlags: UInt16? = nil) throws(DeviceMapperError) {
            cdm_clear_last_error()
            var cookie: UInt32 = 0
            if let flags = cookieFlags {
                guard dm_task_set_cookie(handle, &cookie, flags) != 0 else { throw fail("set cookie") }
            }
            let ok = dm_task_run(handle) != 0
            let failure = ok ? nil : fail()
            if cookieFlags != nil { _ = dm_udev_wait(cookie) }
            if let failure { throw failure }
        }

        func info() throws(DeviceMapperError) -> dm_info {
            var i = dm_info()
            guard dm_task_get_info(handle, &i) != 0 else { throw fail("get info") }
            return i
        }

        func targetLines() -> [(UInt64, UInt64, String, String)] {
            var out: [(UInt64, UInt64, String, String)] = []
            var next: UnsafeMutableRawPointer? = nil
            repeat {
                var start: UInt64 = 0
                var length: UInt64 = 0
                var type: UnsafeMutablePointer<CChar>? = nil
                var params: UnsafeMutablePointer<CChar>? = nil
                next = dm_get_next_target(handle, next, &start, &length, &type, &params)
                if let type {
                    out.append((start, length, String(cString: type), params.map { String(cString: $0) } ?? ""))
                }
            } while next != nil
            return out
        }
    }

    private static let hiddenFlags = UInt16(DM_UDEV_DISABLE_SUBSYSTEM_RULES_FLAG | DM_UDEV_DISABLE_DISK_RULES_FLAG
        | DM_UDEV_DISABLE_OTHER_RULES_FLAG)

    // MARK: device-mapper

    public func list() throws(DeviceMapperError) -> [DeviceListEntry] {
        let task = try Task(Int(DM_DEVICE_LIST), call: "list", device: "device-mapper")
        try task.run()
        guard let names = dm_task_get_names(task.handle) else { throw task.fail("no name list") }
        var out: [DeviceListEntry] = []
        if cdm_names_dev(names) == 0 { return out }
        var cursor: UnsafePointer<dm_names>? = UnsafePointer(names)
        while let entry = cursor {
            let raw = String(cString: cdm_names_name(entry))
            let dev = cdm_names_dev(entry)
            if let name = try? DeviceName(raw) {
                out.append(DeviceListEntry(name: name, number: DeviceNumber(major: cdm_major(dev), minor: cdm_minor(dev))))
            }
            cursor = cdm_names_next(entry)
        }
        return out.sorted { $0.name < $1.name }
    }

    public func info(_ name: DeviceName) throws(DeviceMapperError) -> DeviceInfo? {
        let task = try Task(Int(DM_DEVICE_INFO), call: "info", device: name.value)
        try task.name(name)
        try task.run()
        let i = try task.info()
        guard i.exists != 0 else { return nil }
        let uuid = dm_task_get_uuid(task.handle).map { String(cString: $0) } ?? ""
        return DeviceInfo(name: name, uuid: uuid, number: DeviceNumber(major: UInt32(i.major), minor: UInt32(i.minor)),
                          openCount: Int(i.open_count), suspended: i.suspended != 0,
                          hasLiveTable: i.live_table != 0, hasInactiveTable: i.inactive_table != 0,
                          readOnly: i.read_only != 0)
    }

    public func table(_ name: DeviceName) throws(DeviceMapperError) -> Table {
        let task = try Task(Int(DM_DEVICE_TABLE), call: "table", device: name.value)
        try task.name(name)
        try task.run()
        let lines = task.targetLines().map {
            TargetLine(start: Sectors($0.0), length: Sectors($0.1), type: $0.2, params: $0.3)
        }
        do { return try Table(lines) } catch {
            throw DeviceMapperError(call: "table", device: name.value, errno: 0, detail: error.description)
        }
    }

    public func status(_ name: DeviceName) throws(DeviceMapperError) -> [TargetStatus] {
        let task = try Task(Int(DM_DEVICE_STATUS), call: "status", device: name.value)
        try task.name(name)
        try task.run()
        return task.targetLines().map { TargetStatus(start: Sectors($0.0), length: Sectors($0.1), type: $0.2, params: $0.3) }
    }

    public func dependencies(_ name: DeviceName) throws(DeviceMapperError) -> [DeviceNumber] {
        let task = try Task(Int(DM_DEVICE_DEPS), call: "deps", device: name.value)
        try task.name(name)
        try task.run()
        guard let deps = dm_task_get_deps(task.handle) else { throw task.fail("no deps") }
        return (0..<cdm_deps_count(deps)).map {
            let dev = cdm_deps_device(deps, $0)
            return DeviceNumber(major: cdm_major(dev), minor: cdm_minor(dev))
        }
    }

    public func create(_ name: DeviceName, uuid: String, table: Table, hidden: Bool) throws(DeviceMapperError) {
        let task = try Task(Int(DM_DEVICE_CREATE), call: "create", device: name.value)
        try task.name(name)
        guard dm_task_set_uuid(task.handle, uuid) != 0 else { throw task.fail("set uuid") }
        try task.targets(table)
        try task.run(cookieFlags: hidden ? Self.hiddenFlags : 0)
    }

    public func load(_ name: DeviceName, table: Table) throws(DeviceMapperError) {
        let task = try Task(Int(DM_DEVICE_RELOAD), call: "load", device: name.value)
        try task.name(name)
        try task.targets(table)
        try task.run()
    }

    public func clearInactive(_ name: DeviceName) throws(DeviceMapperError) {
        let task = try Task(Int(DM_DEVICE_CLEAR), call: "clear", device: name.value)
        try task.name(name)
        try task.run()
    }

    public func suspend(_ name: DeviceName, lockfs: Bool) throws(DeviceMapperError) {
        let task = try Task(Int(DM_DEVICE_SUSPEND), call: "suspend", device: name.value)
        try task.name(name)
        if !lockfs { _ = dm_task_skip_lockfs(task.handle) }
        try task.run()
    }

    public func resume(_ name: DeviceName) throws(DeviceMapperError) {
        let task = try Task(Int(DM_DEVICE_RESUME), call: "resume", device: name.value)
        try task.name(name)
        try task.run(cookieFlags: 0)
    }

    public func remove(_ name: DeviceName) throws(DeviceMapperError) {
        let task = try Task(Int(DM_DEVICE_REMOVE), call: "remove", device: name.value)
        try task.name(name)
        _ = dm_task_retry_remove(task.handle)
        try task.run(cookieFlags: 0)
    }

    // MARK: block devices and filesystems

    public func blockDevice(at path: String) throws(DeviceMapperError) -> BlockDeviceInfo {
        var st = stat()
        guard stat(path, &st) == 0 else { throw DeviceMapperError(call: "stat", device: path, errno: errno) }
        guard (st.st_mode & S_IFMT) == S_IFBLK else {
            throw DeviceMapperError(call: "stat", device: path, errno: ENOTBLK)
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw DeviceMapperError(call: "open", device: path, errno: errno) }
        defer { close(fd) }
        var bytes: UInt64 = 0
        guard cdm_blkgetsize64(fd, &bytes) == 0 else { throw DeviceMapperError(call: "BLKGETSIZE64", device: path, errno: errno) }
        var lbs: Int32 = 512
        guard cdm_blksszget(fd, &lbs) == 0 else { throw DeviceMapperError(call: "BLKSSZGET", device: path, errno: errno) }
        let rdev = UInt64(st.st_rdev)
        return BlockDeviceInfo(path: path, number: DeviceNumber(major: cdm_major(rdev), minor: cdm_minor(rdev)),
                               size: Sectors(bytes / 512), logicalBlockSize: UInt32(lbs))
    }

    public func isClaimed(_ path: String) throws(DeviceMapperError) -> Bool {
        // O_EXCL on a block device fails with EBUSY while it is mounted or held by another device.
        let fd = open(path, O_RDONLY | O_EXCL | O_CLOEXEC)
        if fd >= 0 {
            close(fd)
            return false
        }
        if errno == EBUSY { return true }
        throw DeviceMapperError(call: "open", device: path, errno: errno)
    }

    public func probeSignature(_ path: String) throws(DeviceMapperError) -> String? {
        guard let probe = blkid_new_probe_from_filename(path) else {
            throw DeviceMapperError(call: "blkid probe", device: path, errno: errno)
        }
        defer { blkid_free_probe(probe) }
        _ = blkid_probe_enable_superblocks(probe, 1)
        _ = blkid_probe_set_superblocks_flags(probe, Int32(BLKID_SUBLKS_TYPE | BLKID_SUBLKS_BADCSUM))
        _ = blkid_probe_enable_partitions(probe, 1)
        let rc = blkid_do_safeprobe(probe)
        if rc < 0 { throw DeviceMapperError(call: "blkid probe", device: path, errno: EIO, detail: "probe failed") }
        if rc == 1 { return nil }
        if rc == -2 { return "ambiguous signatures" }
        for key in ["TYPE", "PTTYPE"] {
            var data: UnsafePointer<CChar>? = nil
            var len = 0
            if blkid_probe_lookup_value(probe, key, &data, &len) == 0, let data {
                return String(cString: data)
            }
        }
        return "unknown signature"
    }

    public func readHeader(_ path: String, bytes: Int) throws(DeviceMapperError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw DeviceMapperError(call: "open", device: path, errno: errno) }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: bytes)
        var done = 0
        while done < bytes {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, bytes - done, off_t(done)) }
            if n < 0 { throw DeviceMapperError(call: "read", device: path, errno: errno) }
            if n == 0 { break }
            done += n
        }
        return Array(buffer[0..<done])
    }

    public func zeroHeader(_ path: String, bytes: Int) throws(DeviceMapperError) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw DeviceMapperError(call: "open", device: path, errno: errno) }
        defer { close(fd) }
        let zeros = [UInt8](repeating: 0, count: bytes)
        let written = zeros.withUnsafeBytes { pwrite(fd, $0.baseAddress, bytes, 0) }
        guard written == bytes else { throw DeviceMapperError(call: "write header", device: path, errno: written < 0 ? errno : EIO) }
        guard fsync(fd) == 0 else { throw DeviceMapperError(call: "fsync", device: path, errno: errno) }
    }

    public func mounts() throws(DeviceMapperError) -> [MountEntry] {
        guard let text = readWholeFile("/proc/self/mountinfo") else {
            throw DeviceMapperError(call: "read", device: "/proc/self/mountinfo", errno: errno)
        }
        return MountInfo.parse(text)
    }

    private func withDirectory(_ path: String, call: String, _ body: (Int32) -> Int32) throws(DeviceMapperError) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw DeviceMapperError(call: call, device: path, errno: errno) }
        defer { close(fd) }
        guard body(fd) == 0 else { throw DeviceMapperError(call: call, device: path, errno: errno) }
    }

    public func syncFilesystem(_ mountPoint: String) throws(DeviceMapperError) {
        try withDirectory(mountPoint, call: "syncfs") { cdm_syncfs($0) }
    }

    public func freeze(_ mountPoint: String) throws(DeviceMapperError) {
        try withDirectory(mountPoint, call: "freeze") { cdm_fifreeze($0) }
    }

    public func thaw(_ mountPoint: String) throws(DeviceMapperError) {
        try withDirectory(mountPoint, call: "thaw") { cdm_fithaw($0) }
    }
}

/// Writes to fd 2 directly (no shared `FILE*`, so it is safe from any thread).
public func writeStandardError(_ text: String) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let n = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        if n <= 0 { return }
        bytes = bytes.dropFirst(n)
    }
}

/// Reads an open file to its end; nil on a read error (errno set).
func readAll(_ fd: Int32) -> [UInt8]? {
    var data: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 { return nil }
        if n == 0 { return data }
        data.append(contentsOf: buffer[0..<n])
    }
}

/// Reads a (small, procfs) file completely; nil on error.
func readWholeFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    return readAll(fd).map { String(decoding: $0, as: UTF8.self) }
}
