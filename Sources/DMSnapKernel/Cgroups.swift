import CDeviceMapper
import DMSnapModel
import SystemPackage
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The cgroup v2 freezer: `cgroup.freeze`, `cgroup.events`, the cgroup2 mount from mountinfo.
extension LinuxKernel: CgroupControl {
    /// Where the cgroup2 hierarchy is mounted (nil: none, e.g. cgroup v1 only).
    func cgroup2Mount() -> String? {
        guard let text = try? Syscalls.readFile("/proc/self/mountinfo") else { return nil }
        for line in text.split(separator: "\n") {
            // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS... - FSTYPE SOURCE SUPER
            let halves = line.split(separator: " - ", maxSplits: 1)
            guard halves.count == 2, halves[1].split(separator: " ").first == "cgroup2" else { continue }
            let f = halves[0].split(separator: " ")
            if f.count > 4 { return MountInfo.unescape(f[4]) }
        }
        return nil
    }

    /// dmsnap's own cgroup, as a directory.
    func ownCgroup(under mount: String) -> String? {
        guard let text = try? Syscalls.readFile("/proc/self/cgroup") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("0::") {
            let rel = String(line.dropFirst(3))
            return rel == "/" ? mount : mount + rel
        }
        return nil
    }

    public func inspectCgroup(_ path: String) throws(KernelError) -> CgroupFacts {
        let real = try Self.realPath(path)
        var st = stat()
        guard stat(real, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw KernelError(call: "stat", device: path, errno: .notDirectory)
        }
        guard let mount = cgroup2Mount(), real == mount || real.hasPrefix(mount + "/") else {
            return CgroupFacts(path: real, hasFreezer: false, isRoot: false, holdsSelf: false, processes: 0)
        }
        let own = ownCgroup(under: mount)
        let holdsSelf = own.map { $0 == real || $0.hasPrefix(real + "/") } ?? false
        return CgroupFacts(path: real, hasFreezer: access("\(real)/cgroup.freeze", W_OK) == 0, isRoot: real == mount,
                           holdsSelf: holdsSelf, processes: processes(in: real, depth: 0))
    }

    func processes(in dir: String, depth: Int) -> Int {
        var n = (try? Syscalls.readFile("\(dir)/cgroup.procs"))?.split(separator: "\n").count ?? 0
        guard depth < 8 else { return n }
        for (name, isDirectory) in Syscalls.entries(dir) ?? [] where isDirectory {
            n += processes(in: "\(dir)/\(name)", depth: depth + 1)
        }
        return n
    }

    public func cgroup(ofUnit name: String) -> String? {
        guard let mount = cgroup2Mount() else { return nil }
        let wanted = name.contains(".") ? name : name + ".service"
        var queue: [(String, Int)] = [(mount, 0)]
        while !queue.isEmpty {
            let (dir, depth) = queue.removeFirst()
            for (child, isDirectory) in Syscalls.entries(dir) ?? [] where isDirectory {
                if child == wanted { return "\(dir)/\(child)" }
                if depth < 6 { queue.append(("\(dir)/\(child)", depth + 1)) }
            }
        }
        return nil
    }

    func writeFreeze(_ path: String, _ value: String) throws(KernelError) {
        try Syscalls.withFile("\(path)/cgroup.freeze", .writeOnly, call: "open cgroup.freeze") { fd throws(KernelError) in
            do { _ = try Array(value.utf8).withUnsafeBytes { try fd.writeAll($0) } } catch {
                throw KernelError(call: "write cgroup.freeze", device: path, errno: error as? Errno)
            }
        }
    }

    public func freezeCgroup(_ path: String, timeout: Duration?) throws(KernelError) {
        try writeFreeze(path, "1")
        let deadline = timeout.map { ContinuousClock.now + $0 }
        while true {
            let events = try Syscalls.readFile("\(path)/cgroup.events")
            if events.split(separator: "\n").contains("frozen 1") { return }
            if let deadline, ContinuousClock.now >= deadline {
                try? writeFreeze(path, "0")
                throw KernelError(call: "freeze cgroup", device: path, errno: .timedOut,
                                  detail: "its processes did not all stop in time (one in uninterruptible sleep?)")
            }
            usleep(500)
        }
    }

    public func thawCgroup(_ path: String) throws(KernelError) { try writeFreeze(path, "0") }
}
