/// One device-mapper device as `dmsnap devices` lists it.
public struct DeviceReport: Hashable, Sendable {
    public var info: DeviceInfo
    /// The live table (nil when the device has none).
    public var table: Table?
}

extension SnapshotManager {
    /// Every device-mapper device with its info and live table. A device that vanishes between
    /// the list and its info is skipped.
    public func devices() throws(DMSnapError) -> [DeviceReport] {
        try requireRoot()
        do {
            var out: [DeviceReport] = []
            for entry in try kernel.list() {
                guard let info = try kernel.info(entry.name) else { continue }
                out.append(DeviceReport(info: info, table: info.hasLiveTable ? try kernel.table(entry.name) : nil))
            }
            return out
        } catch {
            throw .kernel(error)
        }
    }
}
