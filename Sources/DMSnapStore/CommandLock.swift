import FoundationEssentials
import SystemPackage
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The lock every changing dmsnap command holds: `flock` on `/run/lock/dmsnap/dmsnap.lock`
/// (or `$DMSNAP_LOCK_DIR`), so two dmsnap processes never change the same devices at once.
public final class CommandLock {
    public let path: String
    private var fd: FileDescriptor?

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
        let fd: FileDescriptor
        if let open = self.fd {
            fd = open
        } else {
            do {
                fd = try FileDescriptor.open(FilePath(path), .readWrite, options: [.create, .noFollow, .closeOnExec],
                                             permissions: [.ownerRead, .ownerWrite])
            } catch {
                throw StoreError(path: path, .io(call: "open", errno: error as? Errno ?? .ioError))
            }
            self.fd = fd
        }
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while flock(fd.rawValue, LOCK_EX | LOCK_NB) != 0 {
            let code = Errno(rawValue: errno)
            guard code == .wouldBlock || code == .interrupted else {
                throw StoreError(path: path, .io(call: "flock", errno: code))
            }
            if ContinuousClock.now >= deadline { return false }
            usleep(20_000)
        }
        return true
    }

    public func release() {
        try? fd?.close()
        fd = nil
    }
}
