import DMSnap

/// An in-memory store for tests; can fail any save or delete on demand.
public final class MemorySetStore: SetStore {
    public var sets: [SetName: SnapshotSet] = [:]
    public var failSave: ((SnapshotSet) -> Bool)?
    public var failDelete = false
    public init() {}
    public var location: String { "memory:" }
    public func list() throws(StoreError) -> [SnapshotSet] { sets.values.sorted { $0.name < $1.name } }
    public func load(_ name: SetName) throws(StoreError) -> SnapshotSet? { sets[name] }
    public func save(_ set: SnapshotSet) throws(StoreError) {
        if failSave?(set) ?? false { throw StoreError(path: "memory:\(set.name)", .injected) }
        sets[set.name] = set
    }
    public func delete(_ name: SetName) throws(StoreError) {
        if failDelete { throw StoreError(path: "memory:\(name)", .injected) }
        sets[name] = nil
    }
}
