/// How `export` compresses the image.
public enum Compression: String, Hashable, Sendable, CaseIterable, Codable {
    case none, zstd, gzip

    /// The level when none is given (zstd's and gzip's own defaults).
    public var defaultLevel: Int {
        switch self {
        case .none: 0
        case .zstd: 3
        case .gzip: 6
        }
    }

    /// The levels the library takes.
    public var levels: ClosedRange<Int> {
        switch self {
        case .none: 0...0
        case .zstd: 1...19
        case .gzip: 1...9
        }
    }
}

/// Where an export goes.
public enum ExportOutput: Hashable, Sendable {
    case standardOutput
    /// A file; written under a temporary name (or unnamed) and renamed when complete, so a killed
    /// or failed export leaves nothing under `path`. `overwrite` replaces an existing file.
    case file(String, overwrite: Bool)
}

/// What an export did.
public struct ExportSummary: Hashable, Sendable, Codable {
    public var bytesRead: UInt64
    /// Bytes of the output (a sparse file's length counts its holes).
    public var bytesWritten: UInt64
    public var seconds: Double
    /// SHA-256 of the raw image (before compression), hex; nil when not asked for.
    public var sha256: String?

    public init(bytesRead: UInt64, bytesWritten: UInt64, seconds: Double, sha256: String?) {
        self.bytesRead = bytesRead
        self.bytesWritten = bytesWritten
        self.seconds = seconds
        self.sha256 = sha256
    }

    enum CodingKeys: String, CodingKey {
        case seconds, sha256
        case bytesRead = "bytes_read", bytesWritten = "bytes_written"
    }
}
