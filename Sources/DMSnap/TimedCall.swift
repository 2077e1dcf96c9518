#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A blocking call run on a thread of its own, waited for with a deadline. A call that misses
/// it keeps running (an ioctl cannot be cancelled); `join` waits for its end.
final class TimedCall: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var cond = pthread_cond_t()
    private var result: Result<Void, KernelError>?
    private var thread = pthread_t()
    private var joined = false
    private let work: () throws(KernelError) -> Void

    init(_ work: @escaping () throws(KernelError) -> Void) {
        self.work = work
        pthread_mutex_init(&mutex, nil)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(&cond, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        join()
        pthread_cond_destroy(&cond)
        pthread_mutex_destroy(&mutex)
    }

    /// Starts the call; false when no thread could be made (then nothing ran).
    func start() -> Bool {
        let box = Unmanaged.passRetained(self)
        let rc = pthread_create(&thread, nil, { raw in
            let call = Unmanaged<TimedCall>.fromOpaque(raw!).takeRetainedValue()
            let r: Result<Void, KernelError>
            do throws(KernelError) { try call.work(); r = .success(()) } catch { r = .failure(error) }
            pthread_mutex_lock(&call.mutex)
            call.result = r
            pthread_cond_broadcast(&call.cond)
            pthread_mutex_unlock(&call.mutex)
            return nil
        }, box.toOpaque())
        if rc != 0 { box.release(); joined = true }
        return rc == 0
    }

    /// The call's result once it returned, or nil when `deadline` (CLOCK_MONOTONIC) passed first.
    func wait(until deadline: timespec) -> Result<Void, KernelError>? {
        var deadline = deadline
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        while result == nil {
            if pthread_cond_timedwait(&cond, &mutex, &deadline) == ETIMEDOUT { break }
        }
        return result
    }

    /// Waits for the call to return, however long it takes.
    @discardableResult
    func join() -> Result<Void, KernelError>? {
        if !joined {
            pthread_join(thread, nil)
            joined = true
        }
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return result
    }

    /// CLOCK_MONOTONIC now plus `d`.
    static func deadline(after d: Duration) -> timespec {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let (s, atto) = d.components
        var ns = Int(now.tv_nsec) + Int(atto / 1_000_000_000)
        var sec = Int(now.tv_sec) + Int(s)
        if ns >= 1_000_000_000 { sec += 1; ns -= 1_000_000_000 }
        return timespec(tv_sec: sec, tv_nsec: ns)
    }
}
