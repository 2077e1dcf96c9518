import CDeviceMapper
import DMSnapModel
import SystemPackage
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The window guardian as a forked child (shim.c `cdm_guardian_start`): it waits on a pipe; if
/// the pipe closes while the window is open, dmsnap died in the window, and the child finishes
/// it (resumes, thaws) with raw ioctls. The normal path costs one fork before the plan; inside
/// the window, a store to shared memory on each side.
extension LinuxKernel: GuardianControl {
    final class ForkedGuard: WindowGuard {
        let fd: Int32
        let pid: Int32
        let window: UnsafeMutablePointer<Int32>
        private var stopped = false
        init(fd: Int32, pid: Int32, window: UnsafeMutablePointer<Int32>) {
            self.fd = fd
            self.pid = pid
            self.window = window
        }
        func windowOpens() { cdm_guardian_window(window, 1) }
        func windowCloses() { cdm_guardian_window(window, 0) }
        func stop() {
            guard !stopped else { return }
            stopped = true
            cdm_guardian_stop(fd, pid, window)
        }
        deinit { stop() }
    }

    public func startGuardian(devices: [(name: DeviceName, lockfs: Bool)], mountPoints: [String],
                              cgroups: [String]) throws(KernelError) -> any WindowGuard {
        // The filesystems' directories and the cgroups' freeze files are opened here; the child
        // keeps its own copies.
        var fds: [Int32] = []
        var cgroupFDs: [Int32] = []
        defer { for fd in fds + cgroupFDs { close(fd) } }
        for mp in mountPoints {
            let fd = open(mp, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else { throw KernelError(call: "open", device: mp, errno: Errno(rawValue: errno), detail: "window guardian") }
            fds.append(fd)
        }
        for cg in cgroups {
            let fd = open("\(cg)/cgroup.freeze", O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else { throw KernelError(call: "open", device: cg, errno: Errno(rawValue: errno), detail: "window guardian") }
            cgroupFDs.append(fd)
        }
        let cNames = devices.map { strdup($0.name.value) }
        defer { cNames.forEach { free($0) } }
        let lockfs = devices.map { Int32($0.lockfs ? 1 : 0) }
        var fd: Int32 = -1
        var pid: Int32 = -1
        var window: UnsafeMutablePointer<Int32>?
        let rc = cNames.map { UnsafePointer($0) }.withUnsafeBufferPointer { names in
            lockfs.withUnsafeBufferPointer { l in
                fds.withUnsafeBufferPointer { m in
                    cgroupFDs.withUnsafeBufferPointer { c in
                        cdm_guardian_start(names.baseAddress, l.baseAddress, Int32(devices.count), m.baseAddress, Int32(fds.count),
                                           c.baseAddress, Int32(cgroupFDs.count), &fd, &pid, &window)
                    }
                }
            }
        }
        guard rc == 0, let window else { throw KernelError(call: "start window guardian", device: "dmsnap", errno: Errno(rawValue: errno)) }
        return ForkedGuard(fd: fd, pid: pid, window: window)
    }
}
