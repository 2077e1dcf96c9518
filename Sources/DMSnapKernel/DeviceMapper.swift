import CDeviceMapper
import DMSnapModel
import SystemPackage
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Device-mapper through libdevmapper: one `dm_task` per call.
extension LinuxKernel: DeviceMapperControl {
    // MARK: tasks

    fileprivate final class Task {
        let handle: OpaquePointer
        let call: String
        let device: String
        init(_ type: Int, call: String, device: String) throws(KernelError) {
            cdm_clear_last_error()
            guard let h = dm_task_create(Int32(type)) else {
                if access("/dev/mapper/control", F_OK) != 0 {
                    throw KernelError(call: call, device: device, errno: .operationNotSupportedByDevice,
                                            detail: "device-mapper is not available: /dev/mapper/control is missing (is dm-mod loaded?)")
                }
                throw KernelError(call: call, device: device, errno: nil, detail: String(cString: cdm_last_error()))
            }
            handle = h
            self.call = call
            self.device = device
        }
        deinit { dm_task_destroy(handle) }

        func fail(_ what: String = "") -> KernelError {
            var code = dm_task_get_errno(handle)
            if code == 0 { code = errno }
            let message = String(cString: cdm_last_error())
            return KernelError(call: call, device: device, errno: code == 0 ? nil : Errno(rawValue: code),
                               detail: what.isEmpty ? message : what)
        }

        func name(_ name: DeviceName) throws(KernelError) {
            guard dm_task_set_name(handle, name.value) != 0 else { throw fail("set name") }
        }

        func targets(_ table: Table) throws(KernelError) {
            for t in table.targets {
                guard dm_task_add_target(handle, t.start.value, t.length.value, t.type, t.params.kernelText) != 0 else {
                    throw fail("add target")
                }
            }
        }

        /// Runs the task; with `cookie`, waits for (or, without udev, performs) the /dev node
        /// changes — or, with `hold`, hands the cookie over to be waited for later.
        func run(cookieFlags: UInt16? = nil, hold: ((UInt32) -> Void)? = nil) throws(KernelError) {
            cdm_clear_last_error()
            var cookie: UInt32 = 0
            if let flags = cookieFlags {
                guard dm_task_set_cookie(handle, &cookie, flags) != 0 else { throw fail("set cookie") }
            }
            let ok = dm_task_run(handle) != 0
            let failure = ok ? nil : fail()
            if cookieFlags != nil {
                if let hold { hold(cookie) } else { _ = dm_udev_wait(cookie) }
            }
            if let failure { throw failure }
        }

        func info() throws(KernelError) -> dm_info {
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

    fileprivate static let hiddenFlags = UInt16(DM_UDEV_DISABLE_SUBSYSTEM_RULES_FLAG | DM_UDEV_DISABLE_DISK_RULES_FLAG
        | DM_UDEV_DISABLE_OTHER_RULES_FLAG)

    // MARK: device-mapper

    public func list() throws(KernelError) -> [DeviceListEntry] {
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

    public func info(_ name: DeviceName) throws(KernelError) -> DeviceInfo? {
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

    public func table(_ name: DeviceName) throws(KernelError) -> Table {
        let task = try Task(Int(DM_DEVICE_TABLE), call: "table", device: name.value)
        try task.name(name)
        try task.run()
        do {
            return try Table(task.targetLines().map { line throws(ModelError) in
                try TargetLine(parsing: "\(line.0) \(line.1) \(line.2) \(line.3)")
            })
        } catch {
            throw KernelError(call: "table", device: name.value, errno: nil, detail: error.description)
        }
    }

    public func status(_ name: DeviceName) throws(KernelError) -> [TargetStatus] {
        let task = try Task(Int(DM_DEVICE_STATUS), call: "status", device: name.value)
        try task.name(name)
        try task.run()
        return task.targetLines().map { TargetStatus(start: Sectors($0.0), length: Sectors($0.1), type: $0.2, text: $0.3) }
    }

    public func dependencies(_ name: DeviceName) throws(KernelError) -> [DeviceNumber] {
        let task = try Task(Int(DM_DEVICE_DEPS), call: "deps", device: name.value)
        try task.name(name)
        try task.run()
        guard let deps = dm_task_get_deps(task.handle) else { throw task.fail("no deps") }
        return (0..<cdm_deps_count(deps)).map {
            let dev = cdm_deps_device(deps, $0)
            return DeviceNumber(major: cdm_major(dev), minor: cdm_minor(dev))
        }
    }

    public func create(_ name: DeviceName, uuid: String, table: Table, hidden: Bool) throws(KernelError) {
        let task = try Task(Int(DM_DEVICE_CREATE), call: "create", device: name.value)
        try task.name(name)
        guard dm_task_set_uuid(task.handle, uuid) != 0 else { throw task.fail("set uuid") }
        try task.targets(table)
        try task.run(cookieFlags: hidden ? Self.hiddenFlags : 0)
    }

    public func load(_ name: DeviceName, table: Table) throws(KernelError) {
        let task = try Task(Int(DM_DEVICE_RELOAD), call: "load", device: name.value)
        try task.name(name)
        try task.targets(table)
        try task.run()
    }

    public func clearInactive(_ name: DeviceName) throws(KernelError) {
        let task = try Task(Int(DM_DEVICE_CLEAR), call: "clear", device: name.value)
        try task.name(name)
        try task.run()
    }

    public func suspend(_ name: DeviceName, lockfs: Bool) throws(KernelError) {
        let task = try Task(Int(DM_DEVICE_SUSPEND), call: "suspend", device: name.value)
        try task.name(name)
        if !lockfs { _ = dm_task_skip_lockfs(task.handle) }
        try task.run()
    }

    public func resume(_ name: DeviceName) throws(KernelError) {
        let task = try Task(Int(DM_DEVICE_RESUME), call: "resume", device: name.value)
        try task.name(name)
        try task.run(cookieFlags: 0, hold: heldCookies == nil ? nil : { self.heldCookies?.append($0) })
    }

    public func holdUdevWaits(_ hold: Bool) {
        if hold {
            if heldCookies == nil { heldCookies = [] }
            return
        }
        let cookies = heldCookies ?? []
        heldCookies = nil
        for cookie in cookies { _ = dm_udev_wait(cookie) }
    }

    public func remove(_ name: DeviceName) throws(KernelError) {
        let task = try Task(Int(DM_DEVICE_REMOVE), call: "remove", device: name.value)
        try task.name(name)
        _ = dm_task_retry_remove(task.handle)
        try task.run(cookieFlags: 0)
    }

    public func createView(_ name: DeviceName, uuid: String, origin: DeviceName, size: Sectors, scratch: Sectors) throws(KernelError) {
        guard let originInfo = try info(origin) else { throw KernelError(call: "create", device: name.value, errno: .noSuchAddressOrDevice, detail: "no \(origin)") }
        // The scratch file: in memory, unlinked as soon as the loop holds it.
        let dir = "/run/dmsnap"
        mkdir(dir, 0o700)
        let file = "\(dir)/.view-\(name.value)-\(getpid())"
        let fd = open(file, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw KernelError(call: "create", device: file, errno: Errno(rawValue: errno)) }
        unlink(file)
        defer { close(fd) }
        guard ftruncate(fd, off_t(scratch.bytes)) == 0 else { throw KernelError(call: "truncate", device: file, errno: Errno(rawValue: errno)) }
        var major: UInt32 = 0, minor: UInt32 = 0
        var loopFD: Int32 = -1
        guard cdm_loop_attach(fd, cdm_loop_autoclear(), &major, &minor, &loopFD) == 0 else {
            throw KernelError(call: "attach loop", device: name.value, errno: Errno(rawValue: errno))
        }
        // the loop detaches itself once this fd and the view's table let go of it
        defer { close(loopFD) }
        let table = SnapshotParams(origin: originInfo.number, cow: DeviceNumber(major: major, minor: minor), store: .transient, chunk: 8)
            .table(size: size, merge: false)
        try create(name, uuid: uuid, table: table, hidden: true)
    }
}
