import Foundation
import Testing
@testable import DMSnap
@testable import DMSnapCLI
import DMSnapTesting
import Logging
import SystemPackage

// The error story across the layers, the warnings that replace silent skips, and the CLI's typed
// arguments.

/// A store whose listing and loading fail with `kind`.
final class FailingStore: SetStore {
    let kind: StoreError.Kind
    init(_ kind: StoreError.Kind) { self.kind = kind }
    var location: String { "/var/lib/dmsnap-test" }
    func scan() throws(StoreError) -> StoreScan { throw StoreError(path: location, kind) }
    func quarantine(_ name: SetName) throws(StoreError) -> String { throw StoreError(path: location, kind) }
    func load(_ name: SetName) throws(StoreError) -> SnapshotSet? { throw StoreError(path: "\(location)/\(name).json", kind) }
    func save(_ set: SnapshotSet) throws(StoreError) { throw StoreError(path: location, kind) }
    func delete(_ name: SetName) throws(StoreError) { throw StoreError(path: location, kind) }
    func monitorReport() -> MonitorReport? { nil }
    func saveMonitorReport(_ report: MonitorReport?) throws(StoreError) { throw StoreError(path: location, kind) }
    func volumes() throws(StoreError) -> [PreparedVolume] { throw StoreError(path: location, kind) }
    func saveVolume(_ volume: PreparedVolume) throws(StoreError) { throw StoreError(path: location, kind) }
    func deleteVolume(_ name: DeviceName) throws(StoreError) { throw StoreError(path: location, kind) }
}

/// A logger that collects warnings.
func warningsLogger(_ lines: Lines) -> Logger {
    .sink(level: .warning) { lines.all.append("\($0.message)") }
}

@Suite("Errors across the layers")
struct LayerErrorTests {
    @Test func aStoreIOErrorIsAFailureNotARefusal() {
        let kernel = FakeKernel()
        let manager = SnapshotManager(kernel: kernel, store: FailingStore(.io(call: "read", errno: .ioError)))
        let result = attempt { () throws(DMSnapError) in try manager.status() }
        guard case let .failure(.store(e)) = result else {
            Issue.record("expected a store failure, got \(result)")
            return
        }
        #expect(e.description == "/var/lib/dmsnap-test: read failed: Input/output error", "errno survives to the message")
        let cli = CLIError(.store(e))
        #expect(cli.status == .failed)
        #expect(cli.status.rawValue == 1)
    }

    @Test func anUnsafeStateDirectoryIsARefusal() {
        let manager = SnapshotManager(kernel: FakeKernel(), store: FailingStore(.unsafe("state directory is a symlink; refusing")))
        let result = attempt { () throws(DMSnapError) in try manager.status("s") }
        #expect(result.refusal?.description == "/var/lib/dmsnap-test/s.json: state directory is a symlink; refusing")
        if case let .failure(e) = result { #expect(CLIError(e).status == .refused) }
    }

    @Test func aKernelReadFailureKeepsItsErrno() {
        let fx = SnapFixture(devices: 1)
        fx.dm.failErrno = .resourceBusy
        fx.dm.failWhen = { $0 == "mounts" }
        let result = attempt { () throws(DMSnapError) in try fx.manager.take(fx.request()) }
        guard case let .failure(.kernel(e)) = result else {
            Issue.record("expected a kernel failure, got \(result)")
            return
        }
        #expect(e.errno == .resourceBusy)
        #expect(e.description == "/proc/self/mountinfo: read failed: Device or resource busy (injected)")
        #expect(fx.mutations.isEmpty)
    }

    @Test func aFailedStepKeepsItsTypedCause() {
        let fx = SnapFixture(devices: 1, mounted: [0])
        fx.dm.failErrno = .noSpace
        fx.dm.failWhen = { $0.hasPrefix("freeze") }
        let result = attempt { () throws(DMSnapError) in try fx.manager.take(fx.request()) }
        guard let e = result.executionError, case let .kernel(k) = e.cause else {
            Issue.record("expected a kernel step failure, got \(result)")
            return
        }
        #expect(k.errno == .noSpace && k.call == "freeze" && k.device == Fx.mountPoint(0))
        #expect(e.rolledBack)
        fx.expectSafe()
    }

    @Test func aTableHoldingACryptKeyIsRefusedBeforeAnyChange() throws {
        let fx = SnapFixture(devices: 1)
        let crypt = mkName("luks-data")
        fx.dm.addDevice(crypt, table: mkTable("0 131072 crypt aes-xts-plain64 :64:logon:cryptsetup:abc-d0 0 7:0 4096"),
                        uuid: "CRYPT-LUKS2-abc-luks-data")
        fx.dm.resetTrace()
        for force in [false, true] {
            let request = TakeRequest(set: "s", pairs: [(crypt.value, Fx.cow(0))], force: force)
            let result = attempt { () throws(DMSnapError) in try fx.manager.take(request) }
            #expect(result.refusal?.description.contains("is a dm-crypt device on /dev/loop0, which is not a device-mapper device") == true, "\(result)")
            #expect(result.refusal?.description.contains("logon") == false)
        }
        #expect(fx.mutations.isEmpty)
        #expect(fx.store.sets.isEmpty)
        // its table (the key) was never asked for
        #expect(!fx.dm.trace.contains("table \(crypt)"), "\(fx.dm.trace)")
    }
}

@Suite("Fingerprints are never skipped silently")
struct FingerprintWarningTests {
    @Test func aBaseThatCannotBeReadAfterTakeIsReported() throws {
        let fx = SnapFixture(devices: 2)
        let lines = Lines()
        fx.manager.logger = warningsLogger(lines)
        fx.dm.failWhen = { $0.hasPrefix("read \(Fx.base(1).path)") }
        let set = try #require(fx.take())
        #expect(set.members[0].baseFingerprint != nil)
        #expect(set.members[1].baseFingerprint == nil)
        #expect(fx.store.sets[mkSetName("s")]?.members[0].baseFingerprint != nil, "the readable one is recorded")
        #expect(lines.all.count == 1)
        #expect(lines.all.first?.contains("vg1-live: cannot record the frozen image's fingerprint") == true, "\(lines.all)")
    }

    @Test func activateSaysWhenItCannotCheck() throws {
        let fx = SnapFixture(devices: 1)
        let lines = Lines()
        fx.manager.logger = warningsLogger(lines)
        var set = try #require(fx.take())
        // As after a reboot: only the live device, with its original table.
        set.members[0].baseFingerprint = nil
        fx.store.sets[set.name] = set
        try fx.dm.load(Fx.live(0), table: Fx.original(0))
        try fx.dm.suspend(Fx.live(0), lockfs: false)
        try fx.dm.resume(Fx.live(0))
        try fx.dm.remove(Fx.base(0))
        fx.dm.blocks[Fx.cow(0)]?.header = [0x53, 0x6e, 0x41, 0x70, 1, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0]
        let result = attempt { () throws(DMSnapError) in try fx.manager.activate("s") }
        #expect(result.isSuccess, "\(result)")
        #expect(lines.all == ["vg0-live: no fingerprint was recorded at take; cannot check that it is unchanged since"])
    }
}

@Suite("Rebuilding a set from the kernel")
struct ReconstructTests {
    @Test func aTakenSetIsRebuiltFromItsTables() throws {
        let fx = SnapFixture(devices: 2)
        let set = try #require(fx.take())
        let view = try fx.view(for: fx.request())
        let rebuilt = try Planner.reconstruct(set.name, devices: set.members.map(\.device), view: view,
                                              cowPaths: Dictionary(uniqueKeysWithValues: fx.all.map { (Fx.cowNumber($0), Fx.cow($0)) }),
                                              created: set.created)
        for (a, b) in zip(rebuilt.members, set.members) {
            #expect(a.device == b.device && a.base == b.base && a.baseUUID == b.baseUUID && a.originalTable == b.originalTable)
            #expect(a.cow == b.cow && a.cowNumber == b.cowNumber && a.number == b.number)
        }
        #expect(rebuilt.chunk == set.chunk && rebuilt.phase == .active)
        #expect(throws: PlanError.self) {
            try Planner.reconstruct(set.name, devices: [mkName("vg0-live-dmsnap-base")], view: view, cowPaths: [:])
        }
    }
}

@Suite("CLI arguments")
struct CLIArgumentTests {
    @Test func statusFieldsParseAndRefuseUnknownOnes() throws {
        #expect(try StatusField.list("set,used_percent,state") == [.set, .usedPercent, .state])
        #expect(StatusField.allCases.map(\.rawValue) == ["set", "set_state", "created", "device", "base", "cow", "chunk_sectors",
                                                         "cow_total_sectors", "cow_used_sectors", "metadata_sectors",
                                                         "used_percent", "state", "cow_kind", "cow_loop", "time_to_full"])
        #expect(throws: (any Error).self) { try StatusField.list("set,nope") }
        #expect(StatusField.usedPercent.heading == "USED PERCENT")
    }

    @Test func takeParsesPairsAsTyped() throws {
        let take = try Take.parse(["s1", "vg-a=/dev/loop1", "/dev/mapper/vg-b=/dev/loop2", "--chunk-size", "8k"])
        #expect(take.pairs.map(\.text) == ["vg-a=/dev/loop1", "/dev/mapper/vg-b=/dev/loop2"])
        #expect(take.options.chunkSize == "8k")
        let run = try Run.parse(commandLine: ["s1", "vg-a=/dev/loop1", "--remount", "--on-failure", "keep", "--", "migrate", "--to", "v2"])
        #expect(run.pairs.map(\.text) == ["vg-a=/dev/loop1"] && run.command == ["migrate", "--to", "v2"])
        #expect(run.remount && run.onFailure == .keep && run.onSuccess == .merge)
        #expect(throws: (any Error).self) { try Run.parse(commandLine: ["s1", "a=b", "--on-success", "discard", "--", "x"]) }
        let status = try Status.parse(["-o", "device,state", "--noheadings"])
        #expect(status.o == [.device, .state])
        #expect(throws: (any Error).self) { try Status.parse(["-o", "bogus"]) }
    }
}
