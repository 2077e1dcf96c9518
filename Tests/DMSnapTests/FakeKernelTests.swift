#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Testing
@testable import DMSnap
@testable import DMSnapModel
@testable import DMSnapPlanning
@testable import DMSnapKernel
@testable import DMSnapStore
import DMSnapTesting
import SystemPackage

// MARK: - fixtures

/// A name known to be valid.
private func dev(_ raw: String) -> DeviceName {
    guard let name = try? DeviceName(raw) else { fatalError("bad test device name \(raw)") }
    return name
}

/// A table known to be valid.
private func table(_ text: String) -> Table {
    guard let t = try? Table(parsing: text) else { fatalError("bad test table \(text)") }
    return t
}

private func num(_ major: UInt32, _ minor: UInt32) -> DeviceNumber { DeviceNumber(major: major, minor: minor) }

private let root = dev("vg-root")
private let real = dev("dmst-1-real")
private let snap = dev("dmst-1-snap")

/// Two loop devices: /dev/loop0 (7:0, 100 MiB origin data) and /dev/loop1 (7:1, 32 MiB COW store),
/// plus an unused /dev/loop2 (7:2).
private func makeFake() -> FakeKernel {
    let dm = FakeKernel()
    dm.addBlock("/dev/loop0", number: num(7, 0), size: 204_800, signature: "ext4")
    dm.addBlock("/dev/loop1", number: num(7, 1), size: 65_536)
    dm.addBlock("/dev/loop2", number: num(7, 2), size: 65_536, signature: "xfs")
    return dm
}

/// `makeFake()` plus `vg-root` = linear over /dev/loop0.
private func makeFakeWithRoot() -> FakeKernel {
    let dm = makeFake()
    dm.addDevice(root, table: table("0 204800 linear 7:0 0"), uuid: "LVM-root")
    return dm
}

/// Returns the `KernelError` that `body` throws, recording an issue if it does not throw one.
private func dmError(_ body: () throws -> Void,
                     sourceLocation: SourceLocation = #_sourceLocation) -> KernelError? {
    do {
        try body()
        Issue.record("expected a KernelError", sourceLocation: sourceLocation)
    } catch let error as KernelError {
        return error
    } catch {
        Issue.record("expected a KernelError, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

// MARK: - tests

@Suite("FakeKernel")
struct FakeKernelTests {
    // MARK: devices, info, table

    @Test func addDeviceInfoAndTable() throws {
        let dm = makeFake()
        let rootNumber = dm.addDevice(root, table: table("0 204800 linear 7:0 0"), uuid: "LVM-root")
        let dataNumber = dm.addDevice(dev("vg-data"), table: table("0 65536 linear 7:2 0"))
        #expect(rootNumber.major == FakeKernel.dmMajor)
        #expect(dataNumber.major == 253)
        #expect(rootNumber != dataNumber)
        #expect(dm.trace.isEmpty, "set-up helpers are not kernel calls")

        let info = try #require(try dm.info(root))
        #expect(info == DeviceInfo(name: root, uuid: "LVM-root", number: rootNumber, openCount: 0, suspended: false,
                                   hasLiveTable: true, hasInactiveTable: false, readOnly: false))
        #expect(try dm.table(root) == table("0 204800 linear 7:0 0"))
        #expect(try dm.info(dev("vg-data"))?.uuid == "")
        #expect(try dm.list() == [DeviceListEntry(name: dev("vg-data"), number: dataNumber),
                                  DeviceListEntry(name: root, number: rootNumber)])
        #expect(try dm.dependencies(root) == [num(7, 0)])
    }

    @Test func missingDevice() throws {
        let dm = makeFakeWithRoot()
        #expect(try dm.info(dev("nope")) == nil)
        #expect(dmError { _ = try dm.table(dev("nope")) }?.errno == ENXIO)
        #expect(dmError { _ = try dm.status(dev("nope")) }?.errno == ENXIO)
        #expect(dmError { try dm.load(dev("nope"), table: table("0 8 error")) }?.errno == ENXIO)
        #expect(dmError { try dm.suspend(dev("nope"), lockfs: false) }?.errno == ENXIO)
        #expect(dmError { try dm.resume(dev("nope")) }?.errno == ENXIO)
        #expect(dmError { try dm.remove(dev("nope")) }?.errno == ENXIO)
        let e = dmError { _ = try dm.table(dev("nope")) }
        #expect(e?.device == "nope")
        #expect(e?.call == "table")
    }

    @Test func blockDeviceLookup() throws {
        let dm = makeFakeWithRoot()
        #expect(try dm.blockDevice(at: "/dev/loop1")
            == BlockDeviceInfo(path: "/dev/loop1", number: num(7, 1), size: 65_536, logicalBlockSize: 512))
        let viaMapper = try dm.blockDevice(at: "/dev/mapper/vg-root")
        #expect(viaMapper.number == num(253, 0))
        #expect(viaMapper.size == 204_800)
        #expect(try dm.blockDevice(at: "/dev/dm-0").number == num(253, 0))
        #expect(dmError { _ = try dm.blockDevice(at: "/dev/loop9") }?.errno == ENOENT)
        #expect(dmError { _ = try dm.blockDevice(at: "/dev/mapper/nope") }?.errno == ENOENT)
    }

    // MARK: load, suspend, resume

    @Test func loadFillsInactiveSlotAndLiveTableStaysUntilResume() throws {
        let dm = makeFakeWithRoot()
        let old = table("0 204800 linear 7:0 0")
        let new = table("0 204800 snapshot-origin 7:0")
        try dm.load(root, table: new)

        #expect(try dm.table(root) == old)
        #expect(dm.device(root)?.live == old)
        #expect(dm.device(root)?.inactive == new)
        #expect(try dm.info(root)?.hasInactiveTable == true)

        try dm.suspend(root, lockfs: true)
        #expect(try dm.info(root)?.suspended == true)
        #expect(try dm.table(root) == old, "suspend alone does not swap tables")

        try dm.resume(root)
        #expect(try dm.table(root) == new)
        let info = try #require(try dm.info(root))
        #expect(!info.suspended)
        #expect(!info.hasInactiveTable)
        #expect(dm.device(root)?.inactive == nil)

        // Resuming with nothing loaded keeps the live table.
        try dm.suspend(root, lockfs: false)
        try dm.resume(root)
        #expect(try dm.table(root) == new)
    }

    @Test func clearInactiveDropsLoadedTable() throws {
        let dm = makeFakeWithRoot()
        try dm.load(root, table: table("0 204800 error"))
        try dm.clearInactive(root)
        #expect(try dm.info(root)?.hasInactiveTable == false)
        try dm.suspend(root, lockfs: false)
        try dm.resume(root)
        #expect(try dm.table(root) == table("0 204800 linear 7:0 0"))
    }

    @Test func loadRejectsTableReferencingUnknownDevice() throws {
        let dm = makeFakeWithRoot()
        let e = dmError { try dm.load(root, table: table("0 204800 linear 8:99 0")) }
        #expect(e?.errno == ENXIO)
        #expect(dm.device(root)?.inactive == nil)
        #expect(dmError { try dm.load(root, table: table("0 204800 linear /dev/mapper/nope 0")) }?.errno == ENXIO)
        #expect(dmError { try dm.load(root, table: table("0 204800 linear /dev/sdz 0")) }?.errno == ENXIO)
        // Malformed snapshot parameters cannot even be built: the typed table refuses them.
        #expect(throws: ModelError.self) { try Table(parsing: "0 204800 snapshot 7:0 7:1 P") }
    }

    @Test func suspendAndResumeState() throws {
        let dm = makeFakeWithRoot()
        try dm.suspend(root, lockfs: false)
        #expect(dm.device(root)?.suspended == true)
        try dm.suspend(root, lockfs: true)  // suspending twice is harmless
        #expect(dm.device(root)?.suspended == true)
        try dm.resume(root)
        #expect(dm.device(root)?.suspended == false)
        try dm.resume(root)  // resuming an active device is harmless
        #expect(dm.device(root)?.suspended == false)
    }

    // MARK: freeze and the lockfs trap

    @Test func suspendWithLockfsFailsOnFrozenFilesystem() throws {
        let dm = makeFakeWithRoot()
        dm.mount(root, at: "/")
        try dm.freeze("/")
        #expect(dm.frozen == ["/"])

        let e = dmError { try dm.suspend(root, lockfs: true) }
        #expect(e?.errno == EBUSY)
        #expect(e?.call == "suspend")
        #expect(dm.device(root)?.suspended == false)

        try dm.suspend(root, lockfs: false)
        #expect(dm.device(root)?.suspended == true)
        try dm.resume(root)
        try dm.thaw("/")
        #expect(dm.frozen.isEmpty)

        try dm.suspend(root, lockfs: true)  // fine once thawed
        #expect(dm.device(root)?.suspended == true)
    }

    @Test func freezingAnotherFilesystemDoesNotBlockSuspend() throws {
        let dm = makeFakeWithRoot()
        dm.addDevice(dev("vg-home"), table: table("0 65536 linear 7:2 0"))
        dm.mount(root, at: "/")
        dm.mount(dev("vg-home"), at: "/home")
        try dm.freeze("/home")
        try dm.suspend(root, lockfs: true)
        #expect(dm.device(root)?.suspended == true)
        #expect(dmError { try dm.suspend(dev("vg-home"), lockfs: true) }?.errno == EBUSY)
    }

    @Test func freezeAndThaw() throws {
        let dm = makeFakeWithRoot()
        #expect(dmError { try dm.thaw("/") }?.errno == EINVAL, "thaw of a filesystem that is not frozen fails")
        try dm.freeze("/")
        #expect(dmError { try dm.freeze("/") }?.errno == EBUSY, "freezing twice fails")
        try dm.thaw("/")
        #expect(dmError { try dm.thaw("/") }?.errno == EINVAL)
        try dm.freeze("/")
        #expect(dm.frozen == ["/"])
    }

    // MARK: remove

    @Test func removeRefusesMountedDevice() throws {
        let dm = makeFakeWithRoot()
        dm.mount(root, at: "/mnt/root")
        #expect(try dm.info(root)?.openCount == 1)
        #expect(dm.mountTable.map(\.mountPoint) == ["/mnt/root"])
        #expect(dm.mountTable.first?.source == "/dev/mapper/vg-root")

        #expect(dmError { try dm.remove(root) }?.errno == EBUSY)
        #expect(try dm.info(root) != nil)

        dm.unmount("/mnt/root")
        #expect(try dm.info(root)?.openCount == 0)
        try dm.remove(root)
        #expect(try dm.info(root) == nil)
        #expect(try dm.list().isEmpty)
    }

    @Test func removeRefusesDeviceUsedBySnapshot() throws {
        let dm = makeFake()
        let realNumber = dm.addDevice(real, table: table("0 204800 linear 7:0 0"))
        try dm.create(snap, uuid: "DMST-1-snap", table: table("0 204800 snapshot \(realNumber) 7:1 P 8"), hidden: false)
        #expect(try dm.info(real)?.openCount == 1)
        #expect(try dm.dependencies(snap) == [realNumber, num(7, 1)])

        let e = dmError { try dm.remove(real) }
        #expect(e?.errno == EBUSY)
        #expect(e?.device == real.value)
        #expect(try dm.info(real) != nil)

        try dm.remove(snap)
        #expect(try dm.info(real)?.openCount == 0)
        try dm.remove(real)
        #expect(try dm.list().isEmpty)
    }

    @Test func removeRefusesDeviceReferencedByPathOrInactiveTable() throws {
        let dm = makeFakeWithRoot()
        dm.addDevice(dev("top"), table: table("0 204800 linear /dev/mapper/vg-root 0"))
        #expect(dmError { try dm.remove(root) }?.errno == EBUSY)
        try dm.remove(dev("top"))

        dm.addDevice(dev("other"), table: table("0 8 error"))
        try dm.load(dev("other"), table: table("0 204800 linear 253:0 0"))
        #expect(dmError { try dm.remove(root) }?.errno == EBUSY)
        try dm.clearInactive(dev("other"))
        try dm.remove(root)
    }

    // MARK: create

    @Test func createActivatesTable() throws {
        let dm = makeFakeWithRoot()
        try dm.create(snap, uuid: "DMST-1-snap", table: table("0 204800 snapshot 253:0 7:1 P 8"), hidden: true)
        let info = try #require(try dm.info(snap))
        #expect(info.uuid == "DMST-1-snap")
        #expect(info.hasLiveTable)
        #expect(!info.hasInactiveTable)
        #expect(!info.suspended)
        #expect(try dm.table(snap) == table("0 204800 snapshot 253:0 7:1 P 8"))
        #expect(dm.trace.first == "create dmst-1-snap DMST-1-snap hidden")
    }

    @Test func createRefusesExistingName() throws {
        let dm = makeFakeWithRoot()
        let before = try #require(dm.device(root))
        let e = dmError { try dm.create(root, uuid: "X", table: table("0 8 error"), hidden: false) }
        #expect(e?.errno == EEXIST)
        #expect(e?.call == "create")
        #expect(dm.device(root) == before)
    }

    @Test func createRefusesDuplicateUUIDAndUnknownReferences() throws {
        let dm = makeFakeWithRoot()
        #expect(dmError { try dm.create(dev("x"), uuid: "LVM-root", table: table("0 8 error"), hidden: false) }?.errno == EBUSY)
        #expect(dmError { try dm.create(dev("y"), uuid: "", table: table("0 8 linear 9:9 0"), hidden: false) }?.errno == ENXIO)
        #expect(try dm.info(dev("x")) == nil)
        #expect(try dm.info(dev("y")) == nil)
        // An empty uuid is not "in use" by other uuid-less devices.
        try dm.create(dev("z1"), uuid: "", table: table("0 8 error"), hidden: false)
        try dm.create(dev("z2"), uuid: "", table: table("0 8 error"), hidden: false)
    }

    // MARK: fault injection and trace

    @Test func failAtCallFailsExactlyThatCall() throws {
        let dm = makeFakeWithRoot()
        dm.failAtCall = 2
        _ = try dm.list()  // 0
        _ = try dm.info(root)  // 1
        let e = dmError { _ = try dm.table(root) }  // 2
        #expect(e == KernelError(call: "table", device: "vg-root", errno: EIO, detail: "injected"))
        _ = try dm.table(root)  // 3: succeeds again
        #expect(dm.trace == ["list", "info vg-root", "table vg-root", "table vg-root"])
    }

    @Test func failedCallsChangeNothing() throws {
        let dm = makeFakeWithRoot()
        dm.mount(root, at: "/")
        dm.failErrno = Errno(rawValue: ENOSPC)
        let old = table("0 204800 linear 7:0 0")
        let new = table("0 204800 linear 7:2 0")
        /// Fails the next call only.
        func failNext() { dm.failAtCall = dm.trace.count }

        failNext()
        #expect(dmError { try dm.load(root, table: new) }?.errno == ENOSPC)
        #expect(dm.device(root)?.inactive == nil)
        try dm.load(root, table: new)

        failNext()
        #expect(dmError { try dm.suspend(root, lockfs: false) }?.errno == ENOSPC)
        #expect(dm.device(root)?.suspended == false)
        try dm.suspend(root, lockfs: false)

        failNext()
        #expect(dmError { try dm.resume(root) }?.errno == ENOSPC)
        #expect(dm.device(root)?.live == old)
        #expect(dm.device(root)?.inactive == new)
        #expect(dm.device(root)?.suspended == true)
        try dm.resume(root)
        #expect(dm.device(root)?.live == new)

        dm.unmount("/")
        failNext()
        #expect(dmError { try dm.remove(root) }?.errno == ENOSPC)
        #expect(dm.device(root) != nil)

        failNext()
        #expect(dmError { try dm.create(snap, uuid: "", table: old, hidden: false) }?.errno == ENOSPC)
        #expect(dm.device(snap) == nil)

        failNext()
        #expect(dmError { try dm.freeze("/home") }?.errno == ENOSPC)
        #expect(dm.frozen.isEmpty)

        failNext()
        #expect(dmError { try dm.zeroHeader("/dev/loop2", bytes: 4096) }?.errno == ENOSPC)
        #expect(dm.blocks["/dev/loop2"]?.signature == "xfs")
        #expect(dm.blocks["/dev/loop2"]?.zeroedHeader == 0)
    }

    @Test func failWhenMatchesTraceLines() throws {
        let dm = makeFakeWithRoot()
        dm.failWhen = { $0.hasPrefix("resume ") }
        try dm.load(root, table: table("0 204800 error"))
        try dm.suspend(root, lockfs: false)
        #expect(dmError { try dm.resume(root) }?.detail == "injected")
        #expect(dmError { try dm.resume(root) }?.errno == EIO, "fails every matching call")
        #expect(dm.device(root)?.suspended == true)
        #expect(try dm.table(root) == table("0 204800 linear 7:0 0"))
        #expect(dm.trace == ["load vg-root error", "suspend vg-root nolockfs", "resume vg-root", "resume vg-root",
                             "table vg-root"])

        dm.failWhen = { $0 == "suspend vg-root" }  // lockfs suspend only
        try dm.suspend(root, lockfs: false)
        #expect(dmError { try dm.suspend(root, lockfs: true) } != nil)
    }

    @Test func traceRecordsEveryCallInOrder() throws {
        let dm = makeFakeWithRoot()
        dm.mount(root, at: "/")
        _ = try dm.list()
        _ = try dm.info(root)
        try dm.load(root, table: table("0 204800 linear 7:0 0"))
        try dm.syncFilesystem("/")
        try dm.freeze("/")
        try dm.suspend(root, lockfs: false)
        try dm.resume(root)
        try dm.thaw("/")
        _ = try dm.mounts()
        _ = try dm.blockDevice(at: "/dev/loop1")
        _ = try dm.isClaimed("/dev/loop1")
        _ = try dm.probeSignature("/dev/loop1")
        try dm.zeroHeader("/dev/loop1", bytes: 4096)
        try dm.create(snap, uuid: "U", table: table("0 204800 snapshot 253:0 7:1 P 8"), hidden: true)
        _ = try dm.status(snap)
        _ = try dm.dependencies(snap)
        try dm.load(snap, table: table("0 204800 snapshot-merge 253:0 7:1 P 8"))
        try dm.clearInactive(snap)
        _ = try dm.table(snap)
        try dm.remove(snap)
        _ = dmError { try dm.suspend(dev("gone"), lockfs: true) }  // failed calls are recorded too
        #expect(dm.trace == [
            "list", "info vg-root", "load vg-root linear", "syncfs /", "freeze /", "suspend vg-root nolockfs",
            "resume vg-root", "thaw /", "mounts", "blockdev /dev/loop1", "claimed /dev/loop1", "probe /dev/loop1",
            "zero /dev/loop1 4096", "create dmst-1-snap U hidden", "status dmst-1-snap", "deps dmst-1-snap",
            "load dmst-1-snap snapshot-merge", "clear dmst-1-snap", "table dmst-1-snap", "remove dmst-1-snap",
            "suspend gone",
        ])
        dm.resetTrace()
        #expect(dm.trace.isEmpty)
        _ = try dm.list()
        #expect(dm.trace == ["list"])
    }

    @Test func failAtCallCountsFromResetTrace() throws {
        let dm = makeFakeWithRoot()
        _ = try dm.list()
        _ = try dm.list()
        dm.resetTrace()
        dm.failAtCall = 1
        _ = try dm.list()
        #expect(dmError { _ = try dm.list() } != nil)
    }

    // MARK: block devices

    @Test func isClaimedByDeviceMapperTables() throws {
        let dm = makeFakeWithRoot()
        #expect(try dm.isClaimed("/dev/loop0"), "used by vg-root's live table")
        #expect(try !dm.isClaimed("/dev/loop1"))
        #expect(try !dm.isClaimed("/dev/loop2"))

        try dm.load(root, table: table("0 65536 linear /dev/loop2 0"))
        #expect(try dm.isClaimed("/dev/loop2"), "used by an inactive table")

        try dm.clearInactive(root)
        try dm.remove(root)
        #expect(try !dm.isClaimed("/dev/loop0"), "released once the device is gone")
        #expect(try !dm.isClaimed("/dev/loop2"))
    }

    @Test func isClaimedWhenMountedOrOpenedExclusively() throws {
        let dm = makeFake()
        dm.mountTable.append(MountEntry(number: num(7, 1), mountPoint: "/mnt/cow", fsType: "ext4", source: "/dev/loop1"))
        #expect(try dm.isClaimed("/dev/loop1"))
        dm.mountTable.removeAll()
        #expect(try !dm.isClaimed("/dev/loop1"))

        dm.blocks["/dev/loop2"]?.claimed = true
        #expect(try dm.isClaimed("/dev/loop2"))

        #expect(dmError { _ = try dm.isClaimed("/dev/sdz") }?.errno == ENOENT)
    }

    @Test func zeroHeaderClearsSignature() throws {
        let dm = makeFake()
        #expect(try dm.probeSignature("/dev/loop2") == "xfs")
        #expect(try dm.probeSignature("/dev/loop1") == nil)
        try dm.zeroHeader("/dev/loop2", bytes: 1 << 20)
        #expect(try dm.probeSignature("/dev/loop2") == nil)
        #expect(dm.blocks["/dev/loop2"]?.zeroedHeader == 1 << 20)
        try dm.zeroHeader("/dev/loop2", bytes: 4096)
        #expect(dm.blocks["/dev/loop2"]?.zeroedHeader == 1 << 20, "a shorter wipe does not shrink the zeroed area")
        #expect(try dm.probeSignature("/dev/loop0") == "ext4", "other devices keep theirs")
        #expect(dmError { try dm.zeroHeader("/dev/nope", bytes: 4096) }?.errno == ENOENT)
    }

    // MARK: status

    @Test(arguments: [("snapshot", 8), ("snapshot", 16), ("snapshot-merge", 8)] as [(String, UInt64)])
    func snapshotStatusReportsCowSize(_ type: String, _ chunk: UInt64) throws {
        let dm = makeFakeWithRoot()
        try dm.create(snap, uuid: "", table: table("0 204800 \(type) 253:0 7:1 P \(chunk)"), hidden: false)
        let status = try dm.status(snap)
        #expect(status == [TargetStatus(start: 0, length: 204_800, type: type, text: "\(chunk * 2)/65536 \(chunk * 2)")])
        let parsed = try SnapshotStatus(parsing: try #require(status.first).text)
        #expect(parsed == .valid(allocated: Sectors(chunk * 2), total: 65_536, metadata: Sectors(chunk * 2)))
        #expect(parsed.usedPercent == 0)
    }

    @Test func statusOverride() throws {
        let dm = makeFakeWithRoot()
        try dm.create(snap, uuid: "", table: table("0 204800 snapshot 253:0 7:1 P 8"), hidden: false)
        dm.statusOverride[snap] = "1040/65536 24"
        #expect(try dm.status(snap).map(\.text) == ["1040/65536 24"])
        dm.statusOverride[snap] = "Invalid"
        #expect(try SnapshotStatus(parsing: try dm.status(snap)[0].text) == .invalid)
        dm.statusOverride[snap] = nil
        #expect(try dm.status(snap).map(\.text) == ["16/65536 16"])
    }

    @Test func statusOfOtherTargetsHasNoParams() throws {
        let dm = makeFakeWithRoot()
        dm.statusOverride[root] = "Invalid"  // only applies to snapshot targets
        #expect(try dm.status(root) == [TargetStatus(start: 0, length: 204_800, type: "linear", text: "")])
    }

    /// A COW store that is itself a dm device (an LV, say) has a size too; the fake only looks
    /// at plain block devices and reports `16/0 16`, which is not even a valid status.
    @Test func snapshotStatusWithCowOnDeviceMapperDevice() throws {
        let dm = makeFakeWithRoot()
        let cow = dm.addDevice(dev("vg-cow"), table: table("0 65536 linear 7:1 0"))
        try dm.create(snap, uuid: "", table: table("0 204800 snapshot 253:0 \(cow) P 8"), hidden: false)
        let params = try dm.status(snap).map(\.text)
        #expect(params == ["16/65536 16"])
    }
}

@Suite("FaultInjector")
struct FaultInjectorTests {
    @Test func parsesEveryMode() {
        #expect(FaultInjector.mode("fail:3") == .fail(3))
        #expect(FaultInjector.mode("kill:1") == .kill(1))
        #expect(FaultInjector.mode("term:2") == .signal(2, SIGTERM))
        #expect(FaultInjector.mode("delay:7:50") == .delay(7, milliseconds: 50))
        #expect(FaultInjector.mode("delay:2:50:freeze") == .delay(2, milliseconds: 50, call: "freeze"))
        for bad in ["", "fail", "fail:0", "fail:x", "fail:3:1", "delay:7", "delay:7:0", "delay:7:", "delay:2:5:", "nap:2"] {
            #expect(FaultInjector.mode(bad) == nil, "\(bad)")
        }
    }

    @Test func delaySleepsBeforeTheNthChangingCallAndStillMakesIt() throws {
        let fake = FakeKernel()
        let name = dev("dly")
        let injector = FaultInjector(fake, mode: .delay(2, milliseconds: 40))
        try injector.create(name, uuid: "", table: table("0 8 zero"), hidden: false)
        let start = ContinuousClock.now
        try injector.suspend(name, lockfs: false)
        let slept = ContinuousClock.now - start
        try injector.resume(name)
        #expect(slept >= .milliseconds(40))
        #expect(try fake.info(name)?.suspended == false)
    }

    @Test func delayByCallNameCountsOnlyThatCall() throws {
        let fake = FakeKernel()
        let name = dev("dly")
        let injector = FaultInjector(fake, mode: .delay(2, milliseconds: 40, call: "resume"))
        try injector.create(name, uuid: "", table: table("0 8 zero"), hidden: false)
        var times: [Duration] = []
        var suspends: [Duration] = []
        for _ in 1...3 {
            let before = ContinuousClock.now
            try injector.suspend(name, lockfs: false)
            let start = ContinuousClock.now
            suspends.append(start - before)
            try injector.resume(name)
            times.append(ContinuousClock.now - start)
        }
        #expect(times[1] >= .milliseconds(40))
        #expect(times[0] < .milliseconds(40) && times[2] < .milliseconds(40))
        #expect(suspends.allSatisfy { $0 < .milliseconds(40) }, "only resumes are counted: \(suspends)")
    }
}
