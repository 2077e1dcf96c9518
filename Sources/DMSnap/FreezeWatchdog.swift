#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Bounds the freezes of a plan. A thread made when the plan starts (outside the window) sleeps
/// until the first freeze arms it, then until the deadline: if the freezes are not all done by
/// then (a filesystem over a slow or stuck device), it thaws the filesystems already frozen at
/// once, while the executor is still blocked in the late FIFREEZE (an ioctl cannot be cancelled);
/// the executor thaws the late one when its freeze returns. In the normal path the window pays
/// two uncontended lock round trips per freeze, and no wake-up.
final class FreezeWatchdog: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var cond = pthread_cond_t()
    private var thread = pthread_t()
    private var running = false
    private let timeout: Duration
    private let thaw: (String) -> Void
    private var deadline: timespec?
    private var finished = false
    private var frozen: [String] = []
    /// True once the deadline passed with freezes still to do.
    private(set) var fired = false
    /// The filesystems the watchdog thawed when it fired.
    private(set) var thawed: [String] = []

    init(timeout: Duration, thaw: @escaping (String) -> Void) {
        self.timeout = timeout
        self.thaw = thaw
        pthread_mutex_init(&mutex, nil)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(&cond, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        finish()
        pthread_cond_destroy(&cond)
        pthread_mutex_destroy(&mutex)
    }

    /// Starts the thread; false when none could be made.
    func start() -> Bool {
        let box = Unmanaged.passRetained(self)
        let rc = pthread_create(&thread, nil, { raw in
            Unmanaged<FreezeWatchdog>.fromOpaque(raw!).takeRetainedValue().watch()
            return nil
        }, box.toOpaque())
        if rc != 0 { box.release() }
        running = rc == 0
        return running
    }

    /// Sleeps in steps of the timeout: first from when the plan started (the first freeze comes
    /// later, so this never fires early), then until the real deadline once a freeze armed it.
    /// Arming never wakes the thread: nothing but the deadline itself costs a context switch.
    private func watch() {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        var until = Self.now(plus: timeout)
        while !finished {
            guard pthread_cond_timedwait(&cond, &mutex, &until) == ETIMEDOUT, !finished else { continue }
            guard let armed = deadline else {
                until = Self.now(plus: timeout)
                continue
            }
            if Self.compare(Self.now(plus: .zero), armed) < 0 {
                until = armed
                continue
            }
            fired = true
            for mp in frozen.reversed() { thaw(mp) }
            thawed = frozen
            frozen = []
            return
        }
    }

    static func now(plus d: Duration) -> timespec {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let (s, atto) = d.components
        var ns = Int(now.tv_nsec) + Int(atto / 1_000_000_000)
        var sec = Int(now.tv_sec) + Int(s)
        if ns >= 1_000_000_000 { sec += 1; ns -= 1_000_000_000 }
        return timespec(tv_sec: sec, tv_nsec: ns)
    }

    static func compare(_ a: timespec, _ b: timespec) -> Int {
        a.tv_sec != b.tv_sec ? (a.tv_sec < b.tv_sec ? -1 : 1) : (a.tv_nsec < b.tv_nsec ? -1 : a.tv_nsec > b.tv_nsec ? 1 : 0)
    }

    /// Before a freeze: arms the deadline at the first one. False when it already passed.
    func willFreeze() -> Bool {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        if deadline == nil { deadline = Self.now(plus: timeout) }
        return !fired
    }

    /// After a freeze returned: false when the deadline passed meanwhile (the caller thaws
    /// `mountPoint` itself; the watchdog thawed the others).
    func didFreeze(_ mountPoint: String) -> Bool {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        guard !fired else { return false }
        frozen.append(mountPoint)
        return true
    }

    /// The freezes are done (or the plan is over): the thread ends.
    func finish() {
        pthread_mutex_lock(&mutex)
        finished = true
        pthread_cond_signal(&cond)
        pthread_mutex_unlock(&mutex)
        if running {
            pthread_join(thread, nil)
            running = false
        }
    }

    /// Done freezing. The thread is not woken (that would cost a context switch inside the
    /// window): it sees this at its deadline, or when `finish` wakes and joins it after the plan.
    func freezesDone() {
        pthread_mutex_lock(&mutex)
        finished = true
        pthread_mutex_unlock(&mutex)
    }
}
