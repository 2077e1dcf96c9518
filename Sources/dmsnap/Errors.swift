#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import DMSnap

/// dmsnap's exit statuses. Scripts rely on them: keep them stable.
enum ExitStatus: Int32 {
    case ok = 0
    case failed = 1
    case usage = 2
    case refused = 3
    case rolledBack = 4
    case rollbackIncomplete = 5
    case interrupted = 130
    case terminated = 143

    /// 128 + the signal, as a shell reports it.
    static func of(signal: Int32) -> ExitStatus { signal == SIGTERM ? .terminated : .interrupted }

    static let helpText = """
        Exit status:
          0    success
          1    failed (unexpected error; after the point of no return, the message
               says what to run next)
          2    usage error (bad command line)
          3    refused: bad input or state; nothing was changed
          4    failed, and everything this run changed was rolled back
          5    failed, and rollback was incomplete: the message lists what is
               left and how to fix it
          130  interrupted by SIGINT (143: SIGTERM): rolled back, or, for a
               waiting merge, how to finish it
        """
}

/// An error the CLI reports as one line and an exit status.
struct CLIError: Error {
    var message: String
    var status: ExitStatus
}

extension CLIError {
    /// Maps a library error to one line and the documented exit status.
    init(_ error: DMSnapError) {
        switch error {
        case let .refused(e):
            self.init(message: e.description, status: .refused)
        case let .failed(e):
            if case let .interrupted(signal) = e.cause, !e.rollbackIncomplete {
                self.init(message: e.description, status: .of(signal: signal))
            } else if e.rollbackIncomplete {
                var lines = [e.description, "state left behind; to fix it by hand, run:"]
                lines += e.fixCommands.map { "  \($0)" }
                self.init(message: lines.joined(separator: "\n"), status: .rollbackIncomplete)
            } else if e.committed {
                self.init(message: e.description, status: .failed)
            } else {
                self.init(message: e.description, status: .rolledBack)
            }
        case let .kernel(e):
            self.init(message: e.description, status: .failed)
        case let .store(e):
            self.init(message: e.description, status: .failed)
        case let .mergeFailed(s):
            self.init(message: s, status: .failed)
        case let .interrupted(signal, s):
            self.init(message: s, status: .of(signal: signal))
        }
    }
}

/// Runs a library call, turning its error into the CLI's.
func cli<T>(_ body: () throws(DMSnapError) -> T) throws(CLIError) -> T {
    do { return try body() } catch { throw CLIError(error) }
}
