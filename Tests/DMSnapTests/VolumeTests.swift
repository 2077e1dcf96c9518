import DMSnap
import DMSnapTesting
import FoundationEssentials
import Testing

/// Prepared volumes (issue 14): `prepare` wraps a plain device in a dm linear device recorded by
/// its identity, `unprepare` removes it, `restoreVolumes` re-creates it at boot on whichever
/// device carries the identity then; bad input changes nothing.
@Suite("Prepared volumes")
struct VolumeTests {
    static let sdb1 = "/dev/sdb1"
    static let id = VolumeIdentity(.partUUID, "6b0c-01")

    static func fixture() -> SnapFixture {
        let fx = SnapFixture(devices: 1)
        fx.dm.addBlock(sdb1, number: DeviceNumber(major: 8, minor: 17), size: 262_144)
        fx.dm.identitiesByPath[sdb1] = [id, VolumeIdentity(.uuid, "fs-uuid")]
        return fx
    }

    static func prepare(_ fx: SnapFixture, _ path: String = sdb1, name: String = "data") -> Result<PreparedVolume, DMSnapError> {
        attempt { () throws(DMSnapError) in try fx.manager.prepare(path, name: name) }
    }

    @Test func prepareWrapsTheDeviceAndRecordsItsBestIdentity() throws {
        let fx = Self.fixture()
        let v = try Self.prepare(fx).get()
        #expect(v.identity == Self.id && v.sectors == 262_144 && v.uuid == "DMSNAP-vol-data")
        let wrapper = try #require(fx.dm.devices[mkName("data")])
        #expect(wrapper.uuid == "DMSNAP-vol-data")
        #expect(wrapper.live == mkTable("0 262144 linear 8:17 0"))
        #expect(fx.store.volumeRecords[mkName("data")] == v)
        // the wrapper can be taken like any dm device
        _ = try fx.manager.take(TakeRequest(set: "s", pairs: [("data", Fx.cow(0))]))
    }

    @Test func restoreFindsTheDeviceByIdentityUnderAnotherName() throws {
        let fx = Self.fixture()
        _ = try Self.prepare(fx).get()
        // a reboot: no wrapper, and the disk is sdc now
        try fx.dm.remove(mkName("data"))
        fx.dm.identitiesByPath[Self.sdb1] = nil
        fx.dm.addBlock("/dev/sdc1", number: DeviceNumber(major: 8, minor: 33), size: 262_144)
        fx.dm.identitiesByPath["/dev/sdc1"] = [Self.id]
        let out = try fx.manager.restoreVolumes()
        #expect(out == [VolumeRestore(volume: "data", outcome: .created, device: "/dev/sdc1", detail: nil)])
        #expect(fx.dm.devices[mkName("data")]?.live == mkTable("0 262144 linear 8:33 0"))
        // already there: nothing to do
        #expect(try fx.manager.restoreVolumes().map(\.outcome) == [.present])
    }

    @Test func restoreNeverGuessesBetweenTwoDevices() throws {
        let fx = Self.fixture()
        _ = try Self.prepare(fx).get()
        try fx.dm.remove(mkName("data"))
        fx.dm.addBlock("/dev/sdc1", number: DeviceNumber(major: 8, minor: 33), size: 262_144)
        fx.dm.identitiesByPath["/dev/sdc1"] = [Self.id]
        let out = try fx.manager.restoreVolumes()
        #expect(out.map(\.outcome) == [.failed])
        #expect(out[0].detail?.contains("is on /dev/sdb1, /dev/sdc1: not choosing") == true, "\(out)")
        #expect(fx.dm.devices[mkName("data")] == nil)
    }

    @Test func unprepareRemovesTheWrapperAndTheRecord() throws {
        let fx = Self.fixture()
        _ = try Self.prepare(fx).get()
        try fx.manager.unprepare("data")
        #expect(fx.dm.devices[mkName("data")] == nil && fx.store.volumeRecords.isEmpty)
    }

    @Test func unprepareIsRefusedWhileMountedOrInASet() throws {
        let fx = Self.fixture()
        _ = try Self.prepare(fx).get()
        fx.dm.mount(mkName("data"), at: "/srv/data")
        let mounted = attempt { () throws(DMSnapError) in try fx.manager.unprepare("data") }.refusal
        #expect(mounted?.description == "data: is mounted on /srv/data; unmount it first")
        _ = try fx.manager.take(TakeRequest(set: "s", pairs: [("data", Fx.cow(0))]))
        let inSet = attempt { () throws(DMSnapError) in try fx.manager.unprepare("data") }.refusal
        #expect(inSet?.description == "data: is in set s; merge or discard the set first")
        let unknown = attempt { () throws(DMSnapError) in try fx.manager.unprepare("nope") }.refusal
        #expect(unknown?.description == "nope: not a prepared volume (dmsnap prepare makes one)")
    }

    @Test(arguments: [
        ("mounted", "is mounted on /mnt/sdb1"),
        ("open", "is open"),
        ("dm", "is a device-mapper device (vg0-live) already"),
        ("twice", "is prepared already, as data"),
        ("name", "a device-mapper device of that name exists"),
        ("lvm", "carries a LVM2_member signature"),
        ("anonymous", "has nothing that identifies it across reboots"),
        ("cow", "is a COW of set s"),
    ])
    func badPreparesChangeNothing(what: String, message: String) throws {
        let fx = Self.fixture()
        var path = Self.sdb1
        var name = "data"
        switch what {
        case "mounted":
            fx.dm.mountTable.append(MountEntry(number: DeviceNumber(major: 8, minor: 17), mountPoint: "/mnt/sdb1", fsType: "ext4", source: Self.sdb1))
        case "open": fx.dm.blocks[Self.sdb1]?.claimed = true
        case "dm": path = "/dev/mapper/\(Fx.live(0))"
        case "twice":
            _ = try Self.prepare(fx).get()
            fx.dm.identitiesByPath["/dev/sdb9"] = [Self.id]
            fx.dm.addBlock("/dev/sdb9", number: DeviceNumber(major: 8, minor: 25), size: 8)
            path = "/dev/sdb9"
            name = "other"
        case "name": name = Fx.live(0).value
        case "lvm": fx.dm.addBlock(Self.sdb1, number: DeviceNumber(major: 8, minor: 17), size: 262_144, signature: "LVM2_member")
        case "anonymous": fx.dm.identitiesByPath[Self.sdb1] = []
        case "cow":
            _ = try fx.manager.take(fx.request())
            path = Fx.cow(0)
            fx.dm.identitiesByPath[path] = [VolumeIdentity(.uuid, "x")]
        default: break
        }
        let before = fx.world
        let records = fx.store.volumeRecords
        let e = Self.prepare(fx, path, name: name).refusal
        #expect(e?.description.contains(message) == true, "\(what): \(String(describing: e))")
        #expect(fx.world == before)
        #expect(fx.store.volumeRecords == records)
    }
}
