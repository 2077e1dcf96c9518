import DMSnap
import FoundationEssentials
import Logging

/// swift-log for the CLI: warnings always (`dmsnap: warning: …` on stderr); with `DMSNAP_TRACE`
/// every kernel step with its time since start, when it begins (`dmsnap: trace: +1.234 ms freeze
/// /mnt`) and when it returns (`… done freeze /mnt`); with `DMSNAP_DEBUG` libdevmapper's own lines.
/// Trace lines are stamped when they happen and written in batches (at exit, or before any other
/// line), so tracing does not add a write(2) per step to the freeze window it measures.
/// The system log (syslog(3), `SyslogHandler`) gets the journal (one line per state change of a
/// set) and the warnings, from changing commands (`syslog`).
enum CLILog {
    static let label = "dmsnap"
    static let libdevmapperLabel = "dmsnap.libdevmapper"
    static let journalLabel = "dmsnap.journal"
    /// Whether lines go to the system log: set by `makeManager` for changing commands.
    nonisolated(unsafe) static var syslog = false

    static func bootstrap() {
        let env = ProcessInfo.processInfo.environment
        let trace = env["DMSNAP_TRACE"] != nil
        let debug = env["DMSNAP_DEBUG"] != nil
        let start = ContinuousClock.now
        LoggingSystem.bootstrap { label in
            if label == journalLabel { return SyslogHandler(logLevel: .notice) }
            var level: Logger.Level = .warning
            if label == libdevmapperLabel {
                if debug { level = .debug }
            } else if trace {
                level = .trace
            } else if debug {
                level = .debug
            }
            let handler = Handler(logLevel: level, start: start)
            guard label == self.label else { return handler }
            return MultiplexLogHandler([handler, SyslogHandler(logLevel: .warning)])
        }
    }

    struct Handler: LogHandler {
        var logLevel: Logger.Level
        var metadata: Logger.Metadata = [:]
        let start: ContinuousClock.Instant

        init(logLevel: Logger.Level, start: ContinuousClock.Instant) {
            self.logLevel = logLevel
            self.start = start
        }

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let message = event.message
            switch event.level {
            case .trace:
                traceBuffer.append((ContinuousClock.now - start, "\(message)"))
                if traceBuffer.count >= 512 { flush() }
            case .warning:
                flush()
                writeStandardError("dmsnap: warning: \(message)\n")
            default:
                flush()
                writeStandardError("dmsnap: \(message)\n")
            }
        }
    }

    /// Trace lines not written yet: (time since start, message). Only the main thread logs.
    nonisolated(unsafe) static var traceBuffer: [(Duration, String)] = []

    /// Writes the buffered trace lines to stderr.
    static func flush() {
        guard !traceBuffer.isEmpty else { return }
        let text = traceBuffer.map { "dmsnap: trace: +\(fixed($0.0.seconds * 1000, 3)) ms \($0.1)\n" }.joined()
        traceBuffer.removeAll()
        writeStandardError(text)
    }
}
