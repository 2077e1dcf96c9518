import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// The lock every changing dmsnap command holds: `flock` on `/run/lock/dmsnap/dmsnap.lock`
/// (or `$DMSNAP_LOCK_DIR`), so two dmsnap processes never change the same devices at once.
public final class CommandLock {
    public let path: String
    private var fd: Int32 = -1

    public static var defaultDirectory: String {
        if let dir = ProcessInfo.processInfo.environment["DMSNAP_LOCK_DIR"], !dir.isEmpty { return dir }
        return "/run/lock/dmsnap"
    }

    public init(directory: String = CommandLock.defaultDirectory) {
        path = directory + "/dmsnap.lock"
        mkdir(directory, 0o700)
    }

    deinit { release() }

    /// Waits up to `seconds` for the lock. Returns false on timeout.
    public func acquire(waiting seconds: Double) throws(StoreError) -> Bool {
        if fd < 0 {
            fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw StoreError(path: path, what: "open failed: \(errnoDescription(errno))") }
        }
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else {
                throw StoreError(path: path, what: "flock failed: \(errnoDescription(errno))")
            }
            if ContinuousClock.now >= deadline { return false }
            usleep(20_000)
        }
        return true
    }

    public func release() {
        if fd >= 0 {
            close(fd)
            fd = -1
        }
    }
}
