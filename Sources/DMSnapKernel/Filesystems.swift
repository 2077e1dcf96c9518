import CDeviceMapper
import DMSnapModel
import SystemPackage
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Filesystems: the mount table, syncfs, FIFREEZE and FITHAW on the mount point.
extension LinuxKernel: FilesystemControl {
    public func mounts() throws(KernelError) -> [MountEntry] {
        MountInfo.parse(try Syscalls.readFile("/proc/self/mountinfo"))
    }

    public func fileSystemDevice(of path: String) -> DeviceNumber? {
        guard let st = try? FilePath(path).stat() else { return nil }
        let dev = UInt64(st.deviceID.rawValue)
        return DeviceNumber(major: cdm_major(dev), minor: cdm_minor(dev))
    }

    public func mountFilesystem(_ device: String, at mountPoint: String, type: String, options: String) throws(KernelError) {
        let flags = UInt(MS_RDONLY | MS_NODEV | MS_NOSUID | MS_NOEXEC)
        try Syscalls.check("mount", mountPoint) { Glibc.mount(device, mountPoint, type, flags, options.isEmpty ? nil : options) }
    }

    public func unmountFilesystem(_ mountPoint: String) throws(KernelError) {
        try Syscalls.check("umount", mountPoint) { umount2(mountPoint, 0) }
    }

    public func restoreMount(_ entry: MountEntry, device: String, bindFrom: String?) throws(KernelError) {
        let (flags, data) = MountOptions.flags(entry)
        if let from = bindFrom {
            try Syscalls.check("mount --bind", entry.mountPoint) { Glibc.mount(from, entry.mountPoint, nil, UInt(MS_BIND), nil) }
            // a bind mount takes its flags from a remount of itself
            guard flags != 0 else { return }
            try Syscalls.check("mount -o remount,bind", entry.mountPoint) {
                Glibc.mount(nil, entry.mountPoint, nil, UInt(MS_REMOUNT | MS_BIND) | flags, nil)
            }
            return
        }
        try Syscalls.check("mount", entry.mountPoint) {
            Glibc.mount(device, entry.mountPoint, entry.fsType, flags, data.isEmpty ? nil : data)
        }
    }

    public func makeDirectory(_ path: String) throws(KernelError) {
        try Syscalls.check("mkdir", path) { mkdir(path, 0o700) }
    }

    public func removeDirectory(_ path: String) throws(KernelError) {
        try Syscalls.check("rmdir", path) { rmdir(path) }
    }

    public func isEmptyDirectory(_ path: String) -> Bool? {
        Syscalls.entries(path).map(\.isEmpty)
    }

    private func onDirectory(_ path: String, call: String, _ body: (Int32) -> Int32) throws(KernelError) {
        try Syscalls.withFile(path, .readOnly, options: .directory, call: call) { fd throws(KernelError) in
            try Syscalls.check(call, path) { body(fd.rawValue) }
        }
    }

    public func syncFilesystem(_ mountPoint: String) throws(KernelError) {
        try onDirectory(mountPoint, call: "syncfs") { cdm_syncfs($0) }
    }

    public func freeze(_ mountPoint: String) throws(KernelError) {
        try onDirectory(mountPoint, call: "freeze") { cdm_fifreeze($0) }
    }

    public func thaw(_ mountPoint: String) throws(KernelError) {
        try onDirectory(mountPoint, call: "thaw") { cdm_fithaw($0) }
    }
}

extension LinuxKernel: SystemControl {
    public var bootID: String? {
        (try? Syscalls.readFile("/proc/sys/kernel/random/boot_id")).map { $0.trimmingWhitespace() }.flatMap { $0.isEmpty ? nil : $0 }
    }
}

/// mountinfo's options as mount(2) takes them: the flags, and the filesystem's own options.
enum MountOptions {
    static let mountFlags: [String: UInt] = [
        "ro": UInt(MS_RDONLY), "nosuid": UInt(MS_NOSUID), "nodev": UInt(MS_NODEV), "noexec": UInt(MS_NOEXEC),
        "noatime": UInt(MS_NOATIME), "nodiratime": UInt(MS_NODIRATIME), "relatime": UInt(MS_RELATIME),
        "nosymfollow": 256, // MS_NOSYMFOLLOW
    ]
    /// Filesystem options the VFS takes as flags.
    static let superFlags: [String: UInt] = [
        "ro": UInt(MS_RDONLY), "sync": UInt(MS_SYNCHRONOUS), "dirsync": UInt(MS_DIRSYNC), "lazytime": UInt(MS_LAZYTIME),
        "mand": UInt(MS_MANDLOCK),
    ]

    static func flags(_ entry: MountEntry) -> (flags: UInt, data: String) {
        var flags: UInt = 0
        for o in entry.options { flags |= mountFlags[o] ?? 0 }
        // neither relatime nor noatime shown: strictatime
        if !entry.options.contains("relatime"), !entry.options.contains("noatime") { flags |= UInt(MS_STRICTATIME) }
        var data: [String] = []
        for o in entry.superOptions where o != "rw" {
            if let f = superFlags[o] { flags |= f } else { data.append(o) }
        }
        return (flags, data.joined(separator: ","))
    }
}
