#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Logging

/// swift-log's backend for the system log: each line goes to syslog(3) (journald reads /dev/log)
/// under the identifier `dmsnap`, facility daemon, with the pid, so `journalctl -t dmsnap` shows
/// what happened to a set. Sends only while `CLILog.syslog` is on (changing commands without
/// --no-syslog, never in the test build).
struct SyslogHandler: LogHandler {
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]

    init(logLevel: Logger.Level) { self.logLevel = logLevel }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        guard CLILog.syslog else { return }
        Self.open()
        let priority: Int32 = switch event.level {
        case .critical: LOG_CRIT
        case .error: LOG_ERR
        case .warning: LOG_WARNING
        case .notice: LOG_NOTICE
        case .info: LOG_INFO
        case .debug, .trace: LOG_DEBUG
        }
        let text = "\(event.message)"
        text.withCString { line in
            withVaList([line]) { vsyslog(priority, "%s", $0) }
        }
    }

    /// openlog once: the identifier must outlive every call, so it is never freed.
    nonisolated(unsafe) private static var opened = false
    private static func open() {
        guard !opened else { return }
        opened = true
        openlog(strdup("dmsnap"), LOG_PID, LOG_DAEMON)
    }
}
