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
