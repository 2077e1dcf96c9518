import Foundation
import Testing
@testable import DMSnap
@testable import DMSnapModel
@testable import DMSnapPlanning
@testable import DMSnapKernel
@testable import DMSnapStore
import DMSnapTesting
import SystemPackage

// MARK: - the executor on hand-made plans

@Suite("Executor: undo stack")
struct ExecutorUndoTests {
    let fx = SnapFixture(devices: 1, mounted: [0])
    let live = Fx.live(0)
    let scratch = mkName("scratch")
    let mp = Fx.mountPoint(0)

    func run(_ plan: Plan, failing: @escaping @Sendable (String) -> Bool) -> ExecutionError? {
        fx.dm.resetTrace()
        fx.dm.failWhen = failing
        defer { fx.dm.failWhen = nil }
        do {
            try fx.manager.executor.run(plan)
            Issue.record("plan did not fail")
            return nil
        } catch {
            return error
        }
    }

    var createScratch: Step { Step(.create(scratch, uuid: "", table: mkTable("0 8 error"), hidden: true), undo: [.remove(scratch)]) }
    /// The table a plan loads and swaps in (a stand-in for a snapshot table).
    let next = mkTable("0 131072 zero")
    /// A suspend's undo, as the planner writes it: the table that was live, then resume.
    var suspendUndo: [Action] { [.load(live, Fx.original(0)), .resume(live)] }

    @Test func beforeCommitEverythingIsUndoneInReverse() throws {
        let plan = Plan(steps: [
            createScratch,
            Step(.load(live, next), undo: [.clearInactive(live)]),
            Step(.freeze(mp), undo: [.thaw(mp)]),
            Step(.suspend(live, lockfs: false), undo: suspendUndo),
            Step(.syncFilesystem(mp)),
            Step(.resume(live)),
        ])
        let e = try #require(run(plan) { $0 == "syncfs /mnt/0" })
        #expect(e.step == .syncFilesystem(mp))
        #expect(!e.committed)
        #expect(e.rolledBack)
        #expect(e.leftovers.isEmpty)
        #expect(e.cause.description.contains("injected"))
        #expect(e.description.hasSuffix("everything was rolled back"))
        #expect(fx.dm.trace == ["create scratch  hidden", "load vg0-live zero", "freeze /mnt/0", "suspend vg0-live nolockfs",
                                "syncfs /mnt/0",
                                "load vg0-live linear", "resume vg0-live", "thaw /mnt/0", "clear vg0-live", "remove scratch"])
        fx.expectSafe()
        #expect(fx.dm.device(live)?.live == Fx.original(0))
        #expect(fx.dm.device(live)?.inactive == nil)
        #expect(fx.dm.device(scratch) == nil)
    }

    @Test func afterCommitOnlySuspendsAndFreezesAreUndone() throws {
        let plan = Plan(steps: [
            createScratch,
            Step(.load(live, next), undo: [.clearInactive(live)]),
            Step(.freeze(mp), undo: [.thaw(mp)]),
            Step(.suspend(live, lockfs: false), undo: suspendUndo),
            Step(.syncFilesystem(mp)),
        ], commitIndex: 3)
        let e = try #require(run(plan) { $0 == "syncfs /mnt/0" })
        #expect(e.committed)
        #expect(!e.rolledBack)
        #expect(!e.rollbackIncomplete)
        #expect(e.description.contains("after the point of no return"))
        #expect(Array(fx.dm.trace.suffix(4)) == ["syncfs /mnt/0", "load vg0-live linear", "resume vg0-live", "thaw /mnt/0"])
        #expect(!fx.dm.trace.contains("clear vg0-live"), "a load is not undone after commit")
        #expect(fx.dm.device(scratch) != nil, "a committed plan keeps what it made")
        fx.expectSafe()
    }

    @Test func resumeAndThawEndTheNeedToUndoSuspendAndFreeze() throws {
        let plan = Plan(steps: [
            Step(.freeze(mp), undo: [.thaw(mp)]),
            Step(.suspend(live, lockfs: false), undo: suspendUndo),
            Step(.resume(live)),
            Step(.thaw(mp)),
            Step(.syncFilesystem(mp)),
        ], commitIndex: 0)
        let e = try #require(run(plan) { $0 == "syncfs /mnt/0" })
        #expect(e.committed)
        #expect(e.leftovers.isEmpty, "\(e.leftovers)")
        #expect(fx.dm.trace.last == "syncfs /mnt/0", "nothing to undo: \(fx.dm.trace)")
        fx.expectSafe()
    }

    /// The suspend's undo fails to load the live table back: the resume is still tried (it then
    /// swaps in the table the plan loaded), later compensations still run, and the report carries
    /// the failed load followed by the resume that must follow it.
    @Test func everyCompensationIsTriedAndFailuresAreReported() throws {
        let plan = Plan(steps: [
            createScratch,
            Step(.load(live, next), undo: [.clearInactive(live)]),
            Step(.freeze(mp), undo: [.thaw(mp)]),
            Step(.suspend(live, lockfs: false), undo: suspendUndo),
            Step(.syncFilesystem(mp)),
        ])
        let e = try #require(run(plan) { $0 == "syncfs /mnt/0" || $0 == "load vg0-live linear" || $0 == "thaw /mnt/0" })
        #expect(e.rollbackIncomplete)
        #expect(!e.rolledBack)
        #expect(e.leftovers.map(\.action) == [.load(live, Fx.original(0)), .thaw(mp)])
        #expect(e.leftovers.map(\.then) == [[.resume(live)], []])
        #expect(e.leftovers.allSatisfy { $0.error.description.contains("injected") })
        #expect(e.fixCommands == ["dmsetup load vg0-live --table '0 131072 linear 7:0 0'", "dmsetup resume vg0-live",
                                  "fsfreeze -u /mnt/0"])
        #expect(e.description.contains("rollback incomplete"))
        let failedLoad = try #require(fx.dm.trace.firstIndex(of: "load vg0-live linear"))
        #expect(fx.dm.trace[failedLoad + 1] == "resume vg0-live", "resume must follow a failed load: \(fx.dm.trace)")
        #expect(fx.dm.device(scratch) == nil, "compensations after a failed one still run")
        #expect(fx.dm.device(live)?.suspended == false)
        #expect(fx.dm.device(live)?.live == next, "the forced resume swapped in the plan's table")
        #expect(fx.dm.frozen == [mp])
        #expect(fx.runFixCommands(e.fixCommands).isEmpty)
        #expect(fx.dm.device(live)?.live == Fx.original(0), "the fix commands restore the live table")
        #expect(fx.dm.device(live)?.inactive == nil)
        fx.expectSafe()
    }

    /// `then` is what follows the failed action in its own compensation group — not what came
    /// before it, nor other groups.
    @Test func thenIsTheRestOfTheFailedGroup() throws {
        func plan() -> Plan {
            Plan(steps: [
                Step(.load(live, next), undo: [.clearInactive(live)]),
                Step(.suspend(live, lockfs: true), undo: [.resume(live)]),
                Step(.resume(live), undo: [.load(live, Fx.original(0)), .suspend(live, lockfs: false), .resume(live)]),
                Step(.syncFilesystem(mp)),
            ])
        }
        let e = try #require(run(plan()) { $0 == "syncfs /mnt/0" || $0 == "suspend vg0-live nolockfs" })
        #expect(e.leftovers.map(\.action) == [.suspend(live, lockfs: false)])
        #expect(e.leftovers.map(\.then) == [[.resume(live)]])
        #expect(e.fixCommands == ["dmsetup suspend --nolockfs vg0-live", "dmsetup resume vg0-live"])
        #expect(fx.dm.device(live)?.live == Fx.original(0), "the resume after the failed suspend still ran")
        fx.expectSafe()

        // Two failures in one group (the suspend and the resume after it, call 6): each is
        // reported with the rest of the group after it, so the resume is listed twice.
        fx.dm.failAtCall = 6
        let e2 = try #require(run(plan()) { $0 == "syncfs /mnt/0" || $0 == "suspend vg0-live nolockfs" })
        fx.dm.failAtCall = nil
        // The load step's clear is skipped: the failed group's table must stay for its fix.
        #expect(Array(fx.dm.trace[3...]) == ["syncfs /mnt/0", "load vg0-live linear", "suspend vg0-live nolockfs", "resume vg0-live"])
        #expect(e2.leftovers.map(\.action) == [.suspend(live, lockfs: false), .resume(live)])
        #expect(e2.leftovers.map(\.then) == [[.resume(live)], []])
        #expect(e2.fixCommands == ["dmsetup suspend --nolockfs vg0-live", "dmsetup resume vg0-live", "dmsetup resume vg0-live"])
        #expect(fx.runFixCommands(e2.fixCommands).isEmpty)
        #expect(fx.dm.device(live)?.live == Fx.original(0), "the fix commands bring the original table back")
        #expect(fx.dm.device(live)?.inactive == nil)
        fx.expectSafe()

        // A clear that would have failed is not even tried after its device's group failed.
        let e3 = try #require(run(plan()) { ["syncfs /mnt/0", "suspend vg0-live nolockfs"].contains($0) || $0 == "clear vg0-live" })
        #expect(e3.leftovers.map(\.action) == [.suspend(live, lockfs: false)])
        #expect(e3.leftovers.map(\.then) == [[.resume(live)]])
        #expect(!fx.dm.trace.dropFirst(3).contains("clear vg0-live"), "\(fx.dm.trace)")
        #expect(fx.runFixCommands(e3.fixCommands).isEmpty)
        #expect(fx.dm.device(live)?.live == Fx.original(0))
        #expect(fx.dm.device(live)?.inactive == nil)
        fx.expectSafe()
    }

    @Test func storeFailuresAreReportedAndUndone() throws {
        let set = SnapshotSet(name: mkSetName("x"), created: Date(), phase: .taking, chunk: 8, members: [])
        let plan = Plan(steps: [createScratch, Step(.save(set), undo: [.deleteState(set.name)]), Step(.syncFilesystem(mp))])
        fx.store.failSave = { _ in true }
        let e = try #require(run(plan) { _ in false })
        #expect(e.step == .save(set))
        #expect(e.cause.description == "memory:x: injected")
        #expect(e.rolledBack)
        #expect(fx.dm.device(scratch) == nil)
        #expect(fx.store.sets.isEmpty)
    }

    @Test func observerSeesStepsAndCompensations() throws {
        let plan = Plan(steps: [createScratch, Step(.syncFilesystem(mp))])
        final class Seen: @unchecked Sendable { var events: [String] = [] }
        let seen = Seen()
        fx.manager.logger = .capturing { seen.events.append($0) }
        _ = run(plan) { $0.hasPrefix("syncfs") }
        // Each action is seen when it starts and when it returns, failed ones too.
        let actions: [Action] = [plan.steps[0].action, .syncFilesystem(mp), .remove(scratch)]
        #expect(seen.events == actions.flatMap { ["\($0)", "done \($0)"] })
    }
}

// MARK: - take

@Suite("Take through the manager")
struct TakeTests {
    @Test(arguments: [SetConfig(1, mounted: [0]), SetConfig(1), SetConfig(3, mounted: [0, 2])])
    func buildsTheSnapshotStack(_ c: SetConfig) throws {
        let fx = SnapFixture(c)
        let before = fx.world
        let set = try #require(fx.take(chunk: "8k"))
        #expect(set.phase == .active)
        for k in fx.all {
            let base = try #require(fx.dm.device(Fx.base(k)), "no base for vg\(k)")
            #expect(base.live == Fx.original(k))
            #expect(base.uuid == DMSnapNaming.baseUUID(set: try SetName("s"), index: k))
            #expect(base.inactive == nil)
            let live = try #require(fx.dm.device(Fx.live(k)))
            #expect(live.number == before.devices[Fx.live(k)]?.number, "the live device keeps its number")
            #expect(live.live == mkTable("0 131072 snapshot \(base.number) \(Fx.cowNumber(k)) P 16"))
            #expect(live.inactive == nil)
            #expect((fx.dm.blocks[Fx.cow(k)]?.zeroedHeader ?? 0) >= 8192, "COW header not wiped")
        }
        fx.expectSafe()
        let stored = try #require(fx.store.sets[mkSetName("s")])
        #expect(stored.phase == .active)
        #expect(stored.members.map(\.device) == fx.all.map(Fx.live))

        let status = try attempt { () throws(DMSnapError) in try fx.manager.status("s") }.get()
        #expect(status.count == 1)
        #expect(status.first?.state == .active)
        #expect(status.first?.devices.map(\.state) == fx.all.map { _ in .active })
        #expect(status.first?.devices.map(\.device) == fx.all.map { Fx.live($0).value })
        #expect(try attempt { () throws(DMSnapError) in try fx.manager.status() }.get() == status)

        // The trace: syncfs before the window; the window holds nothing but freeze/suspend/resume/thaw.
        let trace = fx.dm.trace
        let start = try #require(trace.firstIndex { ["freeze", "suspend"].contains(Fx.verb($0)) })
        let end = try #require(trace.lastIndex { ["thaw", "resume"].contains(Fx.verb($0)) })
        try #require(start < end, "\(trace)")
        let window = trace[start...end].map(Fx.verb)
        let rank = ["freeze": 0, "suspend": 1, "resume": 2, "thaw": 3]
        #expect(window.allSatisfy { rank[$0] != nil }, "window: \(Array(trace[start...end]))")
        #expect(window.compactMap { rank[$0] } == window.compactMap { rank[$0] }.sorted())
        let syncs = trace.indices.filter { Fx.verb(trace[$0]) == "syncfs" }
        #expect(syncs.count == c.mounted.count)
        #expect(syncs.allSatisfy { $0 < start })
        for k in fx.all {
            #expect(trace.contains("suspend vg\(k)-live\(c.mounted.contains(k) ? " nolockfs" : "")"))
        }
    }

    /// The take plan names the new base by path; the executor turns it into MAJ:MIN before the
    /// load, so the live table matches the record.
    @Test func takeResolvesTheBasePathBeforeLoading() throws {
        let fx = SnapFixture(devices: 1, mounted: [0])
        let result = attempt { () throws(DMSnapError) in try fx.manager.take(fx.request()) }
        #expect(result.isSuccess, "\(result)")
        #expect(fx.dm.device(Fx.live(0))?.live == fx.snapshotTable(0))
        fx.expectSafe()
    }

    static let sweep = [SetConfig(1), SetConfig(1, mounted: [0]), SetConfig(2), SetConfig(2, mounted: [0, 1]),
                        SetConfig(2, mounted: [1]), SetConfig(3), SetConfig(3, mounted: [0, 1, 2]), SetConfig(3, mounted: [0, 2])]

    @Test(arguments: sweep)
    func failureAtEveryCall(_ c: SetConfig) throws {
        let ref = SnapFixture(c)
        let pristine = ref.world
        try #require(ref.take() != nil)
        let taken = ref.world
        let calls = ref.dm.trace.count

        var outcomes: [String: Int] = [:]
        for i in 0..<calls {
            let fx = SnapFixture(c)
            fx.dm.failAtCall = i
            let result = attempt { () throws(DMSnapError) in try fx.manager.take(fx.request()) }
            fx.dm.failAtCall = nil
            let line = i < fx.dm.trace.count ? fx.dm.trace[i] : "(not reached)"
            let ctx = "[\(c), failing call \(i): \(line)]"
            fx.expectSafe(ctx)
            switch result {
            case .success:
                // Only a lookup the planner can do without may be swallowed.
                #expect(Fx.isRead(line), "injected failure of a mutating call ignored \(ctx)")
                #expect(fx.world.ignoringFingerprints == taken.ignoringFingerprints, "\(ctx)\n\(fx.world)")
                outcomes["ignored \(Fx.verb(line))", default: 0] += 1
            case let .failure(.kernel(kernelError)):
                let message = kernelError.description
                #expect(Fx.isRead(line), "\(ctx): \(message)")
                #expect(message.contains("injected"), "\(ctx): \(message)")
                #expect(fx.world == pristine, "\(ctx)\n\(fx.world)")
                outcomes["inspect", default: 0] += 1
            case let .failure(.refused(e)):
                #expect(Fx.isRead(line), "a failed \(Fx.verb(line)) reported as refused \(ctx): \(e)")
                #expect(e.description.contains(Errno.ioError.description), "\(ctx): \(e)")
                #expect(fx.world == pristine, "\(ctx)\n\(fx.world)")
                outcomes["refused after failed \(Fx.verb(line))", default: 0] += 1
            case let .failure(.failed(e)):
                fx.expectStepFailure(e, at: i, ctx)
                #expect(e.cause.description.contains("injected"), "\(ctx): \(e)")
                #expect(e.leftovers.isEmpty, "\(ctx): \(e)")
                if e.committed {
                    #expect(fx.world.devices == taken.devices, "every device runs its snapshot \(ctx)\n\(fx.world)")
                    let stored = fx.store.sets[mkSetName("s")]
                    #expect(stored != nil, "\(ctx)")
                    outcomes["failed after commit, phase \(stored?.phase.rawValue ?? "none")", default: 0] += 1
                    if stored?.phase != .active {
                        // The set says 'taking'; status calls it incomplete and points at recover.
                        let recovered = attempt { () throws(DMSnapError) in try fx.manager.recover("s") }
                        #expect(recovered.isSuccess, "recover after \(ctx): \(recovered)")
                        #expect(fx.world.ignoringFingerprints == taken.ignoringFingerprints, "recovered \(ctx)\n\(fx.world)")
                        fx.expectSafe(ctx)
                    }
                } else {
                    #expect(e.rolledBack, "\(ctx)")
                    #expect(fx.world == pristine, "rolled back \(ctx)\n\(fx.world)")
                    for k in fx.all {
                        #expect(fx.dm.device(Fx.live(k))?.live == Fx.original(k), "\(ctx)")
                        #expect(fx.dm.device(Fx.base(k)) == nil, "\(ctx)")
                    }
                    #expect(fx.store.sets.isEmpty, "\(ctx)")
                    outcomes["rolled back", default: 0] += 1
                }
            case let .failure(other):
                Issue.record("unexpected \(other) \(ctx)")
            }
        }
        print("take sweep \(c): \(calls) fault points; \(outcomes.sorted { $0.key < $1.key })")
    }

    /// A thaw failing after every device runs its snapshot: the take is done (and the thaw retried),
    /// but the executor stops, so the set stays `taking`; merge refuses and points at recover,
    /// which makes it active.
    @Test func thawFailureAfterCommitIsRecovered() throws {
        let config = SetConfig(2, mounted: [0, 1])
        let thawAt = try RollbackIncompleteTests.index(of: "thaw /mnt/0", config)
        let fx = SnapFixture(config)
        fx.dm.failAtCall = thawAt
        let result = attempt { () throws(DMSnapError) in try fx.manager.take(fx.request()) }
        fx.dm.failAtCall = nil
        let e = try #require(result.executionError)
        #expect(e.committed)
        #expect(e.step == .thaw("/mnt/0"))
        // The last changing calls (the reads after them look up the set's state for the message).
        #expect(fx.mutations.suffix(2) == ["thaw /mnt/1", "thaw /mnt/0"], "both thawed on the way out: \(fx.dm.trace)")
        #expect(e.next == "dmsnap recover s")
        #expect(e.description.hasSuffix("; to move the set on, run 'dmsnap recover s'"))
        fx.expectSafe()
        for k in fx.all { #expect(fx.dm.device(Fx.live(k))?.live == fx.snapshotTable(k)) }
        #expect(fx.store.sets[mkSetName("s")]?.phase == .taking)
        #expect(try attempt { () throws(DMSnapError) in try fx.manager.status("s") }.get().first?.state == .incomplete)
        let merge = attempt { () throws(DMSnapError) in try fx.manager.merge("s") }
        #expect(merge.refusal?.description == "s: set was interrupted while taking; run 'dmsnap recover s'")
        #expect(attempt { () throws(DMSnapError) in try fx.manager.recover("s") }.isSuccess)
        #expect(fx.store.sets[mkSetName("s")]?.phase == .active)
        #expect(attempt { () throws(DMSnapError) in try fx.manager.merge("s") }.isSuccess)
        #expect(fx.store.sets.isEmpty)
        fx.expectSafe()
    }

    @Test func storeFailuresDuringTake() throws {
        // Recording the set before the window fails: everything is rolled back.
        let fx = SnapFixture(devices: 1, mounted: [0])
        let before = fx.world
        fx.store.failSave = { $0.phase == .taking }
        let e1 = try #require(attempt { () throws(DMSnapError) in try fx.manager.take(fx.request()) }.executionError)
        #expect(e1.rolledBack)
        #expect(fx.world == before)
        #expect(!fx.dm.trace.contains { ["freeze", "suspend"].contains(Fx.verb($0)) }, "the window never opened")

        // Recording it active fails after commit: the snapshot stands, nothing is frozen.
        let fx2 = SnapFixture(devices: 1, mounted: [0])
        fx2.store.failSave = { $0.phase == .active }
        let e2 = try #require(attempt { () throws(DMSnapError) in try fx2.manager.take(fx2.request()) }.executionError)
        #expect(e2.committed)
        fx2.expectSafe()
        #expect(fx2.dm.device(Fx.live(0))?.live == fx2.snapshotTable(0))
        #expect(fx2.store.sets[mkSetName("s")]?.phase == .taking)
    }
}

// MARK: - rollback incomplete

@Suite("Rollback incomplete")
struct RollbackIncompleteTests {
    /// The trace index of `line` in a successful take of `config`.
    static func index(of line: String, _ config: SetConfig) throws -> Int {
        let ref = SnapFixture(config)
        try #require(ref.take() != nil)
        return try #require(ref.dm.trace.firstIndex(of: line))
    }

    static func isFixCommand(_ command: String) -> Bool {
        ["dmsetup ", "fsfreeze ", "dd if=/dev/zero "].contains { command.hasPrefix($0) }
    }

    @Test func failedClearAndRemoveAreReportedWithFixCommands() throws {
        let fx = SnapFixture(devices: 1, mounted: [0])
        let before = fx.world
        fx.dm.failWhen = { $0.hasPrefix("suspend vg0-live") || $0 == "clear vg0-live" }
        let result = attempt { () throws(DMSnapError) in try fx.manager.take(fx.request()) }
        fx.dm.failWhen = nil
        let e = try #require(result.executionError, "\(result)")
        #expect(e.step == .suspend(Fx.live(0), lockfs: false))
        #expect(!e.committed)
        #expect(e.rollbackIncomplete)
        // The inactive snapshot table could not be cleared, so the base it names cannot be removed.
        #expect(e.leftovers.map(\.action) == [.clearInactive(Fx.live(0)), .remove(Fx.base(0))])
        #expect(e.fixCommands == ["dmsetup clear vg0-live", "dmsetup remove vg0-live-dmsnap-base"])
        #expect(e.fixCommands.allSatisfy(Self.isFixCommand))
        #expect(e.description.contains("rollback incomplete: clear inactive table of vg0-live failed"))
        fx.expectSafe()
        #expect(fx.store.sets.isEmpty)

        #expect(fx.runFixCommands(e.fixCommands).isEmpty)
        #expect(fx.world == before, "the fix commands finish the rollback\n\(fx.world)")
    }

    @Test func failedResumeInTheUndoOfAResume() throws {
        let config = SetConfig(2)
        let resume1 = try Self.index(of: "resume vg1-live", config)
        let fx = SnapFixture(config)
        let before = fx.world
        final class Count: @unchecked Sendable { var n = 0 }
        let seen = Count()
        fx.dm.failAtCall = resume1
        // The second "resume vg0-live": the last action of its undo group.
        fx.dm.failWhen = { line in
            guard line == "resume vg0-live" else { return false }
            seen.n += 1
            return seen.n == 2
        }
        let result = attempt { () throws(DMSnapError) in try fx.manager.take(fx.request()) }
        fx.dm.failAtCall = nil
        fx.dm.failWhen = nil
        let e = try #require(result.executionError, "\(result)")
        #expect(e.step == .resume(Fx.live(1)))
        #expect(!e.committed)
        #expect(e.leftovers.first?.action == .resume(Fx.live(0)))
        #expect(e.leftovers.first?.then == [])
        #expect(e.fixCommands.first == "dmsetup resume vg0-live")
        #expect(e.fixCommands.allSatisfy(Self.isFixCommand), "\(e.fixCommands)")
        #expect(fx.dm.device(Fx.live(1))?.live == Fx.original(1), "vg1 was rolled back")
        let failed = fx.runFixCommands(e.fixCommands)
        fx.expectSafe()
        #expect(failed.isEmpty, "\(failed)")
        #expect(fx.dm.device(Fx.live(0))?.live == Fx.original(0))
        #expect(fx.world == before, "\(fx.world)")
    }

    @Test func failedThawIsReportedAsFsfreezeCommand() throws {
        let fx = SnapFixture(devices: 2, mounted: [0, 1])
        let before = fx.world
        fx.dm.failWhen = { $0 == "suspend vg1-live nolockfs" || $0 == "thaw /mnt/1" }
        let e = try #require(attempt { () throws(DMSnapError) in try fx.manager.take(fx.request()) }.executionError)
        fx.dm.failWhen = nil
        #expect(e.rollbackIncomplete)
        #expect(e.leftovers.map(\.action) == [.thaw("/mnt/1")])
        #expect(e.fixCommands == ["fsfreeze -u /mnt/1"])
        #expect(fx.dm.frozen == ["/mnt/1"])
        #expect(fx.dm.devices.values.allSatisfy { !$0.suspended })
        #expect(fx.runFixCommands(e.fixCommands).isEmpty)
        #expect(fx.world == before)
    }

    @Test func failedResumeIsReported() throws {
        let fx = SnapFixture(devices: 1, mounted: [0])
        let before = fx.world
        fx.dm.failWhen = { $0 == "resume vg0-live" }
        let e = try #require(attempt { () throws(DMSnapError) in try fx.manager.take(fx.request()) }.executionError)
        fx.dm.failWhen = nil
        #expect(e.step == .resume(Fx.live(0)))
        #expect(e.leftovers.map(\.action) == [.resume(Fx.live(0))])
        #expect(e.fixCommands == ["dmsetup resume vg0-live"])
        #expect(fx.dm.frozen.isEmpty, "the thaw still ran")
        #expect(fx.runFixCommands(e.fixCommands).isEmpty)
        #expect(fx.world == before)
    }

    @Test func failedUndoDuringMergeFinish() throws {
        func mergingFixture() throws -> SnapFixture {
            let fx = SnapFixture(devices: 2)
            try #require(fx.take() != nil)
            try #require(attempt { () throws(DMSnapError) in try fx.manager.merge("s", wait: false) }.isSuccess)
            fx.dm.resetTrace()
            return fx
        }
        let ref = try mergingFixture()
        try #require(attempt { () throws(DMSnapError) in try ref.manager.merge("s") }.isSuccess)
        let resumeAt = try #require(ref.dm.trace.firstIndex(of: "resume vg1-live"))

        // The finish plan fails resuming vg1-live; putting vg0-live back on snapshot-merge fails too.
        let fx = try mergingFixture()
        let merging = fx.world
        fx.dm.failAtCall = resumeAt
        fx.dm.failWhen = { $0 == "load vg0-live snapshot-merge" }
        let e = try #require(attempt { () throws(DMSnapError) in try fx.manager.merge("s") }.executionError)
        fx.dm.failAtCall = nil
        fx.dm.failWhen = nil
        #expect(e.step == .resume(Fx.live(1)))
        #expect(!e.committed)
        let mergeTable = try #require(merging.devices[Fx.live(0)]?.live)
        #expect(e.leftovers.map(\.action) == [.load(Fx.live(0), mergeTable)])
        #expect(e.leftovers.map(\.then) == [[.suspend(Fx.live(0), lockfs: true), .resume(Fx.live(0))]])
        #expect(e.fixCommands == ["dmsetup load vg0-live --table '\(mergeTable)'", "dmsetup suspend vg0-live", "dmsetup resume vg0-live"],
                "\(e.fixCommands)")
        fx.expectSafe()
        #expect(fx.dm.device(Fx.live(1))?.live == merging.devices[Fx.live(1)]?.live, "vg1 was put back on snapshot-merge")
        #expect(fx.dm.device(Fx.live(0))?.live == Fx.original(0), "vg0 could not be put back yet")
        #expect(fx.runFixCommands(e.fixCommands).isEmpty)
        #expect(fx.world == merging, "the fix commands (load, suspend, resume) finish the rollback\n\(fx.world)")
    }
}

// MARK: - merge

@Suite("Merge through the manager")
struct MergeTests {
    @Test func progressRisesToOneAndFinishWaitsForIt() throws {
        let fx = SnapFixture(devices: 1, mounted: [0])
        let pristine = fx.world
        try #require(fx.take() != nil)
        fx.dm.statusOverride[Fx.live(0)] = "1040/65536 24"
        var fractions: [Double] = []
        var tablesAtPoll: [String] = []
        var pollAt: [Int] = []
        let result = attempt { () throws(DMSnapError) in
            try fx.manager.merge("s") { p in
                fractions.append(p.fraction)
                pollAt.append(fx.dm.trace.count)
                tablesAtPoll.append(fx.dm.device(Fx.live(0))?.live?.targets.first?.type ?? "-")
                #expect(fx.dm.device(Fx.base(0)) != nil)
                #expect(p.done == (p.remaining == 0))
                switch fractions.count {
                case 1: fx.dm.statusOverride[Fx.live(0)] = "532/65536 24"
                case 2: fx.dm.statusOverride[Fx.live(0)] = "24/65536 24"
                default: break
                }
            }
        }
        #expect(result.isSuccess, "\(result)")
        #expect(fractions == [0, 0.5, 1])
        #expect(tablesAtPoll == ["snapshot-merge", "snapshot-merge", "snapshot-merge"])
        let restore = try #require(fx.dm.trace.firstIndex(of: "load vg0-live linear"))
        #expect(restore >= pollAt.last ?? .max, "original table loaded before the merge completed")
        #expect(fx.world.devices == pristine.devices)
        #expect(fx.store.sets.isEmpty)
        #expect((fx.dm.blocks[Fx.cow(0)]?.zeroedHeader ?? 0) >= 4096)
        fx.expectSafe()
    }

    @Test func progressOverSeveralDevices() throws {
        let fx = SnapFixture(devices: 2)
        try #require(fx.take() != nil)
        fx.dm.statusOverride[Fx.live(0)] = "316/65536 16"
        fx.dm.statusOverride[Fx.live(1)] = "116/65536 16"
        var fractions: [Double] = []
        let result = attempt { () throws(DMSnapError) in
            try fx.manager.merge("s") { p in
                fractions.append(p.fraction)
                if fractions.count == 1 {
                    #expect(p.remaining == 400)
                    #expect(p.total == 400)
                    fx.dm.statusOverride[Fx.live(1)] = "16/65536 16"
                } else {
                    fx.dm.statusOverride[Fx.live(0)] = "16/65536 16"
                }
            }
        }
        #expect(result.isSuccess)
        #expect(fractions == [0, 0.25, 1])
    }

    @Test(arguments: ["Invalid", "Overflow"])
    func invalidSnapshotIsRefused(_ status: String) throws {
        let fx = SnapFixture(devices: 2, mounted: [0])
        try #require(fx.take() != nil)
        fx.dm.statusOverride[Fx.live(1)] = status
        fx.dm.resetTrace()
        let before = fx.world
        let result = attempt { () throws(DMSnapError) in try fx.manager.merge("s") }
        let refusal = try #require(result.refusal, "\(result)")
        #expect(refusal.description.contains("vg1-live"))
        #expect(refusal.description.contains("invalid"))
        #expect(fx.mutations.isEmpty, "\(fx.mutations)")
        #expect(fx.world == before)
        let status = try attempt { () throws(DMSnapError) in try fx.manager.status("s") }.get()
        #expect(status.first?.state == .invalid)
        #expect(status.first?.devices.map(\.state) == [.active, .invalid])
    }

    @Test func noWaitLeavesItMergingAndASecondCallFinishes() throws {
        let fx = SnapFixture(devices: 2, mounted: [1])
        let pristine = fx.world
        try #require(fx.take() != nil)
        try #require(attempt { () throws(DMSnapError) in try fx.manager.merge("s", wait: false) }.isSuccess)
        #expect(fx.store.sets[mkSetName("s")]?.phase == .merging)
        for k in fx.all {
            #expect(fx.dm.device(Fx.live(k))?.live == fx.snapshotTable(k, merge: true))
            #expect(fx.dm.device(Fx.base(k)) != nil)
        }
        fx.expectSafe()
        #expect(try attempt { () throws(DMSnapError) in try fx.manager.status("s") }.get().first?.state == .merging)
        #expect(attempt { () throws(DMSnapError) in try fx.manager.merge("s") }.isSuccess)
        #expect(fx.world.devices == pristine.devices)
        #expect(fx.store.sets.isEmpty)
        #expect(attempt { () throws(DMSnapError) in try fx.manager.merge("s") }.refusal?.description == "s: no such snapshot set")
    }

    @Test func mergeFailedMidwayIsReportedAndLeftInPlace() throws {
        let fx = SnapFixture(devices: 1, mounted: [0])
        try #require(fx.take() != nil)
        fx.dm.statusOverride[Fx.live(0)] = "1040/65536 24"
        let result = attempt { () throws(DMSnapError) in
            try fx.manager.merge("s") { _ in fx.dm.statusOverride[Fx.live(0)] = "Merge failed" }
        }
        guard case let .failure(.mergeFailed(message)) = result else {
            Issue.record("expected mergeFailed, got \(result)")
            return
        }
        #expect(message.contains("vg0-live"))
        #expect(fx.store.sets[mkSetName("s")]?.phase == .merging)
        #expect(fx.dm.device(Fx.live(0))?.live == fx.snapshotTable(0, merge: true))
        fx.expectSafe()
        #expect(try attempt { () throws(DMSnapError) in try fx.manager.status("s") }.get().first?.state == .mergeFailed)
    }

    static let sweep = [SetConfig(1), SetConfig(1, mounted: [0]), SetConfig(2, mounted: [0]), SetConfig(3),
                        SetConfig(3, mounted: [0, 1, 2])]

    @Test(arguments: sweep)
    func failureAtEveryCall(_ c: SetConfig) throws {
        let ref = SnapFixture(c)
        let pristine = ref.world
        try #require(ref.take() != nil)
        let taken = ref.world
        ref.dm.resetTrace()
        try #require(attempt { () throws(DMSnapError) in try ref.manager.merge("s") }.isSuccess)
        let baseline = ref.dm.trace
        #expect(ref.world.devices == pristine.devices)
        #expect(ref.store.sets.isEmpty)
        // The start plan is the first run of mutating calls; later failures find the set merging.
        let firstChange = try #require(baseline.firstIndex { !Fx.isRead($0) })
        let startEnd = (baseline[firstChange...].firstIndex(where: Fx.isRead) ?? baseline.count) - 1
        let merging: World = try {
            let m = SnapFixture(c)
            try #require(m.take() != nil)
            try #require(attempt { () throws(DMSnapError) in try m.manager.merge("s", wait: false) }.isSuccess)
            return m.world
        }()

        var outcomes: [String: Int] = [:]
        var rerun: [String: Int] = [:]
        for i in baseline.indices {
            let fx = SnapFixture(c)
            try #require(fx.take() != nil)
            fx.dm.resetTrace()
            fx.dm.failAtCall = i
            let result = attempt { () throws(DMSnapError) in try fx.manager.merge("s") }
            fx.dm.failAtCall = nil
            let line = i < fx.dm.trace.count ? fx.dm.trace[i] : "(not reached)"
            #expect(line == baseline[i])
            let ctx = "[\(c), failing call \(i): \(line)]"
            fx.expectSafe(ctx)
            let before = i <= startEnd ? taken : merging
            var inFinishAfterCommit = false
            switch result {
            case .success where fx.releaseFailed(line):
                // The set no longer depends on its COW: a COW that cannot be released is a warning.
                fx.expectWarnedRelease(pristine, ctx)
                outcomes["COW release failed: warned, merged", default: 0] += 1
                continue
            case .success:
                Issue.record("merge succeeded despite \(ctx)")
            case let .failure(.kernel(kernelError)):
                let message = kernelError.description
                #expect(Fx.isRead(line), "\(ctx): \(message)")
                #expect(fx.world == before, "\(ctx)\n\(fx.world)")
                outcomes["inspect", default: 0] += 1
            case let .failure(.failed(e)):
                fx.expectStepFailure(e, at: i, ctx)
                #expect(e.leftovers.isEmpty, "\(ctx): \(e)")
                if e.committed {
                    inFinishAfterCommit = i > startEnd
                    outcomes[i > startEnd ? "failed after commit (finish)" : "failed after commit (start)", default: 0] += 1
                } else {
                    #expect(e.rolledBack, "\(ctx)")
                    #expect(fx.world == before, "unchanged \(ctx)\n\(fx.world)")
                    outcomes["rolled back", default: 0] += 1
                }
            case let .failure(other):
                Issue.record("unexpected \(other) \(ctx)")
            }
            // Roll forward: running merge again completes it; once the finish has committed, merge
            // refuses and points at recover, which completes it.
            let again = attempt { () throws(DMSnapError) in try fx.manager.merge("s") }
            fx.expectSafe(ctx)
            switch again {
            case .success:
                rerun["merge completes", default: 0] += 1
            case let .failure(.refused(e)) where inFinishAfterCommit && e.description.hasSuffix("run 'dmsnap recover s'"):
                let recovered = attempt { () throws(DMSnapError) in try fx.manager.recover("s") }
                #expect(recovered.isSuccess, "recover after \(ctx): \(recovered)")
                fx.expectSafe(ctx)
                rerun["merge refused, recover completes", default: 0] += 1
            case let .failure(other):
                Issue.record("re-running merge after \(ctx): \(other)")
            }
            #expect(fx.world.devices == pristine.devices, "\(ctx)\n\(fx.world)")
            #expect(fx.store.sets.isEmpty, "\(ctx)")
        }
        print("merge sweep \(c): \(baseline.count) fault points; \(outcomes.sorted { $0.key < $1.key }); re-run: \(rerun.sorted { $0.key < $1.key })")
    }

    /// Removing a base fails after every device runs its original table again: the set stays
    /// `merging`; merge then refuses ("no longer runs its snapshot; run 'dmsnap recover s'") and
    /// recover finishes the clean-up.
    @Test func finishInterruptedAfterCommitIsRecovered() throws {
        let fx = SnapFixture(devices: 2, mounted: [0])
        let pristine = fx.world
        try #require(fx.take() != nil)
        fx.dm.failWhen = { $0 == "remove vg1-live-dmsnap-base" }
        let e = try #require(attempt { () throws(DMSnapError) in try fx.manager.merge("s") }.executionError)
        fx.dm.failWhen = nil
        #expect(e.committed)
        fx.expectSafe()
        for k in fx.all { #expect(fx.dm.device(Fx.live(k))?.live == Fx.original(k)) }
        #expect(fx.store.sets[mkSetName("s")]?.phase == .merging)
        let again = attempt { () throws(DMSnapError) in try fx.manager.merge("s") }
        // vg0's base is gone already, vg1's is not.
        #expect(again.refusal?.description == "s: base device vg0-live-dmsnap-base does not exist; run 'dmsnap recover s'")
        let recovered = attempt { () throws(DMSnapError) in try fx.manager.recover("s") }
        #expect(recovered.isSuccess, "\(recovered)")
        #expect(fx.world.devices == pristine.devices)
        #expect(fx.store.sets.isEmpty)
        for k in fx.all { #expect((fx.dm.blocks[Fx.cow(k)]?.zeroedHeader ?? 0) >= 4096) }
        fx.expectSafe()
    }
}

// MARK: - discard

@Suite("Discard through the manager")
struct DiscardTests {
    @Test func refusedWhileMountedOrOpen() throws {
        let fx = SnapFixture(devices: 2, mounted: [1])
        try #require(fx.take() != nil)
        fx.dm.resetTrace()
        let before = fx.world
        let mounted = attempt { () throws(DMSnapError) in try fx.manager.discard("s") }
        #expect(mounted.refusal?.description == "vg1-live: is mounted on /mnt/1; unmount it before discarding")
        #expect(fx.mutations.isEmpty)
        #expect(fx.world == before)

        // Unmounted, but still held open (a process has it open).
        fx.dm.mountTable.removeAll { $0.mountPoint == "/mnt/1" }
        let open = attempt { () throws(DMSnapError) in try fx.manager.discard("s") }
        #expect(open.refusal?.description == "vg1-live: is open (1 user); close it before discarding")
        #expect(fx.mutations.isEmpty)
    }

    @Test func restoresTheOriginalTablesOnceUnmounted() throws {
        let fx = SnapFixture(devices: 2, mounted: [0, 1])
        try #require(fx.take() != nil)
        fx.dm.unmount("/mnt/0")
        fx.dm.unmount("/mnt/1")
        let unmounted = fx.world
        try #require(attempt { () throws(DMSnapError) in try fx.manager.discard("s") }.isSuccess)
        for k in fx.all {
            #expect(fx.dm.device(Fx.live(k))?.live == Fx.original(k))
            #expect(fx.dm.device(Fx.base(k)) == nil)
            #expect((fx.dm.blocks[Fx.cow(k)]?.zeroedHeader ?? 0) >= 4096)
            #expect(fx.dm.device(Fx.live(k))?.number == unmounted.devices[Fx.live(k)]?.number)
        }
        #expect(fx.store.sets.isEmpty)
        fx.expectSafe()
        #expect(try attempt { () throws(DMSnapError) in try fx.manager.status() }.get().isEmpty)
    }

    @Test func mergingSetCannotBeDiscarded() throws {
        let fx = SnapFixture(devices: 1)
        try #require(fx.take() != nil)
        try #require(attempt { () throws(DMSnapError) in try fx.manager.merge("s", wait: false) }.isSuccess)
        let result = attempt { () throws(DMSnapError) in try fx.manager.discard("s") }
        #expect(result.refusal?.description == "s: set is merging; a merge cannot be discarded")
    }

    @Test(arguments: [SetConfig(1), SetConfig(2), SetConfig(3)])
    func failureAtEveryCall(_ c: SetConfig) throws {
        let ref = SnapFixture(c)
        let pristine = ref.world
        try #require(ref.take() != nil)
        let taken = ref.world
        ref.dm.resetTrace()
        try #require(attempt { () throws(DMSnapError) in try ref.manager.discard("s") }.isSuccess)
        let baseline = ref.dm.trace
        #expect(ref.world.devices == pristine.devices)

        var outcomes: [String: Int] = [:]
        var rerun: [String: Int] = [:]
        for i in baseline.indices {
            let fx = SnapFixture(c)
            try #require(fx.take() != nil)
            fx.dm.resetTrace()
            fx.dm.failAtCall = i
            let result = attempt { () throws(DMSnapError) in try fx.manager.discard("s") }
            fx.dm.failAtCall = nil
            let line = i < fx.dm.trace.count ? fx.dm.trace[i] : "(not reached)"
            #expect(line == baseline[i])
            let ctx = "[\(c), failing call \(i): \(line)]"
            fx.expectSafe(ctx)
            var committed = false
            switch result {
            case .success where fx.releaseFailed(line):
                // The set no longer depends on its COW: a COW that cannot be released is a warning.
                fx.expectWarnedRelease(pristine, ctx)
                outcomes["COW release failed: warned, discarded", default: 0] += 1
                continue
            case .success:
                Issue.record("discard succeeded despite \(ctx)")
            case .failure(.kernel):
                #expect(Fx.isRead(line), "\(ctx)")
                #expect(fx.world.ignoringFingerprints == taken.ignoringFingerprints, "\(ctx)\n\(fx.world)")
                outcomes["inspect", default: 0] += 1
            case let .failure(.failed(e)):
                fx.expectStepFailure(e, at: i, ctx)
                #expect(e.leftovers.isEmpty, "\(ctx)")
                committed = e.committed
                if e.committed {
                    for k in fx.all { #expect(fx.dm.device(Fx.live(k))?.live == Fx.original(k), "\(ctx)") }
                    outcomes["failed after commit", default: 0] += 1
                } else {
                    #expect(e.rolledBack)
                    #expect(fx.world == taken, "unchanged \(ctx)\n\(fx.world)")
                    outcomes["rolled back", default: 0] += 1
                }
            case let .failure(other):
                Issue.record("unexpected \(other) \(ctx)")
            }
            let again = attempt { () throws(DMSnapError) in try fx.manager.discard("s") }
            fx.expectSafe(ctx)
            switch again {
            case .success:
                #expect(fx.world.devices == pristine.devices, "\(ctx)")
                #expect(fx.store.sets.isEmpty)
                rerun["completes", default: 0] += 1
            case let .failure(.refused(e)) where committed:
                #expect(e.description == "s: set was interrupted while discarding; run 'dmsnap recover s'", "\(ctx)")
                let recovered = attempt { () throws(DMSnapError) in try fx.manager.recover("s") }
                #expect(recovered.isSuccess, "recover after \(ctx): \(recovered)")
                #expect(fx.world.devices == pristine.devices, "\(ctx)")
                #expect(fx.store.sets.isEmpty)
                fx.expectSafe(ctx)
                rerun["discard refused, recover completes", default: 0] += 1
            case let .failure(other):
                Issue.record("re-running discard after \(ctx): \(other)")
            }
        }
        print("discard sweep \(c): \(baseline.count) fault points; \(outcomes.sorted { $0.key < $1.key }); re-run: \(rerun.sorted { $0.key < $1.key })")
    }

    /// A dead COW (every write fails) after the point of no return: the discard still ends, the
    /// set is forgotten, and one warning names the COW.
    @Test func discardWithADeadCOWEndsWithAWarning() throws {
        let fx = SnapFixture(devices: 2)
        let pristine = fx.world
        try #require(fx.take() != nil)
        fx.dm.failWhen = { $0.hasPrefix("wipe \(Fx.cow(1))") || $0.hasPrefix("zero \(Fx.cow(1))") }
        let result = attempt { () throws(DMSnapError) in try fx.manager.discard("s") }
        #expect(result.isSuccess, "\(result)")
        #expect(fx.world.devices == pristine.devices)
        #expect(fx.store.sets.isEmpty)
        #expect(fx.warnings.all.count == 1)
        #expect(fx.warnings.all.first?.hasPrefix("\(Fx.cow(1)): COW still carries a snapshot header; wipe its first chunk before reusing it (") == true,
                "\(fx.warnings.all)")
        #expect((fx.dm.blocks[Fx.cow(0)]?.zeroedHeader ?? 0) >= 4096, "the healthy COW is released")
    }

    @Test func discardInterruptedAfterCommitIsRecovered() throws {
        let fx = SnapFixture(devices: 1)
        let pristine = fx.world
        try #require(fx.take() != nil)
        fx.dm.failWhen = { $0.hasPrefix("remove") }
        let e = try #require(attempt { () throws(DMSnapError) in try fx.manager.discard("s") }.executionError)
        fx.dm.failWhen = nil
        #expect(e.committed)
        #expect(fx.store.sets[mkSetName("s")]?.phase == .discarding)
        let again = attempt { () throws(DMSnapError) in try fx.manager.discard("s") }
        #expect(again.refusal?.description == "s: set was interrupted while discarding; run 'dmsnap recover s'")
        #expect(attempt { () throws(DMSnapError) in try fx.manager.recover("s") }.isSuccess)
        #expect(fx.world.devices == pristine.devices)
        #expect(fx.store.sets.isEmpty)
        #expect((fx.dm.blocks[Fx.cow(0)]?.zeroedHeader ?? 0) >= 4096)
    }
}

// MARK: - status JSON

@Suite("Status JSON")
struct StatusJSONTests {
    struct DeviceJSON: Decodable {
        var device: String
        var base: String
        var cow: String
        var chunk_sectors: UInt64
        var cow_total_sectors: UInt64
        var cow_used_sectors: UInt64
        var metadata_sectors: UInt64
        var used_percent: Double
        var state: String
    }

    struct SetJSON: Decodable {
        var name: String
        var state: String
        var created: Double
        var devices: [DeviceJSON]
    }

    @Test func keysAndNumbers() throws {
        let fx = SnapFixture(devices: 2, mounted: [0])
        try #require(fx.take("nightly", chunk: "16k") != nil)
        let status = try attempt { () throws(DMSnapError) in try fx.manager.status("nightly") }.get()
        let data = try JSONEncoder().encode(status[0])

        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(Set(object.keys) == ["name", "state", "created", "devices"])
        let devices = try #require(object["devices"] as? [[String: Any]])
        #expect(devices.count == 2)
        for d in devices {
            #expect(Set(d.keys) == ["device", "base", "cow", "chunk_sectors", "cow_total_sectors", "cow_used_sectors",
                                    "metadata_sectors", "used_percent", "state", "cow_kind", "monitored"])
            for key in ["chunk_sectors", "cow_total_sectors", "cow_used_sectors", "metadata_sectors", "used_percent"] {
                #expect(d[key] is NSNumber && !(d[key] is String), "\(key) is \(String(describing: d[key]))")
            }
        }

        // Typed: numbers decode as numbers, strings as strings.
        let decoded = try JSONDecoder().decode(SetJSON.self, from: data)
        #expect(decoded.name == "nightly")
        #expect(decoded.state == "active")
        #expect(decoded.devices.map(\.device) == ["vg0-live", "vg1-live"])
        #expect(decoded.devices.map(\.base) == ["vg0-live-dmsnap-base", "vg1-live-dmsnap-base"])
        #expect(decoded.devices.map(\.cow) == ["/dev/loop10", "/dev/loop11"])
        for d in decoded.devices {
            #expect(d.chunk_sectors == 32)
            #expect(d.cow_total_sectors == 65_536)
            #expect(d.cow_used_sectors == 64)
            #expect(d.metadata_sectors == 64)
            #expect(d.used_percent == 0, "a fresh snapshot uses nothing")
            #expect(d.state == "active")
        }
    }

    @Test func usedPercentAndReasons() throws {
        let fx = SnapFixture(devices: 2)
        try #require(fx.take() != nil)
        fx.dm.statusOverride[Fx.live(0)] = "16400/65536 16"
        fx.dm.statusOverride[Fx.live(1)] = "Invalid"
        let status = try attempt { () throws(DMSnapError) in try fx.manager.status("s") }.get()[0]
        let object = try #require(try JSONSerialization.jsonObject(with: try JSONEncoder().encode(status)) as? [String: Any])
        #expect(object["state"] as? String == "invalid")
        let devices = try #require(object["devices"] as? [[String: Any]])
        #expect((devices[0]["used_percent"] as? NSNumber)?.doubleValue == 25.02)
        #expect(devices[0]["reason"] == nil)
        #expect(devices[1]["state"] as? String == "invalid")
        #expect(devices[1]["used_percent"] is NSNull)
        #expect(devices[1]["cow_used_sectors"] is NSNull)
        #expect((devices[1]["reason"] as? String)?.contains("invalid") == true)
    }
}
