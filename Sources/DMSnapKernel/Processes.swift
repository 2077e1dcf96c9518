import CDeviceMapper
import DMSnapModel
import SystemPackage
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Hooks: programs run without a shell (posix_spawnp), in their own process group, with a
/// deadline after which the whole group is killed.
extension LinuxKernel: ProcessControl {
    public func run(_ argv: [String], environment: [String: String], timeout: Duration?) throws(KernelError) -> ProgramOutcome {
        let ms = timeout.map { Int32(clamping: $0.components.seconds * 1000 + $0.components.attoseconds / 1_000_000_000_000_000) } ?? -1
        var timedOut: Int32 = 0
        let status = try spawn(argv, environment, what: "hook") { a, e, status in cdm_run(a, e, ms, status, &timedOut) }
        return Self.outcome(status, timedOut: timedOut != 0)
    }

    public func runCommand(_ argv: [String], environment: [String: String]) throws(KernelError) -> ProgramOutcome {
        let status = try spawn(argv, environment, what: "command") { a, e, status in cdm_run_foreground(a, e, status) }
        return Self.outcome(status, timedOut: false)
    }

    /// Calls `body` with `argv` and the `NAME=VALUE` entries of `environment` as C arrays (each
    /// ending in NULL) and a wait status to fill; returns that status, or the call's errno.
    private func spawn(_ argv: [String], _ environment: [String: String], what: String,
                       _ body: (UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?, UnsafeMutablePointer<Int32>) -> Int32)
        throws(KernelError) -> Int32 {
        guard !argv.isEmpty else { throw KernelError(call: "run", device: what, errno: .invalidArgument) }
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (cArgs + cEnv).forEach { free($0) } }
        var status: Int32 = 0
        let rc = cArgs.map { UnsafePointer($0) }.withUnsafeBufferPointer { a in
            cEnv.map { UnsafePointer($0) }.withUnsafeBufferPointer { e in body(a.baseAddress, e.baseAddress, &status) }
        }
        guard rc == 0 else { throw KernelError(call: "run", device: argv[0], errno: Errno(rawValue: errno)) }
        return status
    }

    static func outcome(_ status: Int32, timedOut: Bool) -> ProgramOutcome {
        let code = cdm_exit_code(status)
        let signal = cdm_term_signal(status)
        return ProgramOutcome(exitCode: code >= 0 ? code : nil, signal: signal == 0 ? nil : signal, timedOut: timedOut)
    }

    public func executable(_ program: String) -> String? {
        if program.contains("/") { return access(program, X_OK) == 0 && isRegular(program) ? program : nil }
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/sbin:/usr/bin:/sbin:/bin"
        for dir in path.split(separator: ":") where !dir.isEmpty {
            let candidate = "\(dir)/\(program)"
            if access(candidate, X_OK) == 0, isRegular(candidate) { return candidate }
        }
        return nil
    }

    func isRegular(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }

    public func hookFiles(in directory: String) -> [String] {
        var names: [String] = []
        for (name, _) in Syscalls.entries(directory) ?? [] {
            // like run-parts: no hidden files, no editor or package manager leftovers
            guard !name.hasPrefix("."), !name.hasSuffix("~"), !name.contains(".dpkg-") else { continue }
            let path = "\(directory)/\(name)"
            if isRegular(path), access(path, X_OK) == 0 { names.append(path) }
        }
        return names.sorted()
    }
}
