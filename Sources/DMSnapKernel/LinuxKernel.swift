import CDeviceMapper
import DMSnapModel
import Logging
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Where libdevmapper's own log lines go (a C callback cannot capture a logger).
nonisolated(unsafe) private var libdmLogger = Logger(label: "dmsnap.libdevmapper")

/// Called by the C shim for the libdevmapper log lines at or below the verbosity set.
private let libdmLogHandler: cdm_log_handler = { level, message in
    guard let message else { return }
    libdmLogger.debug("libdevmapper[\(level)]: \(String(cString: message))")
}

/// The real kernel: device-mapper through libdevmapper (ioctls on /dev/mapper/control), block
/// devices through a few ioctls and libblkid, filesystems through FIFREEZE/FITHAW and syncfs.
/// Each concern is an extension in a file of its own.
public final class LinuxKernel {
    /// Sets up libdevmapper once: its log lines go to `logger` at debug level (libdm is only asked
    /// for them when the logger shows debug), and udev synchronisation is on only when udev is
    /// running (without it libdm makes the /dev/mapper nodes itself; `DM_DISABLE_UDEV` turns it off).
    public init(logger: Logger = Logger(label: "dmsnap.libdevmapper")) {
        libdmLogger = logger
        let noUdev = getenv("DM_DISABLE_UDEV") != nil || access("/run/udev/control", F_OK) != 0
        let verbose: Int32 = logger.logLevel <= .debug ? 7 : 0
        cdm_setup(noUdev ? 0 : 1, verbose, libdmLogHandler)
    }

    public var isPrivileged: Bool { geteuid() == 0 }

    /// udev cookies of resumes not waited for yet (`holdUdevWaits`); nil when not holding.
    var heldCookies: [UInt32]?

    /// From now on SIGINT and SIGTERM only raise a flag (`pendingSignal`): a command checks it
    /// between its steps, rolls back or finishes, and says how it ended.
    public static func catchInterrupts() { cdm_signals_catch() }

    /// Lowers this process's CPU and I/O priority (nice 10, best-effort I/O level 7), for work
    /// like an export that should not slow the live system. Best effort: a failure changes nothing.
    public static func backgroundPriority() { _ = cdm_background_priority() }

    /// Forgets the signal that arrived (`dmsnap run` after passing it on to its command: the
    /// rollback that follows must not be interrupted by it).
    public static func clearPendingSignal() { cdm_signal_clear() }

    /// SIGINT or SIGTERM, if one arrived since `catchInterrupts`.
    public static var pendingSignal: Int32? {
        let s = cdm_signal_pending()
        return s == 0 ? nil : s
    }
}
