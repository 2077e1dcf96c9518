import CDeviceMapper
import DMSnapModel
import SystemPackage
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Block devices: stat and the size ioctls, exclusive opens, libblkid probes, the COW header.
extension LinuxKernel: BlockDeviceControl {
    public func blockDevice(at path: String) throws(KernelError) -> BlockDeviceInfo {
        let st: Stat
        do { st = try FilePath(path).stat() } catch { throw KernelError(call: "stat", device: path, errno: error) }
        guard st.type == .blockSpecial else { throw KernelError(call: "stat", device: path, errno: .notBlockDevice) }
        let rdev = UInt64(st.specialDeviceID.rawValue)
        return try Syscalls.withFile(path, .readOnly) { fd throws(KernelError) in
            var bytes: UInt64 = 0
            try Syscalls.check("BLKGETSIZE64", path) { cdm_blkgetsize64(fd.rawValue, &bytes) }
            var lbs: Int32 = 512
            try Syscalls.check("BLKSSZGET", path) { cdm_blksszget(fd.rawValue, &lbs) }
            return BlockDeviceInfo(path: path, number: DeviceNumber(major: cdm_major(rdev), minor: cdm_minor(rdev)),
                                   size: Sectors(bytes / 512), logicalBlockSize: UInt32(lbs))
        }
    }

    public func path(of number: DeviceNumber) -> String? {
        if let name = try? Syscalls.readFile("/sys/dev/block/\(number)/dm/name").trimmingWhitespace(), !name.isEmpty {
            return "/dev/mapper/\(name)"
        }
        var buf = [CChar](repeating: 0, count: 4096)
        let len = readlink("/sys/dev/block/\(number)", &buf, buf.count - 1)
        guard len > 0 else { return nil }
        let target = String(decoding: buf[0..<len].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return target.split(separator: "/").last.map { "/dev/\($0)" }
    }

    public func loopBacking(of number: DeviceNumber) -> LoopBacking? {
        guard let file = try? Syscalls.readFile("/sys/dev/block/\(number)/loop/backing_file").trimmingWhitespace(),
              !file.isEmpty, let st = try? FilePath(file).stat() else { return nil }
        let dev = UInt64(st.deviceID.rawValue)
        return LoopBacking(file: file, fileSystemDevice: DeviceNumber(major: cdm_major(dev), minor: cdm_minor(dev)))
    }

    public func identities(of path: String) -> [VolumeIdentity] {
        var values: [String: String] = [:]
        if let probe = blkid_new_probe_from_filename(path) {
            defer { blkid_free_probe(probe) }
            _ = blkid_probe_enable_superblocks(probe, 1)
            _ = blkid_probe_set_superblocks_flags(probe, Int32(BLKID_SUBLKS_TYPE | BLKID_SUBLKS_UUID))
            _ = blkid_probe_enable_partitions(probe, 1)
            _ = blkid_probe_set_partitions_flags(probe, Int32(BLKID_PARTS_ENTRY_DETAILS))
            if blkid_do_safeprobe(probe) == 0 {
                for key in ["PART_ENTRY_UUID", "UUID"] {
                    var data: UnsafePointer<CChar>? = nil
                    var len = 0
                    if blkid_probe_lookup_value(probe, key, &data, &len) == 0, let data { values[key] = String(cString: data) }
                }
            }
        }
        var out: [VolumeIdentity] = []
        if let p = values["PART_ENTRY_UUID"], !p.isEmpty { out.append(VolumeIdentity(.partUUID, p)) }
        if let n = try? blockDevice(at: path).number {
            for file in ["/sys/dev/block/\(n)/wwid", "/sys/dev/block/\(n)/device/wwid"] {
                if let w = try? Syscalls.readFile(file), case let id = w.filter({ !$0.isNewline }), !id.isEmpty {
                    out.append(VolumeIdentity(.wwn, id))
                    break
                }
            }
        }
        if let u = values["UUID"], !u.isEmpty { out.append(VolumeIdentity(.uuid, u)) }
        return out
    }

    public func blockDevices(with identity: VolumeIdentity) -> [String] {
        (Syscalls.entries("/sys/class/block") ?? []).map(\.name).sorted().compactMap { name in
            // dm devices (bases and wrappers carry the same identities) and empty loops aside
            guard !name.hasPrefix("dm-"), (try? Syscalls.readFile("/sys/class/block/\(name)/size"))?.filter(\.isNumber) != "0"
            else { return nil }
            let path = "/dev/\(name)"
            return identities(of: path).contains(identity) ? path : nil
        }
    }

    public func holders(of number: DeviceNumber) -> [DeviceNumber] {
        (Syscalls.entries("/sys/dev/block/\(number)/holders") ?? []).compactMap { entry in
            guard let text = try? Syscalls.readFile("/sys/class/block/\(entry.name)/dev") else { return nil }
            return try? DeviceNumber(parsing: text.filter { !$0.isWhitespace })
        }
    }

    public func isClaimed(_ path: String) throws(KernelError) -> Bool {
        // O_EXCL on a block device fails with EBUSY while it is mounted or held by another device.
        do {
            let fd = try FileDescriptor.open(FilePath(path), .readOnly, options: [.exclusiveCreate, .closeOnExec])
            try? fd.close()
            return false
        } catch Errno.resourceBusy {
            return true
        } catch {
            throw KernelError(call: "open", device: path, errno: error as? Errno)
        }
    }

    public func probeSignature(_ path: String) throws(KernelError) -> String? {
        guard let probe = blkid_new_probe_from_filename(path) else {
            throw KernelError(call: "blkid probe", device: path, errno: Errno(rawValue: errno))
        }
        defer { blkid_free_probe(probe) }
        _ = blkid_probe_enable_superblocks(probe, 1)
        _ = blkid_probe_set_superblocks_flags(probe, Int32(BLKID_SUBLKS_TYPE | BLKID_SUBLKS_BADCSUM))
        _ = blkid_probe_enable_partitions(probe, 1)
        let rc = blkid_do_safeprobe(probe)
        if rc == 1 { return nil }
        if rc == -2 { return "ambiguous signatures" }
        if rc < 0 { throw KernelError(call: "blkid probe", device: path, errno: .ioError, detail: "probe failed") }
        for key in ["TYPE", "PTTYPE"] {
            var data: UnsafePointer<CChar>? = nil
            var len = 0
            if blkid_probe_lookup_value(probe, key, &data, &len) == 0, let data {
                return String(cString: data)
            }
        }
        return "unknown signature"
    }

    @discardableResult
    public func wipeSignatures(_ path: String) throws(KernelError) -> [String] {
        try Syscalls.withFile(path, .readWrite) { fd throws(KernelError) in
            guard let probe = blkid_new_probe() else { throw KernelError(call: "blkid probe", device: path, errno: .noMemory) }
            defer { blkid_free_probe(probe) }
            guard blkid_probe_set_device(probe, fd.rawValue, 0, 0) == 0 else {
                throw KernelError(call: "blkid probe", device: path, errno: Errno(rawValue: errno))
            }
            _ = blkid_probe_enable_superblocks(probe, 1)
            _ = blkid_probe_set_superblocks_flags(probe, Int32(BLKID_SUBLKS_MAGIC | BLKID_SUBLKS_TYPE | BLKID_SUBLKS_BADCSUM))
            _ = blkid_probe_enable_partitions(probe, 1)
            _ = blkid_probe_set_partitions_flags(probe, Int32(BLKID_PARTS_MAGIC))
            var wiped: [String] = []
            while wiped.count < 64 {
                let rc = blkid_do_probe(probe)
                if rc == 1 { break }
                guard rc == 0 else { throw KernelError(call: "blkid probe", device: path, errno: .ioError, detail: "probe failed") }
                for key in ["TYPE", "PTTYPE"] {
                    var data: UnsafePointer<CChar>? = nil
                    var len = 0
                    if blkid_probe_lookup_value(probe, key, &data, &len) == 0, let data { wiped.append(String(cString: data)) }
                }
                guard blkid_do_wipe(probe, 0) == 0 else {
                    throw KernelError(call: "wipe signature", device: path, errno: Errno(rawValue: errno))
                }
            }
            try Syscalls.check("fsync", path) { fsync(fd.rawValue) }
            return wiped
        }
    }

    public func readDirect(_ path: String, offset: UInt64, count: Int) throws(KernelError) -> [UInt8] {
        try Syscalls.withFile(path, .readOnly, options: FileDescriptor.OpenOptions(rawValue: cdm_o_direct())) { fd throws(KernelError) in
            try Syscalls.readDirect(fd, offset: offset, count: count, path: path)
        }
    }

    public func readHeader(_ path: String, bytes: Int) throws(KernelError) -> [UInt8] {
        try Syscalls.withFile(path, .readOnly) { fd throws(KernelError) in try Syscalls.readPrefix(fd, count: bytes, path: path) }
    }

    public func zeroHeader(_ path: String, bytes: Int) throws(KernelError) {
        try Syscalls.withFile(path, .writeOnly) { fd throws(KernelError) in
            let zeros = [UInt8](repeating: 0, count: bytes)
            do {
                let written = try zeros.withUnsafeBytes { try fd.writeAll(toAbsoluteOffset: 0, $0) }
                guard written == bytes else { throw Errno.ioError }
            } catch {
                throw KernelError(call: "write header", device: path, errno: error as? Errno)
            }
            try Syscalls.check("fsync", path) { fsync(fd.rawValue) }
        }
    }
}
