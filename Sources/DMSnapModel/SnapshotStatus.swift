/// What the kernel reports for a `snapshot` or `snapshot-merge` target.
public enum SnapshotStatus: Hashable, Sendable, CustomStringConvertible {
    /// `ALLOCATED/TOTAL METADATA`, in sectors.
    case valid(allocated: Sectors, total: Sectors, metadata: Sectors)
    /// COW overflowed or an I/O error made the kernel drop the snapshot.
    case invalid
    /// An I/O error stopped a merge.
    case mergeFailed
    /// A full snapshot on the `PO` store.
    case overflow

    public init(parsing text: some StringProtocol) throws(ModelError) {
        let s = text.trimmingWhitespace()
        switch s {
        case "Invalid": self = .invalid
        case "Merge failed": self = .mergeFailed
        case "Overflow": self = .overflow
        default:
            let f = s.split(separator: " ")
            guard f.count == 2 else { throw .invalidStatus(s) }
            let at = f[0].split(separator: "/")
            guard at.count == 2, let a = UInt64(at[0]), let t = UInt64(at[1]), let m = UInt64(f[1]), a <= t, m <= a else {
                throw .invalidStatus(s)
            }
            self = .valid(allocated: Sectors(a), total: Sectors(t), metadata: Sectors(m))
        }
    }

    public var description: String {
        switch self {
        case let .valid(a, t, m): "\(a)/\(t) \(m)"
        case .invalid: "Invalid"
        case .mergeFailed: "Merge failed"
        case .overflow: "Overflow"
        }
    }

    /// Usage as lvm2 shows it: 0 when only metadata is allocated, else allocated/total.
    public var usedPercent: Double? {
        guard case let .valid(a, t, m) = self, t.value > 0 else { return nil }
        if a == m { return 0 }
        return Double(a.value) * 100 / Double(t.value)
    }

    /// For a `snapshot-merge` target: every chunk copied back.
    public var mergeComplete: Bool {
        if case let .valid(a, _, m) = self { return a == m }
        return false
    }
}

/// One line of `dmsetup status`: where the target sits, its type, and its status text.
public struct TargetStatus: Hashable, Sendable, CustomStringConvertible {
    public var start: Sectors
    public var length: Sectors
    public var type: String
    public var text: String

    public init(start: Sectors, length: Sectors, type: String, text: String) {
        self.start = start
        self.length = length
        self.type = type
        self.text = text
    }

    /// The parsed status of a `snapshot` / `snapshot-merge` target; nil for other targets or
    /// text the parser does not know.
    public var snapshot: SnapshotStatus? {
        guard type == "snapshot" || type == "snapshot-merge" else { return nil }
        return try? SnapshotStatus(parsing: text)
    }

    public var description: String { text.isEmpty ? "\(start) \(length) \(type)" : "\(start) \(length) \(type) \(text)" }
}
