import DMSnap
import DMSnapTesting
import FoundationEssentials
import Testing

/// Hooks around a take (issue 16): when they run (never inside the window), their environment,
/// what a failure does, what is refused.
@Suite("Hooks around a take")
struct HookTests {
    static func fixture() -> SnapFixture {
        let fx = SnapFixture(devices: 2, mounted: [0, 1])
        fx.dm.executables = ["lock-db", "unlock-db", "sh"]
        fx.manager.hooksDirectory = "/etc/dmsnap/hooks.d"
        return fx
    }

    static func take(_ fx: SnapFixture, pre: [String] = ["lock-db --wait"], post: [String] = ["unlock-db"]) -> Result<SnapshotSet, DMSnapError> {
        var r = fx.request()
        r.preFreeze = pre
        r.postThaw = post
        return attempt { () throws(DMSnapError) in try fx.manager.take(r) }
    }

    @Test func preHooksRunBeforeTheFirstChangeAndPostHooksAfterTheLastThaw() throws {
        let fx = Self.fixture()
        fx.dm.hookDropIns["/etc/dmsnap/hooks.d"] = ["/etc/dmsnap/hooks.d/10-a", "/etc/dmsnap/hooks.d/20-b"]
        let set = try Self.take(fx).get()
        let lines = fx.dm.trace
        let firstChange = try #require(lines.firstIndex { !Fx.isRead($0) && !$0.hasPrefix("hook") })
        let lastThaw = try #require(lines.lastIndex { $0.hasPrefix("thaw") })
        let pre = lines.indices.filter { lines[$0].hasPrefix("hook") && lines[$0].hasSuffix("pre-freeze") }
        let post = lines.indices.filter { lines[$0].hasPrefix("hook") && lines[$0].hasSuffix("post-thaw") }
        #expect(pre.count == 3 && post.count == 3)
        #expect(pre.allSatisfy { $0 < firstChange }, "\(lines)")
        #expect(post.allSatisfy { $0 > lastThaw }, "\(lines)")
        // order: the commands given, then the drop-ins in name order, which get the phase
        #expect(fx.dm.hookRuns.map(\.argv) == [["lock-db", "--wait"], ["/etc/dmsnap/hooks.d/10-a", "pre-freeze"], ["/etc/dmsnap/hooks.d/20-b", "pre-freeze"],
                                                ["unlock-db"], ["/etc/dmsnap/hooks.d/10-a", "post-thaw"], ["/etc/dmsnap/hooks.d/20-b", "post-thaw"]])
        let env = fx.dm.hookRuns[0].environment
        #expect(env["DMSNAP_SET"] == "s" && env["DMSNAP_PHASE"] == "pre-freeze")
        #expect(env["DMSNAP_DEVICES"] == "\(Fx.live(0)) \(Fx.live(1))")
        #expect(fx.dm.hookRuns[3].environment["DMSNAP_RESULT"] == "taken")
        #expect(set.hooks?.count == 6)
        #expect(fx.manager.hookFailures.isEmpty)
    }

    @Test func aFailingPreHookTakesNothingAndItsPostHookStillRuns() throws {
        let fx = Self.fixture()
        fx.dm.hookOutcomes["lock-db"] = ProgramOutcome(exitCode: 2)
        let before = fx.world
        let r = Self.take(fx)
        guard case let .failure(.refused(e)) = r else { Issue.record("not refused: \(r)"); return }
        #expect(e.description.contains("pre-freeze hook 'lock-db --wait' failed (exit 2); nothing was taken"))
        #expect(fx.world == before)
        #expect(fx.dm.hookRuns.map(\.argv.first) == ["lock-db", "unlock-db"])
        #expect(fx.dm.hookRuns[1].environment["DMSNAP_RESULT"] == "aborted")
    }

    @Test func aTimedOutPreHookTakesNothing() {
        let fx = Self.fixture()
        fx.dm.hookOutcomes["lock-db"] = ProgramOutcome(exitCode: nil, signal: 9, timedOut: true)
        guard case let .failure(.refused(e)) = Self.take(fx) else { Issue.record("not refused"); return }
        #expect(e.description.contains("timed out"))
    }

    @Test func aFailingTakeStillRunsThePostHooks() {
        let fx = Self.fixture()
        fx.dm.failWhen = { $0.hasPrefix("suspend") }
        guard case .failure(.failed) = Self.take(fx) else { Issue.record("did not fail"); return }
        #expect(fx.dm.hookRuns.last?.argv == ["unlock-db"])
        #expect(fx.dm.hookRuns.last?.environment["DMSNAP_RESULT"] == "failed")
    }

    @Test func aFailingPostHookIsReportedAndTheSetStays() throws {
        let fx = Self.fixture()
        fx.dm.hookOutcomes["unlock-db"] = ProgramOutcome(exitCode: 1)
        let set = try Self.take(fx).get()
        #expect(fx.store.sets[set.name] != nil)
        #expect(fx.manager.hookFailures == ["post-thaw hook 'unlock-db' failed (exit 1)"])
    }

    @Test func aHookThatIsNotAProgramIsRefusedBeforeAnythingRuns() {
        let fx = Self.fixture()
        let before = fx.world
        guard case let .failure(.refused(e)) = Self.take(fx, pre: ["lock-db"], post: ["nope-db --x"]) else { Issue.record("not refused"); return }
        #expect(e.description.contains("'nope-db' is not an executable program"))
        #expect(fx.dm.hookRuns.isEmpty)
        #expect(fx.world == before)
    }

    @Test func wordsSplitLikeAShellWithoutOne() throws {
        #expect(try ShellWords.split("psql -c 'select 1; select 2'") == ["psql", "-c", "select 1; select 2"])
        #expect(try ShellWords.split(#"a "b \"c\"" d\ e"#) == ["a", #"b "c""#, "d e"])
        #expect(throws: ModelError.self) { try ShellWords.split("a 'b") }
        #expect(throws: ModelError.self) { try ShellWords.split("   ") }
    }
}
