/// What a set, or one member of it, is now: observed from the kernel and the set's record (see
/// `Planner.observe`). The one state vocabulary of `dmsnap status` (text and JSON), of the
/// planner's decisions and of the library. A set's state is its most severe member's.
public enum SetState: String, Codable, Hashable, Sendable, Comparable, CaseIterable {
    /// The snapshot runs: writes go to the COW, the base holds the frozen image.
    case active
    /// The COW is being merged back into the device.
    case merging
    /// After a reboot: the set's devices are gone, its COWs hold every change; `dmsnap activate`
    /// puts the snapshot back on top (or `dmsnap discard` forgets it: the re-created devices hold
    /// the frozen image).
    case inactive
    /// Interrupted half-way (or a part is missing): `dmsnap recover` settles it.
    case incomplete
    /// Another tool replaced or removed what dmsnap had set up (a live table reloaded behind its
    /// back, a device removed): `dmsnap forget` drops the set, the COW keeps what it holds.
    case lost
    /// The kernel dropped the snapshot (the COW overflowed or failed).
    case invalid
    /// An I/O error stopped the merge.
    case mergeFailed = "merge-failed"
    /// The set's description cannot be read: `dmsnap recover` rebuilds it from the kernel.
    case unreadable
    /// dmsnap devices in the kernel that no recorded set owns (the description was deleted):
    /// `dmsnap recover` rebuilds it from the kernel.
    case orphaned

    var severity: Int {
        switch self {
        case .active: 0
        case .merging: 1
        case .inactive: 2
        case .incomplete: 3
        case .lost: 4
        case .invalid: 5
        case .mergeFailed: 6
        case .unreadable: 7
        case .orphaned: 8
        }
    }

    public static func < (a: SetState, b: SetState) -> Bool { a.severity < b.severity }
}
