#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization

/// Runs `work(0) … work(n-1)`, each on its own thread, and returns when all have returned.
/// A thread that cannot be started runs its work on the calling thread instead.
func concurrently(_ n: Int, _ work: (Int) -> Void) {
    withoutActuallyEscaping(work) { work in
        let job = UncheckedSendable(work)
        var threads: [pthread_t] = []
        for i in 0..<n {
            let context = Unmanaged.passRetained(ThreadContext { job.value(i) }).toOpaque()
            var thread = pthread_t()
            if pthread_create(&thread, nil, { raw in
                Unmanaged<ThreadContext>.fromOpaque(raw!).takeRetainedValue().body()
                return nil
            }, context) == 0 {
                threads.append(thread)
            } else {
                Unmanaged<ThreadContext>.fromOpaque(context).release()
                work(i)
            }
        }
        for thread in threads { pthread_join(thread, nil) }
    }
}

private final class ThreadContext {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

/// A value handed to threads that `concurrently` joins before it returns; the caller vouches
/// that the threads touch it safely (disjoint results, thread-safe kernel calls).
struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// One optional failure per slot, written from several threads.
final class Results: Sendable {
    private let slots: Mutex<[ExecutorFailure?]>
    init(count: Int) { slots = Mutex(Array(repeating: nil, count: count)) }
    func set(_ i: Int, _ failure: ExecutorFailure) { slots.withLock { $0[i] = failure } }
    var values: [ExecutorFailure?] { slots.withLock { $0 } }
}
