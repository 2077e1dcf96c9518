/// Why a lifecycle command did not succeed.
public enum DMSnapError: Error, CustomStringConvertible {
    /// Bad input or state; nothing was changed.
    case refused(PlanError)
    /// A kernel step failed; see `ExecutionError.rolledBack` / `.rollbackIncomplete`.
    case failed(ExecutionError)
    /// Reading the kernel failed before any change.
    case kernel(KernelError)
    /// dmsnap's own state could not be read or written (not bad input: an I/O error or a damaged
    /// description). An unsafe state directory is a refusal instead.
    case store(StoreError)
    /// The kernel reported a failed merge.
    case mergeFailed(String)
    /// SIGINT or SIGTERM stopped the command while it waited; the message says how to go on.
    case interrupted(signal: Int32, String)

    public var description: String {
        switch self {
        case let .refused(e): e.description
        case let .failed(e): e.description
        case let .kernel(e): e.description
        case let .store(e): e.description
        case let .mergeFailed(s): s
        case let .interrupted(_, s): s
        }
    }

    /// A store error as the command reports it: a refusal when the state directory is unsafe.
    static func from(_ error: StoreError) -> DMSnapError {
        error.isRefusal ? .refused(PlanError(error.path, error.what)) : .store(error)
    }
}
