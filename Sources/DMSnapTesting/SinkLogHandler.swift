import Logging

/// A log handler that hands every event at or above `logLevel` to `sink`: how tests and the
/// benchmark probe watch the executor's trace lines and the library's warnings.
public struct SinkLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    let sink: @Sendable (LogEvent) -> Void

    public init(logLevel: Logger.Level = .trace, sink: @escaping @Sendable (LogEvent) -> Void) {
        self.logLevel = logLevel
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) { sink(event) }
}

extension Logger {
    /// A logger whose events at or above `level` go to `sink`.
    public static func sink(level: Logger.Level = .trace, _ sink: @escaping @Sendable (LogEvent) -> Void) -> Logger {
        Logger(label: "dmsnap") { _ in SinkLogHandler(logLevel: level, sink: sink) }
    }
}
