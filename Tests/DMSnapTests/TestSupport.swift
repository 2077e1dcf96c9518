import Foundation
import Testing
@testable import DMSnap
@testable import DMSnapModel
@testable import DMSnapPlanning
@testable import DMSnapKernel
@testable import DMSnapStore
import DMSnapTesting
import SystemPackage
import Logging

// Shared fixtures for the planner, executor and lifecycle tests.

/// A device name known to be valid.
func mkName(_ raw: String) -> DeviceName {
    do { return try DeviceName(raw) } catch { fatalError("bad test device name \(raw): \(error)") }
}

/// A table known to be valid (`\n` between targets).
func mkTable(_ text: String) -> Table {
    do { return try Table(parsing: text) } catch { fatalError("bad test table \(text): \(error)") }
}

func mkSetName(_ raw: String) -> SetName {
    do { return try SetName(raw) } catch { fatalError("bad test set name \(raw): \(error)") }
}

/// Names, paths and numbers of the standard fixture's device K (K = 0…9):
/// `/dev/loopK` (7:K, 64 MiB) under the linear dm device `vgK-live`, and the COW `/dev/loop1K` (7:1K, 32 MiB).
enum Fx {
    static let liveSectors: Sectors = 131_072
    static let cowSectors: Sectors = 65_536

    static func live(_ k: Int) -> DeviceName { mkName("vg\(k)-live") }
    static func base(_ k: Int) -> DeviceName { mkName("vg\(k)-live-dmsnap-base") }
    static func loop(_ k: Int) -> String { "/dev/loop\(k)" }
    static func cow(_ k: Int) -> String { "/dev/loop1\(k)" }
    static func loopNumber(_ k: Int) -> DeviceNumber { DeviceNumber(major: 7, minor: UInt32(k)) }
    static func cowNumber(_ k: Int) -> DeviceNumber { DeviceNumber(major: 7, minor: UInt32(10 + k)) }
    static func mountPoint(_ k: Int) -> String { "/mnt/\(k)" }
    static func original(_ k: Int) -> Table { mkTable("0 131072 linear 7:\(k) 0") }

    /// Trace verbs of FakeKernel calls that only read.
    static let readCalls: Set<String> = ["list", "info", "table", "deps", "status", "mounts", "blockdev", "claimed", "probe", "read", "readdirect", "inspect", "inspectcg"]

    static func verb(_ traceLine: String) -> String { String(traceLine.prefix { $0 != " " }) }
    static func isRead(_ traceLine: String) -> Bool { readCalls.contains(verb(traceLine)) }
}

/// The trace verb FakeKernel records for an action (`save` / `delete` are store-only).
func fxVerb(_ action: Action) -> String {
    switch action {
    case .create: "create"
    case .load: "load"
    case .clearInactive: "clear"
    case .suspend: "suspend"
    case .resume: "resume"
    case .remove: "remove"
    case .zeroHeader: "zero"
    case .releaseCOW: "release"
    case .syncFilesystem: "syncfs"
    case .freeze: "freeze"
    case .thaw, .thawIfFrozen: "thaw"
    case .freezeCgroup: "freezecg"
    case .thawCgroup: "thawcg"
    case .save: "save"
    case .deleteState: "delete"
    case .createView: "createview"
    case .makeDirectory: "mkdir"
    case .removeDirectory: "rmdir"
    case .mount: "mount"
    case .unmount: "umount"
    case .createFile: "createfile"
    case .deleteFile: "deletefile"
    case .attachLoop: "attachloop"
    case .detachLoop: "detachloop"
    case .restoreMount: "mount"
    case .stopUnit, .startUnit: "systemctl"
    case .saveVolume: "save"
    case .deleteVolume: "delete"
    }
}

/// The trace verbs of the calls an action makes (a COW release: wipe, then zero).
func fxVerbs(_ action: Action) -> Set<String> {
    if case .releaseCOW = action { return ["wipe", "zero"] }
    if case .detachLoop = action { return [] }  // closes a descriptor: no kernel call
    return [fxVerb(action)]
}

/// How many devices a fixture has and which of them are mounted.
struct SetConfig: Sendable, Hashable, CustomTestStringConvertible {
    var devices: Int
    var mounted: [Int]
    init(_ devices: Int, mounted: [Int] = []) {
        self.devices = devices
        self.mounted = mounted
    }
    var testDescription: String { "\(devices) device(s), mounted \(mounted)" }
}

/// Everything a lifecycle command may change, for before/after comparisons.
struct World: Equatable, CustomStringConvertible {
    var devices: [DeviceName: FakeKernel.Device]
    /// Sets with `created` blanked (it is the wall clock of the take).
    var sets: [SetName: SnapshotSet]
    var frozen: Set<String>

    var description: String {
        let devs = devices.keys.sorted().map { name in
            let d = devices[name]!
            return "\(name)[\(d.number)]: \(d.live?.description ?? "-")\(d.inactive.map { " | inactive \($0)" } ?? "")\(d.suspended ? " SUSPENDED" : "")"
        }
        let sets = sets.values.map { "\($0.name)=\($0.phase.rawValue)" }.sorted()
        return "devices: \(devs); sets: \(sets); frozen: \(frozen.sorted())"
    }

    /// The same, with the base fingerprints take records after the window (best effort) blanked.
    var ignoringFingerprints: World {
        var w = self
        w.sets = sets.mapValues { s in
            var s = s
            for i in s.members.indices { s.members[i].baseFingerprint = nil }
            return s
        }
        return w
    }
}

/// N loop devices, each under a linear dm device, some mounted, plus one COW per device; a
/// manager over them with a fast poll interval.
final class SnapFixture {
    let dm = FakeKernel()
    let store = MemorySetStore()
    let manager: SnapshotManager
    /// Every warning the manager logged.
    let warnings = Lines()
    let count: Int
    let mounted: Set<Int>

    init(devices count: Int = 1, mounted: Set<Int> = []) {
        self.count = count
        self.mounted = mounted
        for k in 0..<count {
            dm.addBlock(Fx.loop(k), number: Fx.loopNumber(k), size: Fx.liveSectors)
            dm.addBlock(Fx.cow(k), number: Fx.cowNumber(k), size: Fx.cowSectors)
        }
        for k in 0..<count { dm.addDevice(Fx.live(k), table: Fx.original(k)) }
        for k in mounted.sorted() { dm.mount(Fx.live(k), at: Fx.mountPoint(k)) }
        manager = SnapshotManager(kernel: dm, store: store)
        manager.journal = Logger(label: "dmsnap.journal") { _ in SwiftLogNoOpLogHandler() }
        manager.pollInterval = .milliseconds(1)
        let warnings = warnings
        manager.logger = .sink { event in
            if event.level == .trace { return }
            warnings.all.append("\(event.message)")
        }
    }

    convenience init(_ config: SetConfig) {
        self.init(devices: config.devices, mounted: Set(config.mounted))
    }

    var all: [Int] { Array(0..<count) }

    func request(_ set: String = "s", _ devices: [Int]? = nil, chunk: String? = nil, force: Bool = false) -> TakeRequest {
        TakeRequest(set: set, pairs: (devices ?? all).map { (Fx.live($0).value, Fx.cow($0)) }, chunkSize: chunk, force: force)
    }

    /// The view `SnapshotManager.take` plans from (device paths looked up, COW paths probed too).
    func view(for request: TakeRequest) throws -> KernelView {
        let lookups = request.lookups
        var view = try KernelView.read(dm, store: store, paths: lookups.paths, probePaths: lookups.probePaths,
                                       scope: lookups.scope, files: lookups.files)
        view.readCgroups(dm, request)
        view.readHooks(dm, request, directory: manager.hooksDirectory)
        return view
    }

    /// Takes through the manager; records an issue and returns nil on failure.
    @discardableResult
    func take(_ set: String = "s", _ devices: [Int]? = nil, chunk: String? = nil,
              sourceLocation: SourceLocation = #_sourceLocation) -> SnapshotSet? {
        switch attempt({ () throws(DMSnapError) in try manager.take(request(set, devices, chunk: chunk)) }) {
        case let .success(set): return set
        case let .failure(error):
            Issue.record("take failed: \(error)", sourceLocation: sourceLocation)
            return nil
        }
    }

    var world: World {
        World(devices: dm.devices,
              sets: store.sets.mapValues { var s = $0; s.created = Date(timeIntervalSince1970: 0); return s },
              frozen: dm.frozen)
    }

    /// True when trace line `line` is a COW release's call (wipe or zero of a COW).
    func releaseFailed(_ line: String) -> Bool {
        ["wipe", "zero"].contains(Fx.verb(line)) && all.contains { line.hasSuffix(Fx.cow($0)) || line.contains("\(Fx.cow($0)) ") }
    }

    /// After a plan that ended although a COW could not be released: one warning says so, the
    /// devices are as before the take, the set is gone.
    func expectWarnedRelease(_ pristine: World, _ context: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(warnings.all.count == 1 && warnings.all[0].contains("COW still carries a snapshot header"),
                "\(context): \(warnings.all)", sourceLocation: sourceLocation)
        #expect(world.devices == pristine.devices, "\(context)\n\(world)", sourceLocation: sourceLocation)
        #expect(store.sets.isEmpty, "\(context)", sourceLocation: sourceLocation)
    }

    /// Trace lines of calls that change something.
    var mutations: [String] { dm.trace.filter { !Fx.isRead($0) } }

    func baseNumber(_ k: Int) -> DeviceNumber? { dm.device(Fx.base(k))?.number }

    /// The table device K runs while its snapshot is active (merge: while merging).
    func snapshotTable(_ k: Int, chunk: UInt64 = 8, merge: Bool = false) -> Table? {
        guard let base = baseNumber(k) else { return nil }
        return mkTable("0 131072 \(merge ? "snapshot-merge" : "snapshot") \(base) \(Fx.cowNumber(k)) P \(chunk)")
    }

    /// Never a device suspended, never a filesystem frozen.
    func expectSafe(_ context: String = "", sourceLocation: SourceLocation = #_sourceLocation) {
        let suspended = dm.devices.filter(\.value.suspended).keys.map(\.value).sorted()
        #expect(suspended.isEmpty, "left suspended: \(suspended) \(context)", sourceLocation: sourceLocation)
        #expect(dm.frozen.isEmpty, "left frozen: \(dm.frozen.sorted()) \(context)", sourceLocation: sourceLocation)
    }

    /// For a fault sweep: the plan step reported failed is the call that failed (call `i` of the
    /// trace), or, for a read, one the executor made while running the plan (after a change).
    func expectStepFailure(_ e: ExecutionError, at i: Int, _ context: String,
                           sourceLocation: SourceLocation = #_sourceLocation) {
        let line = i < dm.trace.count ? dm.trace[i] : "(not reached)"
        if Fx.isRead(line) {
            #expect(dm.trace.prefix(i).contains { !Fx.isRead($0) },
                    "a read before any change reported as a failed step \(context): \(e)", sourceLocation: sourceLocation)
        } else {
            #expect(fxVerbs(e.step).contains(Fx.verb(line)), "\(context): \(e)", sourceLocation: sourceLocation)
        }
    }

    /// Runs `ExecutionError.fixCommands` against the fake the way an admin would type them.
    /// Returns the commands that failed (or could not be understood).
    @discardableResult
    func runFixCommands(_ commands: [String]) -> [String] {
        var failed: [String] = []
        for command in commands {
            let head = command.split(separator: "'", maxSplits: 1).first.map(String.init) ?? command
            let words = head.split(separator: " ").map(String.init)
            let quoted = command.firstIndex(of: "'").flatMap { open in
                command.lastIndex(of: "'").map { close in
                    String(command[command.index(after: open)..<close]).replacingOccurrences(of: "\\n", with: "\n")
                }
            }
            func option(_ prefix: String) -> String? { words.first { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) } }
            do {
                switch (words.first ?? "", words.count > 1 ? words[1] : "") {
                case ("dmsetup", "clear"): try dm.clearInactive(try DeviceName(words[2]))
                case ("dmsetup", "remove"): try dm.remove(try DeviceName(words[2]))
                case ("dmsetup", "resume"): try dm.resume(try DeviceName(words[2]))
                case ("dmsetup", "suspend"): try dm.suspend(try DeviceName(words.last!), lockfs: !words.contains("--nolockfs"))
                case ("dmsetup", "load"):
                    try dm.load(try DeviceName(words[2]), table: try Table(parsing: quoted ?? ""))
                case ("dmsetup", "create"):
                    let uuid = words.firstIndex(of: "-u").map { words[$0 + 1] } ?? ""
                    try dm.create(try DeviceName(words[2]), uuid: uuid, table: try Table(parsing: quoted ?? ""), hidden: true)
                case ("fsfreeze", "-u"): try dm.thaw(words[2])
                case ("fsfreeze", "-f"): try dm.freeze(words[2])
                case ("dd", _):
                    guard let path = option("of="), let bytes = option("bs=").flatMap(Int.init) else { throw FixError() }
                    try dm.zeroHeader(path, bytes: bytes)
                case ("sync", "-f"): try dm.syncFilesystem(words[2])
                case ("rm", _):
                    guard let file = words.last?.split(separator: "/").last, file.hasSuffix(".json") else { throw FixError() }
                    try store.delete(try SetName(String(file.dropLast(5))))
                default: throw FixError()
                }
            } catch {
                failed.append("\(command) → \(error)")
            }
        }
        return failed
    }

    private struct FixError: Error {}
}

final class Lines: @unchecked Sendable {
    var all: [String] = []
}

/// Runs a throwing lifecycle call, keeping its typed error.
func attempt<T>(_ body: () throws(DMSnapError) -> T) -> Result<T, DMSnapError> {
    do { return .success(try body()) } catch { return .failure(error) }
}

extension Result where Failure == DMSnapError {
    var refusal: PlanError? { if case let .failure(.refused(e)) = self { e } else { nil } }
    var executionError: ExecutionError? { if case let .failure(.failed(e)) = self { e } else { nil } }
    var isSuccess: Bool { if case .success = self { true } else { false } }
}

// MARK: - terse forms for tests

/// `e?.errno == ENXIO`: an optional Errno against a libc constant.
func == (a: Errno?, b: Int32) -> Bool { a?.rawValue == b }

extension KernelError {
    /// A kernel error with a libc errno constant.
    init(call: String, device: String, errno: Int32, detail: String = "") {
        self.init(call: call, device: device, errno: Errno(rawValue: errno), detail: detail)
    }
}

extension TargetLine {
    /// A target line from its type and parameter text, parsed as the kernel's would be.
    init(start: Sectors, length: Sectors, type: String, params: String) {
        do {
            self.init(start: start, length: length,
                      try TargetParams(type: type, fields: params.split(separator: " ").map(String.init)))
        } catch { fatalError("bad test target \(type) \(params): \(error.why)") }
    }
}

extension Logger {
    /// A logger whose trace messages go to `sink`.
    static func capturing(_ sink: @escaping @Sendable (String) -> Void) -> Logger {
        .sink { if $0.level == .trace { sink($0.message.description) } }
    }
}
