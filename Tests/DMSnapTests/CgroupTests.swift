import DMSnap
import DMSnapTesting
import FoundationEssentials
import Testing

/// `take --freeze-cgroup` / `--freeze-unit` (issue 16) on the in-memory kernel: where the
/// freeze goes in the plan, that every path thaws, what is refused.
@Suite("Freezing cgroups around a take")
struct CgroupTests {
    static let app = "/sys/fs/cgroup/app.slice/db.service"

    static func fixture() -> SnapFixture {
        let fx = SnapFixture(devices: 2, mounted: [0, 1])
        fx.dm.cgroupDirs[app] = CgroupFacts(path: app, hasFreezer: true, isRoot: false, holdsSelf: false, processes: 3)
        fx.dm.unitCgroups["db.service"] = app
        return fx
    }

    static func take(_ fx: SnapFixture, cgroups: [String] = [app], units: [String] = []) -> Result<SnapshotSet, DMSnapError> {
        var r = fx.request()
        r.cgroups = cgroups
        r.units = units
        return attempt { () throws(DMSnapError) in try fx.manager.take(r) }
    }

    @Test func theCgroupIsFrozenBeforeTheSyncsAndThawedAfterTheFilesystems() throws {
        let fx = Self.fixture()
        let set = try Self.take(fx).get()
        #expect(set.cgroups == [Self.app])
        #expect(fx.dm.frozenCgroups.isEmpty)
        let verbs = fx.dm.trace.map(Fx.verb)
        let freeze = try #require(verbs.firstIndex(of: "freezecg"))
        let sync = try #require(verbs.firstIndex(of: "syncfs"))
        let lastThaw = try #require(verbs.lastIndex(of: "thaw"))
        let thawcg = try #require(verbs.lastIndex(of: "thawcg"))
        #expect(freeze < sync && lastThaw < thawcg)
        #expect(fx.store.sets[set.name]?.cgroups == [Self.app])
        #expect(fx.store.sets[set.name]?.cgroupsFrozenMilliseconds != nil)
        // the guardian knows the cgroup
        #expect(fx.dm.guardianEvents.contains { $0.event.hasSuffix("cgroups \(Self.app)") })
    }

    @Test func aUnitIsFrozenByItsCgroup() throws {
        let fx = Self.fixture()
        let set = try Self.take(fx, cgroups: [], units: ["db.service"]).get()
        #expect(set.cgroups == [Self.app])
    }

    /// A failure at every call of the take: the cgroup is never left frozen.
    @Test func everyFailureThawsTheCgroup() throws {
        let probe = Self.fixture()
        _ = try Self.take(probe).get()
        for i in 0..<probe.dm.trace.count {
            let fx = Self.fixture()
            fx.dm.failAtCall = i
            _ = Self.take(fx)
            #expect(fx.dm.frozenCgroups.isEmpty, "call \(i) (\(probe.dm.trace[i])): the cgroup is left frozen")
            #expect(fx.dm.frozen.isEmpty, "call \(i): a filesystem is left frozen")
        }
    }

    struct Bad: Sendable, CustomTestStringConvertible {
        var name: String
        var cgroups: [String] = []
        var units: [String] = []
        var mentions: String
        var facts: CgroupFacts?
        var testDescription: String { name }
    }

    static let bad: [Bad] = [
        Bad(name: "missing", cgroups: ["/sys/fs/cgroup/nope"], mentions: "no such cgroup directory"),
        Bad(name: "root", cgroups: ["/sys/fs/cgroup"], mentions: "is the root cgroup",
            facts: CgroupFacts(path: "/sys/fs/cgroup", hasFreezer: false, isRoot: true, holdsSelf: true, processes: 9)),
        Bad(name: "v1", cgroups: ["/sys/fs/cgroup/freezer/x"], mentions: "cgroup v1 is not supported",
            facts: CgroupFacts(path: "/sys/fs/cgroup/freezer/x", hasFreezer: false, isRoot: false, holdsSelf: false, processes: 1)),
        Bad(name: "dmsnap's own", cgroups: ["/sys/fs/cgroup/user.slice"], mentions: "holds dmsnap itself",
            facts: CgroupFacts(path: "/sys/fs/cgroup/user.slice", hasFreezer: true, isRoot: false, holdsSelf: true, processes: 4)),
        Bad(name: "unknown unit", units: ["nope.service"], mentions: "no such unit"),
    ]

    @Test(arguments: bad) func refused(_ c: Bad) throws {
        let fx = Self.fixture()
        if let f = c.facts { fx.dm.cgroupDirs[f.path] = f }
        let before = fx.world
        fx.dm.resetTrace()
        let r = Self.take(fx, cgroups: c.cgroups, units: c.units)
        guard case let .failure(.refused(e)) = r else { Issue.record("not refused: \(r)"); return }
        #expect(e.description.contains(c.mentions), "\(e)")
        #expect(fx.world == before)
        #expect(fx.dm.trace.allSatisfy(Fx.isRead), "\(fx.dm.trace.filter { !Fx.isRead($0) })")
    }

    @Test func aUnitThatDoesNotRunIsRefused() {
        let fx = Self.fixture()
        fx.dm.cgroupDirs[Self.app]?.processes = 0
        guard case let .failure(.refused(e)) = Self.take(fx, cgroups: [], units: ["db.service"]) else { Issue.record("not refused"); return }
        #expect(e.description.contains("is not running"))
    }

    @Test func recoveringAnInterruptedTakeThawsTheCgroup() throws {
        let fx = Self.fixture()
        // killed after the freezes: the plan stops at the first suspend and never rolls back
        fx.dm.failWhen = { $0.hasPrefix("suspend") }
        _ = Self.take(fx)
        fx.dm.failWhen = nil
        // what a SIGKILL leaves (the executor rolled back here; put the state back by hand)
        try fx.dm.freezeCgroup(Self.app, timeout: nil)
        var set = try Self.take(Self.fixture()).get()
        set.phase = .taking
        try fx.store.save(set)
        _ = try attempt { () throws(DMSnapError) in try fx.manager.recover("s") }.get()
        #expect(fx.store.sets.isEmpty)
        #expect(fx.dm.frozenCgroups.isEmpty)
    }
}
