// DMSnapStore — dmsnap's own state: set descriptions on disk (atomic, 0600, O_NOFOLLOW) and the
// command lock. Depends on the model only.
import DMSnapModel
import SystemPackage

/// Where set descriptions live. `FileSetStore` is the real one; the DMSnapTesting target has an
/// in-memory one for tests.
public protocol SetStore: AnyObject {
    /// Where the descriptions are, for messages and the commands that fix things by hand.
    var location: String { get }
    /// Every readable set, and every description that cannot be read (each reported, none
    /// hiding the others).
    func scan() throws(StoreError) -> StoreScan
    func load(_ name: SetName) throws(StoreError) -> SnapshotSet?
    /// Moves an unreadable description aside (keeping it for the admin); returns where it went.
    func quarantine(_ name: SetName) throws(StoreError) -> String
    /// Atomic: a reader sees the old or the new description, never a torn one.
    func save(_ set: SnapshotSet) throws(StoreError)
    func delete(_ name: SetName) throws(StoreError)
    /// The prepared volumes (`dmsnap prepare`), by name.
    func volumes() throws(StoreError) -> [PreparedVolume]
    func saveVolume(_ volume: PreparedVolume) throws(StoreError)
    func deleteVolume(_ name: DeviceName) throws(StoreError)
    /// What the running monitor last reported (nil when none did).
    func monitorReport() -> MonitorReport?
    func saveMonitorReport(_ report: MonitorReport?) throws(StoreError)
}

/// What the state directory holds.
public struct StoreScan: Sendable {
    public var sets: [SnapshotSet]
    public var unreadable: [UnreadableSet]
    public init(sets: [SnapshotSet], unreadable: [UnreadableSet] = []) {
        self.sets = sets
        self.unreadable = unreadable
    }
}

extension SetStore {
    /// The readable sets.
    public func list() throws(StoreError) -> [SnapshotSet] { try scan().sets }
}

/// A failure of dmsnap's own state: an unsafe directory (refused before any change), an I/O
/// error (with its errno), or a description that does not parse.
public struct StoreError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: Hashable, Sendable {
        /// The state directory is not safe to use (a symlink, writable by others, not a directory).
        case unsafe(String)
        /// A system call failed.
        case io(call: String, errno: Errno)
        /// The file's content is not a set description.
        case corrupt(String)
        /// Injected by a test double.
        case injected

        public var isCorrupt: Bool { if case .corrupt = self { true } else { false } }
    }

    public var path: String
    public var kind: Kind

    public init(path: String, _ kind: Kind) {
        self.path = path
        self.kind = kind
    }

    public var what: String {
        switch kind {
        case let .unsafe(why): why
        case let .io(call, errno): "\(call) failed: \(errno)"
        case let .corrupt(why): "set description cannot be read: \(why)"
        case .injected: "injected"
        }
    }

    /// True when nothing was wrong but the state directory itself: the command refuses.
    public var isRefusal: Bool { if case .unsafe = kind { true } else { false } }

    public var description: String { "\(path): \(what)" }
}
