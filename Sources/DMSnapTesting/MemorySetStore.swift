import DMSnap

/// An in-memory store for tests; can fail any save or delete on demand.
public final class MemorySetStore: SetStore {
    public var sets: [SetName: SnapshotSet] = [:]
    public var failSave: ((SnapshotSet) -> Bool)?
    public var failDelete = false
    /// Descriptions that do not parse: name → why.
    public var unreadable: [SetName: String] = [:]
    /// Where `quarantine` moved them.
    public var quarantined: [SetName] = []
    public init() {}
    public var location: String { "memory:" }
    public func scan() throws(StoreError) -> StoreScan {
        StoreScan(sets: sets.values.sorted { $0.name < $1.name },
                  unreadable: unreadable.keys.sorted().map { UnreadableSet(name: $0, path: "memory:\($0).json", reason: unreadable[$0]!) })
    }
    public func load(_ name: SetName) throws(StoreError) -> SnapshotSet? {
        if let why = unreadable[name] { throw StoreError(path: "memory:\(name).json", .corrupt(why)) }
        return sets[name]
    }
    public func quarantine(_ name: SetName) throws(StoreError) -> String {
        unreadable[name] = nil
        quarantined.append(name)
        return "memory:\(name).json.unreadable"
    }
    public func save(_ set: SnapshotSet) throws(StoreError) {
        if failSave?(set) ?? false { throw StoreError(path: "memory:\(set.name)", .injected) }
        unreadable[set.name] = nil
        sets[set.name] = set
    }
    public var volumeRecords: [DeviceName: PreparedVolume] = [:]
    public func volumes() throws(StoreError) -> [PreparedVolume] { volumeRecords.values.sorted { $0.name.value < $1.name.value } }
    public func saveVolume(_ volume: PreparedVolume) throws(StoreError) { volumeRecords[volume.name] = volume }
    public func deleteVolume(_ name: DeviceName) throws(StoreError) { volumeRecords[name] = nil }
    public var report: MonitorReport?
    public func monitorReport() -> MonitorReport? { report }
    public func saveMonitorReport(_ report: MonitorReport?) throws(StoreError) { self.report = report }
    public func delete(_ name: SetName) throws(StoreError) {
        if failDelete { throw StoreError(path: "memory:\(name)", .injected) }
        sets[name] = nil
    }
}
