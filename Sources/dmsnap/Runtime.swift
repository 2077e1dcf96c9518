import DMSnap
import FoundationEssentials
import Logging

/// What the commands run against. The shipped `dmsnap` uses the real kernel; the kernel suite's
/// `dmsnap-test` installs one with its fault hook. Set for a call with `Runtime.$current.withValue`.
public struct Runtime: Sendable {
    /// The kernel the commands use (given the logger for libdevmapper's own lines).
    public var makeKernel: @Sendable (Logger) -> any KernelControl
    /// Whether changing commands log to the system log (syslog(3)); off in the test build.
    public var syslog: Bool

    public init(makeKernel: @escaping @Sendable (Logger) -> any KernelControl, syslog: Bool = true) {
        self.makeKernel = makeKernel
        self.syslog = syslog
    }

    public static let production = Runtime { LinuxKernel(logger: $0) }

    @TaskLocal public static var current = Runtime.production
}

/// The manager for the commands: the runtime's kernel, the state directory and the command lock;
/// for a changing command (`options`), the journal goes to the system log unless turned off.
func makeManager(_ options: ChangeOptions? = nil) -> SnapshotManager {
    let kernel = Runtime.current.makeKernel(Logger(label: CLILog.libdevmapperLabel))
    let manager = SnapshotManager(kernel: kernel, store: FileSetStore(), logger: Logger(label: CLILog.label))
    manager.journal = Logger(label: CLILog.journalLabel)
    CLILog.syslog = Runtime.current.syslog && options.map { !$0.noSyslog } ?? false
    manager.lock = CommandLock()
    manager.lockWait = options?.waitLock ?? 5
    // SIGINT / SIGTERM: roll back (or finish past the point of no return), never die half-way
    LinuxKernel.catchInterrupts()
    manager.interruption = { LinuxKernel.pendingSignal }
    manager.clearInterruption = { LinuxKernel.clearPendingSignal() }
    return manager
}
