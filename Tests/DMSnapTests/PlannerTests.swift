import Foundation
import Testing
@testable import DMSnap
@testable import DMSnapModel
@testable import DMSnapPlanning
@testable import DMSnapKernel
@testable import DMSnapStore
import DMSnapTesting
import SystemPackage

// MARK: - bad input

/// A take request that must be refused: how to set the kernel up, what to ask, and what the
/// error must name.
struct BadTake: Sendable, CustomTestStringConvertible {
    var label: String
    var set: String
    var pairs: [String]
    var chunk: String?
    var force: Bool
    var mentions: [String]
    var setup: @Sendable (SnapFixture) throws -> Void

    init(_ label: String, set: String = "s", _ pairs: [String], chunk: String? = nil, force: Bool = false,
         mentions: [String], setup: @escaping @Sendable (SnapFixture) throws -> Void = { _ in }) {
        self.label = label
        self.set = set
        self.pairs = pairs
        self.chunk = chunk
        self.force = force
        self.mentions = mentions
        self.setup = setup
    }

    var testDescription: String { label }

    static let pair0 = "vg0-live=/dev/loop10"
    static let long = String(repeating: "x", count: 120)

    static let all: [BadTake] = [
        BadTake("set name -x", set: "-x", [pair0], mentions: ["invalid set name '-x'"]),
        BadTake("set name .x", set: ".x", [pair0], mentions: ["invalid set name '.x'"]),
        BadTake("set name a/b", set: "a/b", [pair0], mentions: ["invalid set name 'a/b'"]),
        BadTake("set name of 65 chars", set: String(repeating: "a", count: 65), [pair0],
                mentions: ["invalid set name '\(String(repeating: "a", count: 65))'", "1–64"]),
        BadTake("empty set name", set: "", [pair0], mentions: ["invalid set name ''"]),
        BadTake("set already exists", [pair0], mentions: ["s: set already exists"]) { fx in fx.take("s", [1]) },
        BadTake("chunk 3k", [pair0], chunk: "3k", mentions: ["chunk size", "'3k'", "power of two"]),
        BadTake("chunk 12k", [pair0], chunk: "12k", mentions: ["chunk size", "'12k'", "power of two"]),
        BadTake("chunk 96k", [pair0], chunk: "96k", mentions: ["chunk size", "'96k'", "power of two"]),
        BadTake("chunk 1k", [pair0], chunk: "1k", mentions: ["chunk size", "'1k'", "4k to 512k"]),
        BadTake("chunk 2k", [pair0], chunk: "2k", mentions: ["chunk size", "'2k'", "4k to 512k"]),
        BadTake("chunk 1024k", [pair0], chunk: "1024k", mentions: ["chunk size", "'1024k'", "4k to 512k"]),
        BadTake("chunk 1m", [pair0], chunk: "1m", mentions: ["chunk size", "'1m'", "4k to 512k"]),
        BadTake("chunk abc", [pair0], chunk: "abc", mentions: ["chunk size", "'abc'"]),
        BadTake("chunk 0", [pair0], chunk: "0", mentions: ["chunk size", "'0'"]),
        BadTake("no pairs", [], mentions: ["s: no DEVICE=COW given"]),
        BadTake("device missing", ["vg9-live=/dev/loop10"], mentions: ["vg9-live: no such device-mapper device"]),
        BadTake("device missing by mapper path", ["/dev/mapper/vg9-live=/dev/loop10"],
                mentions: ["/dev/mapper/vg9-live: no such device-mapper device"]),
        BadTake("device path missing", ["/dev/dm-9=/dev/loop10"], mentions: ["/dev/dm-9: No such file or directory"]),
        BadTake("device path not dm", ["/dev/loop0=/dev/loop10"], mentions: ["/dev/loop0: not a device-mapper device"]),
        BadTake("device suspended", [pair0], mentions: ["vg0-live: device is suspended"]) { fx in
            try fx.dm.suspend(Fx.live(0), lockfs: true)
        },
        BadTake("device with an inactive table", [pair0], mentions: ["vg0-live", "inactive table"]) { fx in
            try fx.dm.load(Fx.live(0), table: Fx.original(0))
        },
        BadTake("device already in a set", [pair0], mentions: ["vg0-live: already in snapshot set other"]) { fx in
            fx.take("other", [0])
        },
        BadTake("base of a set", ["vg0-live-dmsnap-base=/dev/loop11"],
                mentions: ["vg0-live-dmsnap-base: already in snapshot set other"]) { fx in fx.take("other", [0]) },
        BadTake("device with a DMSNAP uuid", ["stray=/dev/loop10"], mentions: ["stray: already part of a snapshot"]) { fx in
            fx.dm.addDevice(mkName("stray"), table: Fx.original(1), uuid: "DMSNAP-old-base0")
        },
        BadTake("device with a snapshot table", ["stray=/dev/loop10"], mentions: ["stray: already part of a snapshot"]) { fx in
            fx.dm.addDevice(mkName("stray"), table: mkTable("0 131072 snapshot 7:1 7:11 P 8"))
        },
        BadTake("LVM device without force", ["vg-lv=/dev/loop10"], mentions: ["vg-lv", "LVM", "LVM-abc", "--force"]) { fx in
            fx.dm.addDevice(mkName("vg-lv"), table: Fx.original(1), uuid: "LVM-abc")
        },
        BadTake("cryptsetup device on a loop", ["luks=/dev/loop10"], mentions: ["luks: is a dm-crypt device on", "not a device-mapper device", "linear"]) { fx in
            fx.dm.addDevice(mkName("luks"), table: Fx.original(1), uuid: "CRYPT-LUKS2-abc")
        },
        BadTake("same device twice", [pair0, "vg0-live=/dev/loop11"], mentions: ["vg0-live: given twice"]),
        BadTake("same device as name and /dev/dm-0", [pair0, "/dev/dm-0=/dev/loop11"],
                mentions: ["/dev/dm-0: given twice (also as vg0-live)"]),
        BadTake("same device as mapper path and name", ["/dev/mapper/vg0-live=/dev/loop10", "vg0-live=/dev/loop11"],
                mentions: ["vg0-live: given twice (also as /dev/mapper/vg0-live)"]),
        BadTake("hidden base already exists", [pair0], mentions: ["vg0-live", "vg0-live-dmsnap-base already exists"]) { fx in
            fx.dm.addDevice(mkName("vg0-live-dmsnap-base"), table: Fx.original(0))
        },
        BadTake("device name too long for the base suffix", ["\(long)=/dev/loop10"], mentions: [long, "too long"]) { fx in
            fx.dm.addDevice(mkName(long), table: Fx.original(1))
        },
        BadTake("COW missing", ["vg0-live=/dev/loop99"], mentions: ["/dev/loop99: No such file or directory"]),
        BadTake("COW not a block device", ["vg0-live=/dev/null"], mentions: ["/dev/null: not a block device"]) { fx in
            fx.dm.failErrno = .notBlockDevice
            fx.dm.failWhen = { $0 == "blockdev /dev/null" }
        },
        BadTake("COW not a path", ["vg0-live=loop10"], mentions: ["loop10: COW must be an absolute path"]),
        BadTake("COW mounted", [pair0], mentions: ["/dev/loop10: COW is mounted on /srv/cow"]) { fx in
            fx.dm.mountTable.append(MountEntry(number: Fx.cowNumber(0), mountPoint: "/srv/cow", fsType: "ext4", source: Fx.cow(0)))
        },
        BadTake("COW claimed", [pair0], mentions: ["/dev/loop10: COW is in use"]) { fx in
            fx.dm.blocks[Fx.cow(0)]?.claimed = true
        },
        BadTake("COW underlies the device", ["vg0-live=/dev/loop0"], mentions: ["/dev/loop0: COW is a device underlying vg0-live"]),
        BadTake("COW used twice", [pair0, "vg1-live=/dev/loop10"], mentions: ["/dev/loop10: used twice (also as /dev/loop10)"]),
        BadTake("COW of another set", ["vg0-live=/dev/loop11"], mentions: ["/dev/loop11: COW is already used by another snapshot set"]) { fx in
            fx.take("other", [1])
        },
        BadTake("COW is a suspended dm device", ["vg0-live=/dev/mapper/cowdev"],
                mentions: ["/dev/mapper/cowdev: COW device cowdev is suspended"]) { fx in
            fx.dm.addBlock("/dev/loop12", number: DeviceNumber(major: 7, minor: 12), size: Fx.cowSectors)
            fx.dm.addDevice(mkName("cowdev"), table: mkTable("0 65536 linear 7:12 0"))
            try fx.dm.suspend(mkName("cowdev"), lockfs: true)
        },
        BadTake("COW of 23 sectors (< 3 chunks of 4k)", [pair0], mentions: ["/dev/loop10: COW too small", "11776 bytes", "12288"]) { fx in
            fx.dm.blocks[Fx.cow(0)]?.size = 23
        },
        BadTake("COW just under 3 chunks of 64k", [pair0], chunk: "64k", mentions: ["/dev/loop10: COW too small", "196608"]) { fx in
            fx.dm.blocks[Fx.cow(0)]?.size = 383
        },
        BadTake("COW with an ext4 signature", [pair0], mentions: ["/dev/loop10", "ext4 signature", "--force"]) { fx in
            fx.dm.blocks[Fx.cow(0)]?.signature = "ext4"
        },
        BadTake("chunk not a multiple of the COW's logical block size", [pair0],
                mentions: ["/dev/loop10", "4096", "logical block size 8192"]) { fx in
            fx.dm.blocks[Fx.cow(0)]?.logicalBlockSize = 8192
        },
    ]
}

@Suite("Planner: bad take requests are refused before any change")
struct PlannerRefusalTests {
    @Test(arguments: BadTake.all)
    func refused(_ c: BadTake) throws {
        let fx = SnapFixture(devices: 2)
        try c.setup(fx)
        fx.dm.resetTrace()
        let before = fx.world
        let blocksBefore = fx.dm.blocks
        let request = TakeRequest(set: c.set, pairs: try c.pairs.map { try TakeRequest.pair($0) }, chunkSize: c.chunk, force: c.force)

        // The planner, on the view the manager would gather.
        let view = try fx.view(for: request)
        var planned: PlanError?
        do {
            let (set, _) = try Planner.take(request, view: view)
            Issue.record("planned set \(set.name) instead of refusing")
        } catch {
            planned = error
        }
        let text = try #require(planned).description
        for m in c.mentions { #expect(text.contains(m), "'\(text)' does not mention '\(m)'") }

        // The manager refuses the same way and changes nothing.
        fx.dm.resetTrace()
        let result = attempt { () throws(DMSnapError) in try fx.manager.take(request) }
        let refusal = try #require(result.refusal, "expected refused, got \(result)")
        #expect(refusal == planned)
        #expect(fx.mutations.isEmpty, "kernel changed: \(fx.mutations)")
        #expect(fx.world == before)
        #expect(fx.dm.blocks == blocksBefore, "a COW was written")
    }

    @Test func notRoot() throws {
        let fx = SnapFixture(devices: 1)
        fx.dm.isPrivileged = false
        let request = fx.request()
        let view = try fx.view(for: request)
        #expect(fx.dm.trace.isEmpty, "an unprivileged view reads nothing")
        #expect(throws: PlanError("", "must be run as root")) { try Planner.take(request, view: view) }

        let result = attempt { () throws(DMSnapError) in try fx.manager.take(request) }
        #expect(result.refusal?.description == "must be run as root")
        #expect(fx.dm.trace.isEmpty)
        #expect(fx.store.sets.isEmpty)
        for r in [attempt { () throws(DMSnapError) in try fx.manager.merge("s") },
                  attempt { () throws(DMSnapError) in try fx.manager.discard("s") }] {
            #expect(r.refusal?.description == "must be run as root")
        }
        #expect(fx.dm.trace.isEmpty)
    }

    @Test func chunkNotAMultipleOfTheDevicesLogicalBlockSize() throws {
        let fx = SnapFixture(devices: 1)
        let request = fx.request()
        var view = try fx.view(for: request)
        view.blocks[Fx.live(0).path] = .success(BlockDeviceInfo(path: Fx.live(0).path, number: DeviceNumber(major: 253, minor: 0),
                                                                size: Fx.liveSectors, logicalBlockSize: 8192))
        #expect(throws: PlanError("vg0-live", "chunk size 4096 is not a multiple of the logical block size 8192")) {
            try Planner.take(request, view: view)
        }
        var big = request
        big.chunkSize = "8k"
        #expect(try Planner.take(big, view: view).0.chunk == 16)
    }
}

// MARK: - gathering the view

@Suite("KernelView.gather")
struct KernelViewGatherTests {
    let fx = SnapFixture(devices: 2)
    let paths = [Fx.live(0).path, Fx.live(1).path, Fx.live(0).path]
    let probePaths = [Fx.cow(0), Fx.cow(1), Fx.cow(0), Fx.live(1).path]

    func gather() throws -> KernelView {
        fx.dm.resetTrace()
        return try KernelView.read(fx.dm, store: fx.store, paths: paths, probePaths: probePaths)
    }

    /// The path lookups and probes, in order (device-mapper reads and `mounts` left out).
    var pathCalls: [String] {
        fx.dm.trace.filter { $0.hasPrefix("blockdev ") || $0.hasPrefix("claimed ") || $0.hasPrefix("probe ") }
    }

    @Test func pathsInOrderOnceEach() throws {
        let view = try gather()
        // Every path is looked up first (no I/O); probes come after the dm devices are read, so
        // a suspended one is never probed.
        #expect(pathCalls == ["blockdev /dev/mapper/vg0-live", "blockdev /dev/mapper/vg1-live",
                              "blockdev /dev/loop10", "blockdev /dev/loop11",
                              "claimed /dev/loop10", "probe /dev/loop10",
                              "claimed /dev/loop11", "probe /dev/loop11",
                              "claimed /dev/mapper/vg1-live", "probe /dev/mapper/vg1-live"])
        #expect(fx.dm.trace.firstIndex(of: "mounts")! < fx.dm.trace.firstIndex(of: "claimed /dev/loop10")!)
        #expect(Set(view.blocks.keys) == Set(paths + probePaths))
        #expect(Set(view.claimed.keys) == Set(probePaths), "only probe paths are checked for users")
        #expect(try view.blocks[Fx.cow(1)]?.get().number == Fx.cowNumber(1))
        #expect(try view.blocks[Fx.live(1).path]?.get().number == DeviceNumber(major: 253, minor: 1))
        // The same request twice: the same calls in the same order.
        let first = fx.dm.trace
        _ = try gather()
        #expect(fx.dm.trace == first)
    }

    @Test func aFailedLookupIsRecordedAndTheRestIsStillGathered() throws {
        fx.dm.failWhen = { $0 == "blockdev /dev/loop10" }
        let view = try gather()
        fx.dm.failWhen = nil
        guard case let .failure(error)? = view.blocks[Fx.cow(0)] else {
            Issue.record("lookup of /dev/loop10 not recorded as failed: \(String(describing: view.blocks[Fx.cow(0)]))")
            return
        }
        #expect(error.errno == EIO)
        #expect(view.claimed[Fx.cow(0)] == nil)
        #expect(!pathCalls.contains("claimed /dev/loop10") && !pathCalls.contains("probe /dev/loop10"))
        #expect(view.claimed[Fx.cow(1)] == false, "later paths are still gathered")
        // The planner refuses it as the user's input, naming the path and the error.
        let request = fx.request()
        #expect(throws: PlanError(Fx.cow(0), Errno.ioError.description)) { try Planner.take(request, view: view) }
    }

    @Test(arguments: ["claimed /dev/loop11", "probe /dev/loop10", "claimed /dev/mapper/vg1-live"])
    func aFailedClaimCheckOrProbeThrows(_ failing: String) throws {
        fx.dm.failWhen = { $0 == failing }
        let thrown = #expect(throws: DMSnapError.self) { try gather() }
        guard case .kernel? = thrown else { Issue.record("expected a kernel read failure, got \(String(describing: thrown))"); return }
        #expect(pathCalls.last == failing, "gathering stops at the failed call")
        // Through the manager, with the failing path as a COW.
        let path = String(failing.split(separator: " ")[1])
        let request = path.hasPrefix("/dev/loop") ? fx.request() : TakeRequest(set: "s", pairs: [(Fx.live(0).value, path)])
        fx.dm.failWhen = { $0 == failing }
        let result = attempt { () throws(DMSnapError) in try fx.manager.take(request) }
        fx.dm.failWhen = nil
        guard case let .failure(.kernel(kernelError)) = result, case let message = kernelError.description else {
            Issue.record("expected an inspection failure, got \(result)")
            return
        }
        #expect(message.contains(path) && message.contains("injected"), "\(message)")
        #expect(fx.mutations.isEmpty)
        #expect(fx.store.sets.isEmpty)
    }
}

/// A command about one set reads that set's devices and what they stack on, not every dm device
/// on the system (each costs up to four ioctls; BENCHMARKS.md).
@Suite("KernelView.gather: scope")
struct KernelViewScopeTests {
    let fx = SnapFixture(devices: 3)

    /// dm device names read in full (an `info` call), in order.
    func read(_ scope: KernelView.Scope, paths: [String] = []) throws -> (KernelView, [String]) {
        fx.dm.resetTrace()
        let view = try KernelView.read(fx.dm, store: fx.store, paths: paths, scope: scope)
        return (view, fx.dm.trace.filter { $0.hasPrefix("info ") }.map { String($0.dropFirst(5)) })
    }

    @Test func onlyTheNamedDevicesAndTheDevicesBehindPaths() throws {
        let (view, infos) = try read(.devices([Fx.live(0)]), paths: [Fx.live(2).path])
        #expect(Set(view.devices.keys) == [Fx.live(0), Fx.live(2)])
        #expect(Set(infos) == ["vg0-live", "vg2-live"], "vg1-live is not read: \(infos)")
        // A name that does not exist is simply absent (the planner says so).
        let (none, _) = try read(.devices([try DeviceName("nosuch")]))
        #expect(none.devices.isEmpty)
    }

    @Test func whatTheDevicesStackOnIsRead() throws {
        // top -> vg1-live (dm) -> loop: the scope names only `top`.
        let top = try DeviceName("top")
        let vg1 = try #require(fx.dm.devices[Fx.live(1)]).number
        _ = fx.dm.addDevice(top, table: try Table([TargetLine(start: 0, length: Fx.liveSectors, type: "linear", params: "\(vg1) 0")]))
        let (view, infos) = try read(.devices([top]))
        #expect(Set(view.devices.keys) == [top, Fx.live(1)])
        #expect(view.underlying(view.devices[top]!.info.number).contains(vg1))
        #expect(!infos.contains("vg0-live") && !infos.contains("vg2-live"))
    }

    @Test func recordedSetsReadsTheirMembersAndBases() throws {
        let set = try #require(fx.take("s", [1]))
        let (view, infos) = try read(.recordedSets)
        #expect(Set(view.devices.keys) == [Fx.live(1), set.members[0].base])
        #expect(!infos.contains("vg0-live"))
        // Status through the manager sees the same set as with a full view.
        let full = try KernelView.read(fx.dm, store: fx.store)
        #expect(try fx.manager.status() == full.sets.map { SetStatus.of($0, view: full) })
        #expect(try fx.manager.status()[0].devices.map(\.state) == [.active])
    }
}

// MARK: - COWs that are dm devices

/// A COW given as a dm device path (`/dev/mapper/NAME`, `/dev/dm-N`): `KernelView.gather` looks it
/// up, checks it for users and probes it like any block device, and the planner gives its own
/// reason (not a lookup failure) for refusing it.
@Suite("Planner: COWs that are device-mapper devices")
struct DeviceMapperCowTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var pair: String
        var otherSet: Bool
        var expected: String?
        var testDescription: String { pair + (otherSet ? " (vg1-live in set other)" : "") }
    }

    static let cases = [
        Case(pair: "vg0-live=/dev/mapper/vg0-live", otherSet: false, expected: "/dev/mapper/vg0-live: COW is the device vg0-live itself"),
        Case(pair: "vg0-live=/dev/dm-0", otherSet: false, expected: "/dev/dm-0: COW is the device vg0-live itself"),
        Case(pair: "vg0-live=/dev/mapper/vg1-live", otherSet: true, expected: "/dev/mapper/vg1-live: COW device vg1-live is in a snapshot set"),
        Case(pair: "vg0-live=/dev/mapper/vg1-live", otherSet: false, expected: nil),
    ]

    @Test(arguments: cases)
    func planner(_ c: Case) throws {
        let fx = SnapFixture(devices: 2)
        if c.otherSet { fx.take("other", [1]) }
        let request = TakeRequest(set: "s", pairs: [try TakeRequest.pair(c.pair)])
        let view = try fx.view(for: request)
        let cow = request.pairs[0].cow
        // Gathered as the kernel would answer: found, not claimed, no signature.
        let number = c.pair.hasSuffix("vg0-live") || c.pair.hasSuffix("dm-0")
            ? DeviceNumber(major: 253, minor: 0) : DeviceNumber(major: 253, minor: 1)
        #expect(try view.blocks[cow]?.get().number == number)
        #expect(view.claimed[cow] == false)
        #expect(view.signatures[cow] == nil)
        if let expected = c.expected {
            do {
                _ = try Planner.take(request, view: view)
                Issue.record("planned instead of refusing")
            } catch {
                #expect(error.description == expected)
            }
        } else {
            let (set, _) = try Planner.take(request, view: view)
            #expect(set.members.first?.cowNumber == DeviceNumber(major: 253, minor: 1))
        }
    }

    @Test(arguments: cases)
    func manager(_ c: Case) throws {
        let fx = SnapFixture(devices: 2)
        if c.otherSet { fx.take("other", [1]) }
        fx.dm.resetTrace()
        let before = fx.world
        let request = TakeRequest(set: "s", pairs: [try TakeRequest.pair(c.pair)])
        let result = attempt { () throws(DMSnapError) in try fx.manager.take(request) }
        let cow = request.pairs[0].cow
        #expect(fx.dm.trace.contains("claimed \(cow)") && fx.dm.trace.contains("probe \(cow)"), "\(fx.dm.trace)")
        fx.expectSafe()
        if let expected = c.expected {
            #expect(result.refusal?.description == expected, "\(result)")
            #expect(fx.mutations.isEmpty, "\(fx.mutations)")
            #expect(fx.world == before)
            return
        }
        // Accepted: the take runs with the dm device as its COW.
        let set = try result.get()
        let base = try #require(fx.baseNumber(0))
        #expect(set.members.first?.cowNumber == DeviceNumber(major: 253, minor: 1))
        #expect(fx.dm.device(Fx.live(0))?.live == mkTable("0 131072 snapshot \(base) 253:1 P 8"))
    }
}

// MARK: - accepted input

struct GoodTake: Sendable, CustomTestStringConvertible {
    var label: String
    var pairs: [String]
    var chunk: String?
    var force: Bool
    var chunkSectors: UInt64
    var devices: [String]
    var setup: @Sendable (SnapFixture) throws -> Void

    init(_ label: String, _ pairs: [String] = [BadTake.pair0], chunk: String? = nil, force: Bool = false, sectors: UInt64 = 8,
         devices: [String] = ["vg0-live"], setup: @escaping @Sendable (SnapFixture) throws -> Void = { _ in }) {
        self.label = label
        self.pairs = pairs
        self.chunk = chunk
        self.force = force
        chunkSectors = sectors
        self.devices = devices
        self.setup = setup
    }

    var testDescription: String { label }

    static let all: [GoodTake] = [
        GoodTake("default chunk"),
        GoodTake("chunk 4k", chunk: "4k", sectors: 8),
        GoodTake("chunk 8k", chunk: "8k", sectors: 16),
        GoodTake("chunk 64K", chunk: "64K", sectors: 128),
        GoodTake("chunk 4096", chunk: "4096", sectors: 8),
        GoodTake("chunk 512k", chunk: "512k", sectors: 1024),
        GoodTake("device as /dev/mapper path", ["/dev/mapper/vg1-live=/dev/loop11"], devices: ["vg1-live"]),
        GoodTake("device as /dev/dm-N", ["/dev/dm-1=/dev/loop11"], devices: ["vg1-live"]),
        GoodTake("two devices, three spellings", ["/dev/dm-1=/dev/loop10", "vg0-live=/dev/loop11"], devices: ["vg1-live", "vg0-live"]),
        GoodTake("COW of exactly 3 chunks of 4k") { fx in fx.dm.blocks[Fx.cow(0)]?.size = 24 },
        GoodTake("COW of exactly 3 chunks of 64k", chunk: "64k", sectors: 128) { fx in fx.dm.blocks[Fx.cow(0)]?.size = 384 },
        GoodTake("LVM device with force", ["vg-lv=/dev/loop10"], force: true, devices: ["vg-lv"]) { fx in
            fx.dm.addDevice(mkName("vg-lv"), table: mkTable("0 8192 linear 7:1 8192"), uuid: "LVM-abc")
        },
        GoodTake("COW with an ext4 signature with force", force: true) { fx in fx.dm.blocks[Fx.cow(0)]?.signature = "ext4" },
        GoodTake("chunk a multiple of the COW's 8k logical block size", chunk: "8k", sectors: 16) { fx in
            fx.dm.blocks[Fx.cow(0)]?.logicalBlockSize = 8192
        },
    ]
}

@Suite("Planner: accepted take requests")
struct PlannerAcceptTests {
    @Test(arguments: GoodTake.all)
    func accepted(_ c: GoodTake) throws {
        let fx = SnapFixture(devices: 2)
        try c.setup(fx)
        let request = TakeRequest(set: "s", pairs: try c.pairs.map { try TakeRequest.pair($0) }, chunkSize: c.chunk, force: c.force)
        let (set, plan) = try Planner.take(request, view: try fx.view(for: request))
        #expect(set.chunk == Sectors(c.chunkSectors))
        #expect(set.members.map(\.device.value) == c.devices)
        #expect(set.phase == .taking)
        let loads = plan.actions.compactMap { if case let .load(_, t) = $0 { t } else { nil } }
        #expect(loads.count == c.devices.count)
        for t in loads { #expect(t.targets.first?.params.kernelText.hasSuffix(" P \(c.chunkSectors)") == true, "\(t)") }

        // And the manager carries it out.
        fx.dm.resetTrace()
        let result = attempt { () throws(DMSnapError) in try fx.manager.take(request) }
        #expect(result.isSuccess, "\(result)")
        for m in set.members {
            let base = try #require(fx.dm.device(m.base))
            #expect(fx.dm.device(m.device)?.live == m.snapshotTable(base: .number(base.number), chunk: set.chunk, merge: false))
        }
        fx.expectSafe()
    }

    @Test func membersRecordWhatMergeAndDiscardNeed() throws {
        let fx = SnapFixture(devices: 2, mounted: [0])
        let request = fx.request("nightly.1")
        let now = Date(timeIntervalSince1970: 1_700_000_000)
        let (set, _) = try Planner.take(request, view: try fx.view(for: request), now: now)
        #expect(set.name.value == "nightly.1")
        #expect(set.created == now)
        #expect(set.members.count == 2)
        for (k, m) in set.members.enumerated() {
            #expect(m.device == Fx.live(k))
            #expect(m.number == DeviceNumber(major: 253, minor: UInt32(k)))
            #expect(m.originalTable == Fx.original(k))
            #expect(m.base == Fx.base(k))
            #expect(m.baseUUID == "LVM-DMSNAP_nightly.1_base\(k)_" + String(repeating: "0", count: 43))
            #expect(m.cow == Fx.cow(k))
            #expect(m.cowNumber == Fx.cowNumber(k))
            #expect(m.cowSize == Fx.cowSectors)
            #expect(m.size == Fx.liveSectors)
        }
    }
}

// MARK: - take plan shape

@Suite("Planner: take plan shape")
struct TakePlanShapeTests {
    static let configs = [SetConfig(1), SetConfig(1, mounted: [0]), SetConfig(2, mounted: [1]), SetConfig(3),
                          SetConfig(3, mounted: [0, 1, 2]), SetConfig(3, mounted: [0, 2])]

    @Test(arguments: configs)
    func oneShortWindow(_ c: SetConfig) throws {
        let fx = SnapFixture(c)
        let request = fx.request(chunk: "16k")
        let (set, plan) = try Planner.take(request, view: try fx.view(for: request))
        let actions = plan.actions
        let verbs = actions.map(fxVerb)
        let mountPoints = c.mounted.map(Fx.mountPoint)

        let windowStart = try #require(verbs.firstIndex { $0 == "freeze" || $0 == "suspend" })
        let windowEnd = try #require(verbs.lastIndex { $0 == "thaw" || $0 == "resume" })
        if !mountPoints.isEmpty { #expect(verbs[windowStart] == "freeze") }

        // Creates, zeroes and loads all happen before the window opens.
        for (i, v) in verbs.enumerated() where ["create", "load", "zero", "syncfs", "clear"].contains(v) {
            #expect(i < windowStart, "\(actions[i]) at \(i) is inside or after the window starting at \(windowStart)")
        }
        // The window is freeze* suspend* resume* thaw*, nothing else.
        let rank = ["freeze": 0, "suspend": 1, "resume": 2, "thaw": 3]
        try #require(windowStart < windowEnd, "\(verbs)")
        let window = verbs[windowStart...windowEnd]
        #expect(window.allSatisfy { rank[$0] != nil }, "window holds \(Array(window))")
        let ranks = window.compactMap { rank[$0] }
        #expect(ranks == ranks.sorted(), "window out of order: \(Array(window))")
        #expect(window.filter { $0 == "freeze" }.count == mountPoints.count)
        #expect(window.filter { $0 == "thaw" }.count == mountPoints.count)
        #expect(window.filter { $0 == "suspend" }.count == c.devices)
        #expect(window.filter { $0 == "resume" }.count == c.devices)

        // Every mount is flushed before the window and frozen/thawed inside it.
        let synced = actions.enumerated().compactMap { i, a in if case let .syncFilesystem(mp) = a { (i, mp) } else { nil } }
        #expect(synced.map(\.1).sorted() == mountPoints.sorted())
        #expect(synced.allSatisfy { $0.0 < windowStart })
        let frozen = actions.compactMap { if case let .freeze(mp) = $0 { mp } else { nil } }
        let thawed = actions.compactMap { if case let .thaw(mp) = $0 { mp } else { nil } }
        #expect(frozen.sorted() == mountPoints.sorted())
        #expect(thawed.sorted() == mountPoints.sorted())

        // nolockfs exactly where dmsnap froze the filesystem itself.
        let suspends = actions.compactMap { if case let .suspend(n, lockfs) = $0 { (n, lockfs) } else { nil } }
        #expect(suspends.map(\.0) == fx.all.map(Fx.live))
        for (k, (_, lockfs)) in suspends.enumerated() {
            #expect(lockfs == !c.mounted.contains(k), "vg\(k)-live suspended with lockfs=\(lockfs)")
        }

        // Commits on the last resume, i.e. once every device runs its snapshot.
        #expect(plan.commitIndex == verbs.lastIndex(of: "resume"))

        // COW headers are zeroed before the snapshot tables are loaded; tables name base, COW, P, chunk.
        let firstLoad = try #require(verbs.firstIndex(of: "load"))
        let zeroed = actions.enumerated().compactMap { i, a in if case let .zeroHeader(p, b) = a { (i, p, b) } else { nil } }
        #expect(zeroed.map(\.1) == fx.all.map(Fx.cow))
        #expect(zeroed.allSatisfy { $0.0 < firstLoad && $0.2 >= 4096 })
        let loads = actions.compactMap { if case let .load(n, t) = $0 { (n, t) } else { nil } }
        #expect(loads.map(\.0) == fx.all.map(Fx.live))
        for (k, (_, t)) in loads.enumerated() {
            #expect(t.targets.count == 1)
            #expect(t.targets[0].type == "snapshot")
            #expect(t.targets[0].length == Fx.liveSectors)
            let p = t.targets[0].params.kernelText.split(separator: " ").map(String.init)
            #expect(p.count == 4)
            // The base has no number yet: named by path, which the executor resolves before loading.
            #expect(p.first == Fx.base(k).path)
            #expect(Array(p.dropFirst()) == [Fx.cowNumber(k).description, "P", "32"])
        }
        let creates = actions.compactMap { if case let .create(n, u, t, h) = $0 { (n, u, t, h) } else { nil } }
        #expect(creates.map(\.0) == fx.all.map(Fx.base))
        #expect(creates.map(\.1) == fx.all.map { DMSnapNaming.baseUUID(set: try! SetName("s"), index: $0) })
        #expect(creates.map(\.2) == fx.all.map(Fx.original))
        #expect(creates.allSatisfy { $0.3 }, "bases must be hidden")

        // The set is recorded as taking before the window and active after it.
        let saves = actions.enumerated().compactMap { i, a in if case let .save(s) = a { (i, s.phase) } else { nil } }
        #expect(saves.map(\.1) == [.taking, .active])
        #expect(saves.first.map { $0.0 < windowStart } == true)
        #expect(saves.last?.0 == actions.count - 1)
        #expect(set.phase == .taking)

        // Undo actions. A suspend is undone by loading the table that was live, then resuming:
        // never a clear that, failing, would let the resume swap in the snapshot table.
        for step in plan.steps {
            switch step.action {
            case let .create(n, _, _, _): #expect(step.undo == [.remove(n)])
            case let .load(n, _): #expect(step.undo == [.clearInactive(n)])
            case let .freeze(mp): #expect(step.undo == [.thaw(mp)])
            case let .suspend(n, _):
                let k = try #require(fx.all.first { Fx.live($0) == n })
                #expect(step.undo == [.load(n, Fx.original(k)), .resume(n)])
            case let .resume(n):
                let k = try #require(fx.all.first { Fx.live($0) == n })
                #expect(step.undo == [.load(n, Fx.original(k)), .suspend(n, lockfs: false), .resume(n)])
            default: break
            }
        }
    }
}

// MARK: - plans for existing sets

@Suite("Planner: merge and discard plans")
struct ExistingSetPlanTests {
    @Test func startMergeSuspendsAllBeforeResumingAny() throws {
        let fx = SnapFixture(devices: 3, mounted: [1])
        let set = try #require(fx.take())
        let plan = try #require(try Planner.startMerge(set, view: try KernelView.read(fx.dm, store: fx.store)))
        let verbs = plan.actions.map(fxVerb)
        #expect(verbs == ["load", "load", "load", "save", "suspend", "suspend", "suspend", "resume", "resume", "resume"])
        #expect(plan.commitIndex == 6)
        for case let .load(n, t) in plan.actions { #expect(t.targets[0].type == "snapshot-merge", "\(n)") }
        for case let .suspend(_, lockfs) in plan.actions { #expect(lockfs, "merge does not freeze, so the kernel may") }
        #expect(plan.actions.contains(.save(set.with(phase: .merging))))
        // Undo: a suspend loads the snapshot table that was live back, then resumes.
        for step in plan.steps {
            switch step.action {
            case let .load(n, _): #expect(step.undo == [.clearInactive(n)])
            case let .suspend(n, _):
                let k = try #require(fx.all.first { Fx.live($0) == n })
                #expect(step.undo == [.load(n, try #require(fx.snapshotTable(k))), .resume(n)])
            case .resume: #expect(step.undo.isEmpty, "after the commit")
            default: break
            }
        }
    }

    @Test func startMergeIsNilWhenEveryMemberMerges() throws {
        let fx = SnapFixture(devices: 2)
        fx.take()
        try #require(attempt { () throws(DMSnapError) in try fx.manager.merge("s", wait: false) }.isSuccess)
        let set = try #require(fx.store.sets[mkSetName("s")])
        #expect(try Planner.startMerge(set, view: try KernelView.read(fx.dm, store: fx.store)) == nil)
    }

    @Test func finishMergeRefusedUntilComplete() throws {
        let fx = SnapFixture(devices: 2)
        fx.take()
        try #require(attempt { () throws(DMSnapError) in try fx.manager.merge("s", wait: false) }.isSuccess)
        fx.dm.statusOverride[Fx.live(1)] = "40/65536 16"
        let set = try #require(fx.store.sets[mkSetName("s")])
        #expect(throws: PlanError("vg1-live", "merge not complete (40/65536 16)")) {
            try Planner.finishMerge(set, view: try KernelView.read(fx.dm, store: fx.store))
        }
        fx.dm.statusOverride[Fx.live(1)] = "16/65536 16"
        let plan = try Planner.finishMerge(set, view: try KernelView.read(fx.dm, store: fx.store))
        #expect(plan.actions.map(fxVerb) == ["load", "load", "suspend", "suspend", "resume", "resume",
                                             "remove", "remove", "release", "release", "delete"])
        #expect(plan.commitIndex == 5)
        #expect(plan.actions.first == .load(Fx.live(0), Fx.original(0)))
        try Self.expectRestoreUndo(plan, fx, merge: true)
    }

    /// The restore plans undo a suspend by loading the table that was live back (discard: the
    /// snapshot) or, for a merge finish, by dropping the loaded original (the live merge target
    /// stays), then resuming; a resume by loading the table back, suspending, resuming.
    static func expectRestoreUndo(_ plan: Plan, _ fx: SnapFixture, merge: Bool,
                                  sourceLocation: SourceLocation = #_sourceLocation) throws {
        var seen = 0
        for step in plan.steps {
            let n: DeviceName
            switch step.action {
            case let .suspend(d, _), let .resume(d): n = d
            default: continue
            }
            let k = try #require(fx.all.first { Fx.live($0) == n }, sourceLocation: sourceLocation)
            let current = try #require(fx.snapshotTable(k, merge: merge), sourceLocation: sourceLocation)
            if case .suspend = step.action {
                // a finish cannot reload snapshot-merge over the live merge target: it drops its load
                let undo: [Action] = merge ? [.clearInactive(n), .resume(n)] : [.load(n, current), .resume(n)]
                #expect(step.undo == undo, sourceLocation: sourceLocation)
            } else {
                #expect(step.undo == [.load(n, current), .suspend(n, lockfs: true), .resume(n)], sourceLocation: sourceLocation)
            }
            seen += 1
        }
        #expect(seen == 2 * fx.count, sourceLocation: sourceLocation)
    }

    @Test func discardPlanRestoresThenCleansUp() throws {
        let fx = SnapFixture(devices: 2)
        let set = try #require(fx.take())
        let plan = try Planner.discard(set, view: try KernelView.read(fx.dm, store: fx.store))
        #expect(plan.actions.map(fxVerb) == ["load", "load", "save", "suspend", "suspend", "resume", "resume",
                                             "remove", "remove", "release", "release", "delete"])
        #expect(plan.commitIndex == 6)
        #expect(plan.actions[2] == .save(set.with(phase: .discarding)))
        #expect(plan.actions[7] == .remove(Fx.base(0)))
        try Self.expectRestoreUndo(plan, fx, merge: false)
    }

    @Test func interruptedSetsAreRefused() throws {
        let fx = SnapFixture(devices: 1)
        let set = try #require(fx.take())
        let view = try KernelView.read(fx.dm, store: fx.store)
        for phase in [SnapshotSet.Phase.taking, .discarding] {
            let stuck = set.with(phase: phase)
            #expect(throws: PlanError("s", "set was interrupted while \(phase.rawValue); run 'dmsnap recover s'")) {
                try Planner.startMerge(stuck, view: view)
            }
            #expect(throws: PlanError.self) { try Planner.discard(stuck, view: view) }
        }
    }
}
