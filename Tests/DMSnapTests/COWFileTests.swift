import DMSnap
import DMSnapTesting
import FoundationEssentials
import Testing

/// COW files (issue 13) on the in-memory kernel: what take creates, attaches and records, what
/// merge and discard remove, what activate attaches again, what is refused, and the monitor.
@Suite("COW files")
struct COWFileTests {
    static let dir = "/srv/cow"

    /// A fixture with a directory for COW files on its own filesystem (8:2).
    static func fixture(devices: Int = 1, mounted: Set<Int> = [], free: UInt64 = 64 << 30) -> SnapFixture {
        let fx = SnapFixture(devices: devices, mounted: mounted)
        fx.dm.fileDirectories[dir] = FakeKernel.FakeDirectory(free: free)
        return fx
    }

    static func take(_ fx: SnapFixture, _ pairs: [String], cowDir: String? = nil, cowSize: String? = nil,
                     force: Bool = false) -> Result<SnapshotSet, DMSnapError> {
        attempt { () throws(DMSnapError) in
            var parsed: [(device: String, cow: String)] = []
            for p in pairs {
                do throws(PlanError) { parsed.append(try TakeRequest.pair(p)) } catch { throw .refused(error) }
            }
            var r = TakeRequest(set: "s", pairs: parsed, force: force)
            r.cowDirectory = cowDir
            r.cowSize = cowSize
            return try fx.manager.take(r)
        }
    }

    @Test func takeCreatesAttachesAndRecordsTheFile() throws {
        let fx = Self.fixture()
        let set = try Self.take(fx, ["\(Fx.live(0))=\(Self.dir)/a.cow"]).get()
        let m = set.members[0]
        #expect(m.cowFile == COWFile(created: true, directIO: true))
        #expect(m.cow == "\(Self.dir)/a.cow")
        // 20% of the device, in whole chunks
        #expect(m.cowSize == Sectors((Fx.liveSectors.value / 5 + 7) / 8 * 8))
        #expect(fx.dm.files["\(Self.dir)/a.cow"]?.size == m.cowSize.bytes)
        // the loop the table names is the one recorded, and it is held by the live table only
        let loop = try #require(fx.dm.loopFiles.first { $0.value == m.cow }?.key)
        #expect(m.cowNumber == loop)
        #expect(fx.dm.device(Fx.live(0))?.live?.targets.first?.params.snapshot?.cow == .number(loop))
        #expect(fx.store.sets[set.name]?.members[0].cowNumber == loop)
        // the trace: file, then loop, before the window
        let calls = fx.dm.trace.map(Fx.verb)
        let create = try #require(calls.firstIndex(of: "createfile"))
        let attach = try #require(calls.firstIndex(of: "attachloop"))
        let suspend = try #require(calls.firstIndex(of: "suspend"))
        #expect(create < attach && attach < suspend)
    }

    @Test func mergeDeletesACreatedFileAndTheLoopGoes() throws {
        let fx = Self.fixture(mounted: [0])
        _ = try Self.take(fx, ["\(Fx.live(0))=\(Self.dir)/a.cow"]).get()
        _ = try attempt { () throws(DMSnapError) in try fx.manager.merge("s") }.get()
        #expect(fx.dm.files.isEmpty)
        #expect(fx.dm.loopFiles.isEmpty)
        #expect(fx.dm.device(Fx.live(0))?.live == Fx.original(0))
    }

    @Test func discardKeepsAFileTheUserMadeAndReleasesIt() throws {
        let fx = Self.fixture()
        var mine = FakeKernel.FakeFile(size: 32 << 20)
        mine.header = [UInt8](repeating: 0, count: 4096)
        fx.dm.files["\(Self.dir)/mine.cow"] = mine
        let set = try Self.take(fx, ["\(Fx.live(0))=\(Self.dir)/mine.cow"]).get()
        #expect(set.members[0].cowFile?.created == false)
        #expect(set.members[0].cowSize == Sectors(65536))
        _ = try attempt { () throws(DMSnapError) in try fx.manager.discard("s") }.get()
        #expect(fx.dm.files["\(Self.dir)/mine.cow"] != nil)
        #expect(fx.dm.trace.contains("wipe \(Self.dir)/mine.cow"))
        #expect(fx.dm.loopFiles.isEmpty)
    }

    @Test func cowDirectoryNamesOneFilePerDevice() throws {
        let fx = Self.fixture(devices: 2)
        let set = try Self.take(fx, [Fx.live(0).value, Fx.live(1).value], cowDir: Self.dir, cowSize: "8M").get()
        #expect(set.members.map(\.cow) == ["\(Self.dir)/s-\(Fx.live(0)).cow", "\(Self.dir)/s-\(Fx.live(1)).cow"])
        #expect(set.members.allSatisfy { $0.cowSize.bytes == 8 << 20 })
    }

    @Test func aRollbackDeletesTheFileAndDetachesTheLoop() throws {
        let fx = Self.fixture(mounted: [0])
        let pristine = fx.world
        fx.dm.failWhen = { $0.hasPrefix("suspend") }
        let r = Self.take(fx, ["\(Fx.live(0))=\(Self.dir)/a.cow"])
        guard case let .failure(.failed(e)) = r else { Issue.record("take did not fail: \(r)"); return }
        #expect(e.rolledBack)
        #expect(fx.dm.files.isEmpty, "the created file is left: \(fx.dm.files.keys)")
        #expect(fx.dm.loopFiles.isEmpty)
        #expect(fx.world.devices == pristine.devices)
    }

    /// A failure at every kernel call of a take with two COW files (one mounted device): the take
    /// is refused or rolled back with no file and no loop left, or it completed.
    @Test func failureAtEveryCallLeavesNoFileOrLoop() throws {
        let pairs = ["\(Fx.live(0))=\(Self.dir)/a.cow", "\(Fx.live(1))=\(Self.dir)/b.cow"]
        let probe = Self.fixture(devices: 2, mounted: [0])
        _ = try Self.take(probe, pairs).get()
        let calls = probe.dm.trace.count
        var outcomes: [String: Int] = [:]
        for i in 0..<calls {
            let fx = Self.fixture(devices: 2, mounted: [0])
            let pristine = fx.world
            fx.dm.failAtCall = i
            switch Self.take(fx, pairs) {
            case .success:
                outcomes["completed", default: 0] += 1
            case let .failure(e):
                if case let .failed(x) = e, !x.rolledBack {
                    outcomes["after the point of no return", default: 0] += 1
                    #expect(x.committed, "call \(i): \(e)")
                    continue
                }
                outcomes["nothing left", default: 0] += 1
                #expect(fx.dm.files.isEmpty, "call \(i) (\(probe.dm.trace[i])): files left: \(fx.dm.files.keys)")
                #expect(fx.dm.loopFiles.isEmpty, "call \(i) (\(probe.dm.trace[i])): loops left")
                #expect(fx.world.ignoringFingerprints.devices == pristine.devices, "call \(i): \(fx.world)")
                #expect(fx.store.sets.isEmpty, "call \(i): a set is recorded")
            }
        }
        #expect((outcomes["nothing left"] ?? 0) > 10, "\(outcomes)")
    }

    @Test func aHugeShareIsClampedToWhatTheSnapshotCanUse() throws {
        let fx = Self.fixture()
        let set = try Self.take(fx, ["\(Fx.live(0))=\(Self.dir)/a.cow:1G"]).get()
        #expect(set.members[0].cowSize == ExceptionStore.usefulMaximum(origin: Fx.liveSectors, chunk: Sectors(8)))
        #expect(fx.warnings.all.contains { $0.contains("all a snapshot of it can use") }, "\(fx.warnings.all)")
        // 100% of the device is less than that (the metadata): not clamped
        let fx2 = Self.fixture()
        #expect(try Self.take(fx2, ["\(Fx.live(0))=\(Self.dir)/a.cow:100%"]).get().members[0].cowSize == Fx.liveSectors)
    }

    struct Bad: Sendable, CustomTestStringConvertible {
        var name: String
        var pairs: [String]
        var cowDir: String? = nil
        var cowSize: String? = nil
        var mentions: String
        var setup: @Sendable (SnapFixture) -> Void = { _ in }
        var testDescription: String { name }
    }

    static let bad: [Bad] = [
        Bad(name: "missing directory", pairs: ["\(Fx.live(0))=/nope/a.cow"], mentions: "directory /nope does not exist"),
        Bad(name: "symlink", pairs: ["\(Fx.live(0))=\(dir)/l.cow"], mentions: "symbolic link") { $0.dm.symlinks.insert("\(dir)/l.cow") },
        Bad(name: "holds data", pairs: ["\(Fx.live(0))=\(dir)/d.cow"], mentions: "holds data") { fx in
            var f = FakeKernel.FakeFile(size: 1 << 20)
            f.header = [1, 2, 3]
            fx.dm.files["\(dir)/d.cow"] = f
        },
        Bad(name: "a signature", pairs: ["\(Fx.live(0))=\(dir)/d.cow"], mentions: "xfs signature") { fx in
            var f = FakeKernel.FakeFile(size: 1 << 20)
            f.signature = "xfs"
            fx.dm.files["\(dir)/d.cow"] = f
        },
        Bad(name: "open elsewhere", pairs: ["\(Fx.live(0))=\(dir)/o.cow"], mentions: "open by another process") { fx in
            var f = FakeKernel.FakeFile(size: 1 << 20)
            f.openElsewhere = true
            fx.dm.files["\(dir)/o.cow"] = f
        },
        Bad(name: "below the minimum", pairs: ["\(Fx.live(0))=\(dir)/a.cow:4k"], mentions: "below the minimum"),
        Bad(name: "no space", pairs: ["\(Fx.live(0))=\(dir)/a.cow"], mentions: "not enough space") { fx in
            fx.dm.fileDirectories[dir]?.free = 1 << 20
        },
        Bad(name: "no space for two on one filesystem", pairs: ["\(Fx.live(0))=\(dir)/a.cow:6M", "\(Fx.live(1))=\(dir)/b.cow:6M"],
            mentions: "2 COW files need 12 MiB") { fx in
            fx.dm.fileDirectories[dir]?.free = 15 << 20
            fx.dm.fileDirectories[dir]?.total = 80 << 20
        },
        Bad(name: "bad --cow-size", pairs: ["\(Fx.live(0))=\(dir)/a.cow"], cowSize: "lots", mentions: "--cow-size: invalid size 'lots'"),
        Bad(name: "0%", pairs: ["\(Fx.live(0))=\(dir)/a.cow"], cowSize: "0%", mentions: "above 0 and at most 100"),
        Bad(name: "150%", pairs: ["\(Fx.live(0))=\(dir)/a.cow"], cowSize: "150%", mentions: "above 0 and at most 100"),
        Bad(name: "no COW and no --cow-dir", pairs: [Fx.live(0).value], mentions: "no COW given"),
        Bad(name: "--cow-dir is a file", pairs: [Fx.live(0).value], cowDir: "\(dir)/f", mentions: "--cow-dir is not a directory") { fx in
            fx.dm.files["\(dir)/f"] = FakeKernel.FakeFile(size: 0)
        },
        Bad(name: "twice", pairs: ["\(Fx.live(0))=\(dir)/a.cow", "\(Fx.live(1))=\(dir)/a.cow"], mentions: "used twice"),
        Bad(name: "tmpfs", pairs: ["\(Fx.live(0))=/run/x.cow"], mentions: "tmpfs (memory)") { fx in
            fx.dm.fileDirectories["/run"] = FakeKernel.FakeDirectory(fileSystemDevice: DeviceNumber(major: 0, minor: 22), type: "tmpfs")
        },
        Bad(name: "a size for a block device", pairs: ["\(Fx.live(0))=\(Fx.cow(0)):8M"], mentions: "applies to COW files"),
        Bad(name: "on the snapshotted filesystem", pairs: ["\(Fx.live(0))=\(Fx.mountPoint(0))/a.cow"], mentions: "on a filesystem of the set") { fx in
            fx.dm.fileDirectories[Fx.mountPoint(0)] = FakeKernel.FakeDirectory(fileSystemDevice: fx.dm.device(Fx.live(0))!.number)
        },
    ]

    @Test(arguments: bad) func refused(_ c: Bad) throws {
        let fx = Self.fixture(devices: 2, mounted: [0])
        c.setup(fx)
        let before = fx.world
        let files = fx.dm.files
        fx.dm.resetTrace()
        let r = Self.take(fx, c.pairs, cowDir: c.cowDir, cowSize: c.cowSize)
        guard case let .failure(.refused(e)) = r else { Issue.record("not refused: \(r)"); return }
        #expect(e.description.contains(c.mentions), "\(e)")
        #expect(fx.world == before)
        #expect(fx.dm.files == files, "a refused take changed the files")
        #expect(fx.dm.loopFiles.isEmpty)
        #expect(fx.dm.trace.allSatisfy(Fx.isRead), "\(fx.dm.trace.filter { !Fx.isRead($0) })")
    }

    @Test func activateAttachesTheFileAgainAfterAReboot() throws {
        let fx = Self.fixture()
        let set = try Self.take(fx, ["\(Fx.live(0))=\(Self.dir)/a.cow"]).get()
        // the reboot: every dm device and loop is gone; the admin re-creates the live device
        var header = [UInt8](repeating: 0, count: 16)
        header[0...3] = [0x53, 0x6e, 0x41, 0x70]  // "SnAp"
        header[4] = 1
        header[8] = 1
        header[12] = 8
        let file = fx.dm.files[set.members[0].cow]!
        let rebooted = Self.fixture()
        rebooted.dm.files[set.members[0].cow] = { var f = file; f.header = header; return f }()
        rebooted.dm.bootID = "boot-2"
        try rebooted.store.save(set)
        #expect(try attempt { () throws(DMSnapError) in try rebooted.manager.status("s") }.get()[0].state == .inactive)
        _ = try attempt { () throws(DMSnapError) in try rebooted.manager.activate("s") }.get()
        let loop = try #require(rebooted.dm.loopFiles.first { $0.value == set.members[0].cow }?.key)
        #expect(rebooted.store.sets[set.name]?.members[0].cowNumber == loop)
        #expect(rebooted.dm.device(Fx.live(0))?.live?.targets.first?.params.snapshot?.cow == .number(loop))
    }

    /// A --volatile set after a reboot: its file went with the memory. Status says invalid and
    /// points to discard, which forgets the set (the devices hold the frozen image).
    @Test func aVolatileSetAfterARebootIsInvalidAndDiscardEndsIt() throws {
        let fx = Self.fixture()
        fx.dm.fileDirectories["/run"] = FakeKernel.FakeDirectory(fileSystemDevice: DeviceNumber(major: 0, minor: 22), type: "tmpfs")
        var r = TakeRequest(set: "s", pairs: [(Fx.live(0).value, "/run/x.cow")])
        r.volatile = true
        let set = try attempt { () throws(DMSnapError) in try fx.manager.take(r) }.get()
        #expect(set.members[0].cowFile?.volatile == true)
        let rebooted = Self.fixture()
        rebooted.dm.fileDirectories["/run"] = fx.dm.fileDirectories["/run"]
        rebooted.dm.bootID = "boot-2"
        try rebooted.store.save(set)
        let status = try attempt { () throws(DMSnapError) in try rebooted.manager.status("s") }.get()[0]
        #expect(status.state == .invalid && status.hint == "dmsnap discard s", "\(status.summary)")
        #expect(status.summary.contains("is gone (it was in memory)"))
        let activation = attempt { () throws(DMSnapError) in try rebooted.manager.activate("s") }
        guard case let .failure(.refused(e)) = activation else { Issue.record("activate did not refuse: \(activation)"); return }
        #expect(e.description.contains("dmsnap discard s"))
        _ = try attempt { () throws(DMSnapError) in try rebooted.manager.discard("s") }.get()
        #expect(rebooted.store.sets.isEmpty)
    }

    @Test func extendGrowsTheFileAndTheLoop() throws {
        let fx = Self.fixture()
        let set = try Self.take(fx, ["\(Fx.live(0))=\(Self.dir)/a.cow:8M"]).get()
        let (from, to) = try attempt { () throws(DMSnapError) in try fx.manager.extend("s", device: Fx.live(0).value, by: .bytes(8 << 20)) }.get()
        #expect(from.bytes == 8 << 20 && to.bytes == 16 << 20)
        #expect(fx.dm.files[set.members[0].cow]?.size == 16 << 20)
        #expect(fx.store.sets[set.name]?.members[0].cowSize.bytes == 16 << 20)
        #expect(fx.dm.trace.contains { $0.hasPrefix("loopcapacity") })
    }

    @Test func extendRefusesABlockCOW() throws {
        let fx = Self.fixture()
        _ = fx.take()
        let r = attempt { () throws(DMSnapError) in try fx.manager.extend("s", device: Fx.live(0).value, by: .bytes(8 << 20)) }
        guard case let .failure(.refused(e)) = r else { Issue.record("not refused: \(r)"); return }
        #expect(e.description.contains("lvextend"))
    }

    @Test func theMonitorGrowsAFileOverTheThresholdAndWarnsOnceForABlockCOW() throws {
        let fx = Self.fixture(devices: 2)
        let r = Self.take(fx, ["\(Fx.live(0))=\(Self.dir)/a.cow:8M", "\(Fx.live(1))=\(Fx.cow(1))"])
        _ = try r.get()
        var policy = MonitorPolicy()
        policy.threshold = 70
        let monitor = try attempt { () throws(DMSnapError) in try COWMonitor(manager: fx.manager, sets: [], policy: policy) }.get()
        var events: [String] = []
        monitor.events = { e in
            switch e {
            case let .grew(_, d, from, to, _): events.append("grew \(d) \(from.bytes >> 20)M->\(to.bytes >> 20)M")
            case let .cannotGrow(_, d, _, _, _): events.append("cannot \(d)")
            default: events.append("\(e)")
            }
        }
        // both at 75%
        fx.dm.statusOverride[Fx.live(0)] = "12288/16384 32"
        fx.dm.statusOverride[Fx.live(1)] = "\(Fx.cowSectors.value * 3 / 4)/\(Fx.cowSectors.value) 32"
        let interval = monitor.poll()
        #expect(events.contains("grew \(Fx.live(0)) 8M->9M") || events.contains { $0.hasPrefix("grew \(Fx.live(0)) 8M->") }, "\(events)")
        #expect(events.filter { $0 == "cannot \(Fx.live(1))" }.count == 1)
        #expect(interval == COWMonitor.minInterval)
        _ = monitor.poll()
        #expect(events.filter { $0 == "cannot \(Fx.live(1))" }.count == 1, "warned twice for one crossing: \(events)")
        #expect(fx.dm.files["\(Self.dir)/a.cow"]!.size > 8 << 20)
        #expect(try #require(monitor.peakUse["s/\(Fx.live(0))"]) >= 75)
    }

    @Test func anIdleLargeCOWIsPolledOnceASecond() throws {
        let fx = Self.fixture()
        _ = try Self.take(fx, ["\(Fx.live(0))=\(Self.dir)/a.cow"]).get()
        let monitor = try attempt { () throws(DMSnapError) in try COWMonitor(manager: fx.manager, sets: ["s"], policy: MonitorPolicy()) }.get()
        fx.dm.statusOverride[Fx.live(0)] = "32/\(64 << 21) 32"  // 64 GiB, empty
        #expect(monitor.poll() == COWMonitor.maxInterval)
    }

    @Test func theMonitorRefusesAnUnknownSet() {
        let fx = Self.fixture()
        let r = attempt { () throws(DMSnapError) in try COWMonitor(manager: fx.manager, sets: ["nope"], policy: MonitorPolicy()) }
        guard case let .failure(.refused(e)) = r else { Issue.record("not refused"); return }
        #expect(e.description.contains("no such snapshot set"))
    }
}
