import Foundation
import Testing
@testable import DMSnap
import DMSnapTesting
@testable import DMSnapCLI
#if canImport(Glibc)
import Glibc
#endif

// Every state a set can reach has a way out (issue 12), over the in-memory kernel.

/// A set taken in boot-1, then the machine rebooted: the dm devices are gone; the live devices
/// were re-created with their original tables (unmounted); the COWs keep their headers.
func rebooted(devices: Int = 2, header: [UInt8] = COWBytes.valid, recreate: Bool = true) throws -> SnapFixture {
    let fx = SnapFixture(devices: devices)
    try #require(fx.take() != nil)
    for k in fx.all {
        try fx.dm.load(Fx.live(k), table: Fx.original(k))
        try fx.dm.suspend(Fx.live(k), lockfs: false)
        try fx.dm.resume(Fx.live(k))
        try fx.dm.remove(Fx.base(k))
        if !recreate { try fx.dm.remove(Fx.live(k)) }
        fx.dm.blocks[Fx.cow(k)]?.header = header
    }
    fx.dm.bootID = "boot-2"
    fx.dm.resetTrace()
    return fx
}

enum COWBytes {
    static let valid: [UInt8] = [0x53, 0x6e, 0x41, 0x70, 1, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0]
    static let invalidated: [UInt8] = [0x53, 0x6e, 0x41, 0x70, 0, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0]
}

@Suite("After a reboot")
struct AfterRebootTests {
    @Test(arguments: [true, false])
    func aSetWhoseDevicesAreGoneIsInactiveAndPointsToActivate(_ recreated: Bool) throws {
        let fx = try rebooted(recreate: recreated)
        let status = try #require(try attempt { () throws(DMSnapError) in try fx.manager.status("s") }.get().first)
        #expect(status.state == .inactive)
        #expect(status.devices.allSatisfy { $0.state == .inactive })
        #expect(status.hint == "dmsnap activate s")
        #expect(status.summary == "set s is inactive (vg0-live: its devices are gone after a reboot; the COW holds every change; …): run 'dmsnap activate s'")
        let merge = attempt { () throws(DMSnapError) in try fx.manager.merge("s") }
        #expect(merge.refusal?.description == "s: set is inactive (its devices are gone after a reboot): run 'dmsnap activate s' first")
        let recover = attempt { () throws(DMSnapError) in try fx.manager.recover("s") }
        #expect((try? recover.get()) == [status.summary], "recover says what the set is, never 'active'")
        #expect(fx.mutations.isEmpty)
    }

    @Test func followingTheHintActivatesThenMerges() throws {
        let fx = try rebooted()
        #expect(attempt { () throws(DMSnapError) in try fx.manager.activate("s") }.isSuccess)
        let status = try #require(try attempt { () throws(DMSnapError) in try fx.manager.status("s") }.get().first)
        #expect(status.state == .active && status.hint == nil)
        #expect(fx.store.sets[mkSetName("s")]?.bootID == "boot-2", "activate records this boot")
        #expect(attempt { () throws(DMSnapError) in try fx.manager.merge("s") }.isSuccess)
        #expect(fx.store.sets.isEmpty)
        fx.expectSafe()
    }

    @Test func anInactiveSetCanBeDiscardedWithoutActivating() throws {
        let fx = try rebooted()
        let before = fx.dm.devices
        #expect(attempt { () throws(DMSnapError) in try fx.manager.discard("s") }.isSuccess)
        #expect(fx.store.sets.isEmpty)
        #expect(fx.dm.devices == before, "the re-created devices hold the frozen image: untouched")
        for k in fx.all { #expect((fx.dm.blocks[Fx.cow(k)]?.zeroedHeader ?? 0) >= 4096, "COW released") }
    }

    @Test func anInvalidatedSetStaysInvalidAfterAReboot() throws {
        let fx = try rebooted(header: COWBytes.invalidated)
        let status = try #require(try attempt { () throws(DMSnapError) in try fx.manager.status("s") }.get().first)
        #expect(status.state == .invalid)
        #expect(status.hint == "dmsnap discard s")
        #expect(status.devices[0].reason == "the kernel invalidated the snapshot before the reboot (COW overflowed or failed)")
        let merge = attempt { () throws(DMSnapError) in try fx.manager.merge("s") }
        #expect(merge.refusal?.description.hasSuffix("it cannot be merged: use 'dmsnap discard s'") == true, "\(merge)")
        let activate = attempt { () throws(DMSnapError) in try fx.manager.activate("s") }
        #expect(activate.refusal?.description.hasSuffix("use 'dmsnap discard s'") == true, "\(activate)")
        let recover = attempt { () throws(DMSnapError) in try fx.manager.recover("s") }
        #expect((try? recover.get())?.first?.hasSuffix("run 'dmsnap discard s'") == true, "\(recover)")
        #expect(fx.mutations.isEmpty)
        #expect(attempt { () throws(DMSnapError) in try fx.manager.discard("s") }.isSuccess)
        #expect(fx.store.sets.isEmpty)
    }

    /// In the same boot, a set whose snapshot another tool removed (original tables back, bases
    /// gone) is lost, not inactive: forget drops it and leaves the COWs alone.
    @Test func inTheSameBootAMissingBaseIsLost() throws {
        let fx = try rebooted()
        fx.dm.bootID = "boot-1"
        let status = try #require(try attempt { () throws(DMSnapError) in try fx.manager.status("s") }.get().first)
        #expect(status.state == .lost)
        #expect(status.hint == "dmsnap forget s")
        #expect(status.devices[0].reason == "vg0-live runs its original table again: another tool removed the snapshot")
        for refused in [attempt { () throws(DMSnapError) in try fx.manager.merge("s") },
                        attempt { () throws(DMSnapError) in try fx.manager.discard("s") }] {
            #expect(refused.refusal?.description.hasSuffix("run 'dmsnap forget s'") == true, "\(refused)")
        }
        let recover = attempt { () throws(DMSnapError) in try fx.manager.recover("s") }
        #expect((try? recover.get())?.first?.hasSuffix("run 'dmsnap forget s'") == true, "\(recover)")
        let notes = try attempt { () throws(DMSnapError) in try fx.manager.forget("s") }.get()
        #expect(notes.contains("/dev/loop10 still holds vg0-live's changes made since take; it was not wiped (wipe its first chunk before reusing it)"))
        #expect(fx.store.sets.isEmpty)
        for k in fx.all { #expect(fx.dm.blocks[Fx.cow(k)]?.zeroedHeader == 4096, "forget never wipes a COW (only take's own wipe)") }
    }
}

@Suite("Lost sets")
struct LostSetTests {
    /// Another tool reloads a live device (`dmsetup load` + `resume`): the set is lost, merge and
    /// discard point to forget, forget removes the now unused base and leaves the COW.
    @Test func aTableReplacedBehindDmsnapsBack() throws {
        let fx = SnapFixture(devices: 2, mounted: [0])
        try #require(fx.take() != nil)
        try fx.dm.load(Fx.live(1), table: mkTable("0 131072 error"))
        try fx.dm.suspend(Fx.live(1), lockfs: true)
        try fx.dm.resume(Fx.live(1))
        let status = try #require(try attempt { () throws(DMSnapError) in try fx.manager.status("s") }.get().first)
        #expect(status.state == .lost)
        #expect(status.devices.map(\.state) == [.active, .lost])
        #expect(status.devices[1].reason?.hasPrefix("vg1-live runs a table dmsnap did not load: 0 131072 error") == true)
        #expect(status.hint == "dmsnap forget s")
        fx.dm.resetTrace()
        #expect(attempt { () throws(DMSnapError) in try fx.manager.merge("s") }.refusal != nil)
        #expect(fx.mutations.isEmpty)
        // forget drops the lost member; vg0 still runs its snapshot and stays in the set
        let notes = try attempt { () throws(DMSnapError) in try fx.manager.forget("s") }.get()
        #expect(notes == ["/dev/loop11 still holds vg1-live's changes made since take; it was not wiped (wipe its first chunk before reusing it)",
                          "set s keeps vg0-live, still running its snapshot; merge or discard the set as usual"])
        #expect(fx.dm.device(Fx.base(1)) == nil, "the unused base is removed")
        #expect(fx.dm.device(Fx.base(0)) != nil)
        #expect(fx.store.sets[mkSetName("s")]?.members.map(\.device) == [Fx.live(0)])
        #expect(try attempt { () throws(DMSnapError) in try fx.manager.status("s") }.get().first?.state == .active)
    }

    @Test func forgetRefusesASetThatIsNotLost() throws {
        let fx = SnapFixture(devices: 1)
        try #require(fx.take() != nil)
        fx.dm.resetTrace()
        let result = attempt { () throws(DMSnapError) in try fx.manager.forget("s") }
        #expect(result.refusal?.description == "s: set is active, not lost; forget only drops a set whose devices another tool changed")
        #expect(fx.mutations.isEmpty)
    }
}

@Suite("A failed merge resumes")
struct FailedMergeTests {
    /// A merge stopped by an I/O error: status says merge-failed and points to merge; merge on a
    /// mounted device says to unmount; once closed, merge swaps in the interim table (so the failed
    /// target is destroyed, never handed over) and a fresh snapshot-merge, then finishes.
    @Test func resumesThroughAnInterimTableOnceClosed() throws {
        let fx = SnapFixture(devices: 2, mounted: [0])
        let pristine = fx.world
        try #require(fx.take() != nil)
        try #require(attempt { () throws(DMSnapError) in try fx.manager.merge("s", wait: false) }.isSuccess)
        fx.dm.failedTargets = [Fx.live(0)]
        // what the waiting merge sees when the kernel stops it
        let set = try #require(fx.store.sets[mkSetName("s")])
        var initial: [DeviceName: UInt64] = [:]
        let waited = attempt { () throws(DMSnapError) in try fx.manager.mergeProgress(set, initial: &initial) }
        guard case let .failure(.mergeFailed(message)) = waited else {
            Issue.record("expected the merge to stop: \(waited)")
            return
        }
        #expect(message.hasSuffix("once the COW works, unmount vg0-live and run 'dmsnap merge s' to resume it"))
        let status = try #require(try attempt { () throws(DMSnapError) in try fx.manager.status("s") }.get().first)
        #expect(status.state == .mergeFailed)
        #expect(status.hint == "dmsnap merge s")
        fx.dm.resetTrace()
        let mounted = attempt { () throws(DMSnapError) in try fx.manager.merge("s") }
        #expect(mounted.refusal?.description.contains("unmount /mnt/0 (the failed target can only be replaced while the device is closed), then run 'dmsnap merge s'") == true,
                "\(mounted)")
        #expect(fx.mutations.isEmpty)
        fx.dm.unmount(Fx.mountPoint(0))
        // a COW that does not read back: refused, nothing changed
        fx.dm.failWhen = { $0.hasPrefix("read \(Fx.cow(0))") }
        let unreadable = attempt { () throws(DMSnapError) in try fx.manager.merge("s") }
        #expect(unreadable.refusal?.description.hasPrefix("\(Fx.cow(0)): COW does not read back") == true, "\(unreadable)")
        #expect(fx.mutations.isEmpty)
        fx.dm.failWhen = nil
        fx.dm.blocks[Fx.cow(0)]?.header = COWBytes.valid
        let resumed = attempt { () throws(DMSnapError) in try fx.manager.merge("s") }
        #expect(resumed.isSuccess, "\(resumed)")
        let vg0 = fx.mutations.filter { $0.contains("vg0-live") && !$0.contains("base") }
        #expect(Array(vg0.prefix(6)) == ["load vg0-live error", "suspend vg0-live nolockfs", "resume vg0-live",
                                         "load vg0-live snapshot-merge", "suspend vg0-live nolockfs", "resume vg0-live"])
        #expect(fx.world.devices.mapValues(\.live) == pristine.devices.mapValues(\.live))
        #expect(fx.store.sets.isEmpty)
        fx.expectSafe()
    }

    /// The fresh load fails (the COW is still bad): the device stays on the interim table, the
    /// error says how to go on, and merge resumes from there once the COW works.
    @Test func aFailedFreshLoadLeavesTheInterimTableAndResumesLater() throws {
        let fx = SnapFixture(devices: 1)
        try #require(fx.take() != nil)
        try #require(attempt { () throws(DMSnapError) in try fx.manager.merge("s", wait: false) }.isSuccess)
        fx.dm.failedTargets = [Fx.live(0)]
        fx.dm.blocks[Fx.cow(0)]?.header = COWBytes.valid
        fx.dm.failWhen = { $0 == "load vg0-live snapshot-merge" }
        let first = attempt { () throws(DMSnapError) in try fx.manager.merge("s") }
        let e = try #require(first.executionError, "\(first)")
        #expect(e.committed)
        #expect(e.next == "dmsnap merge s")
        #expect(fx.dm.device(Fx.live(0))?.live == Planner.interimTable(fx.store.sets[mkSetName("s")]!.members[0]))
        let status = try #require(try attempt { () throws(DMSnapError) in try fx.manager.status("s") }.get().first)
        #expect(status.state == .mergeFailed && status.devices[0].reason?.contains("interim error table") == true)
        fx.dm.failWhen = nil
        fx.dm.resetTrace()
        #expect(attempt { () throws(DMSnapError) in try fx.manager.merge("s") }.isSuccess)
        #expect(!fx.mutations.contains("load vg0-live error"), "from the interim table, only the fresh load")
        #expect(fx.dm.device(Fx.live(0))?.live == Fx.original(0))
        #expect(fx.store.sets.isEmpty)
    }
}

@Suite("Unreadable and orphaned descriptions")
struct StrayTests {
    /// One description is damaged: status lists the others and reports this one by name, file and
    /// reason; recover rebuilds it from the kernel (the file is kept aside); then merge works.
    @Test func anUnreadableDescriptionIsRebuiltFromTheKernel() throws {
        let fx = SnapFixture(devices: 3)
        try #require(fx.take("good", [0]) != nil)
        let bad = try #require(fx.take("bad", [1, 2]))
        fx.store.sets[bad.name] = nil
        fx.store.unreadable[bad.name] = "not a set description (the JSON is damaged or cut short)"
        let all = try attempt { () throws(DMSnapError) in try fx.manager.status() }.get()
        #expect(all.map(\.name) == ["bad", "good"])
        #expect(all[1].state == .active)
        #expect(all[0].state == .unreadable && all[0].hint == "dmsnap recover bad" && all[0].created == nil)
        #expect(all[0].devices.map(\.device) == ["vg1-live", "vg2-live"])
        #expect(all[0].devices[0].reason == "memory:bad.json: not a set description (the JSON is damaged or cut short)")
        #expect(try attempt { () throws(DMSnapError) in try fx.manager.status("bad") }.get() == [all[0]])
        fx.dm.resetTrace()
        let report = try attempt { () throws(DMSnapError) in try fx.manager.recover("bad") }.get()
        #expect(report == ["rebuilt set bad from the kernel (2 devices): its description could not be read (kept as memory:bad.json.unreadable)",
                           "set bad is active"], "\(report)")
        #expect(fx.store.quarantined == [bad.name])
        let rebuilt = try #require(fx.store.sets[bad.name])
        #expect(rebuilt.members.map(\.device) == bad.members.map(\.device))
        #expect(rebuilt.members.map(\.cow) == bad.members.map(\.cow))
        #expect(rebuilt.members.map(\.originalTable) == bad.members.map(\.originalTable))
        #expect(attempt { () throws(DMSnapError) in try fx.manager.merge("bad") }.isSuccess)
        for k in [1, 2] { #expect(fx.dm.device(Fx.live(k))?.live == Fx.original(k)) }
        fx.expectSafe()
    }

    @Test func aDeletedDescriptionLeavesAnOrphanThatRecoverRebuilds() throws {
        let fx = SnapFixture(devices: 1, mounted: [0])
        try #require(fx.take("gone") != nil)
        fx.store.sets = [:]
        let all = try attempt { () throws(DMSnapError) in try fx.manager.status() }.get()
        #expect(all.map(\.state) == [.orphaned])
        #expect(all[0].summary == "set gone is orphaned (vg0-live: no recorded set owns these dmsnap devices): run 'dmsnap recover gone'")
        // recover with no name finds it too
        let report = try attempt { () throws(DMSnapError) in try fx.manager.recover() }.get()
        #expect(report == ["rebuilt set gone from the kernel (1 device): its description was gone", "set gone is active"])
        fx.dm.unmount(Fx.mountPoint(0))
        #expect(attempt { () throws(DMSnapError) in try fx.manager.discard("gone") }.isSuccess)
        #expect(fx.dm.device(Fx.live(0))?.live == Fx.original(0))
        #expect(fx.store.sets.isEmpty)
    }

    @Test func anUnreadableDescriptionWithNoDevicesLeftIsMovedAside() throws {
        let fx = SnapFixture(devices: 1)
        fx.store.unreadable[mkSetName("old")] = "the file is empty"
        let status = try attempt { () throws(DMSnapError) in try fx.manager.status("old") }.get()
        #expect(status.first?.state == .unreadable)
        let report = try attempt { () throws(DMSnapError) in try fx.manager.recover("old") }.get()
        #expect(report == ["set old: its description cannot be read and no device of it is left; the file was kept as memory:old.json.unreadable"])
        #expect(try attempt { () throws(DMSnapError) in try fx.manager.status() }.get().isEmpty)
        #expect(attempt { () throws(DMSnapError) in try fx.manager.status("old") }.refusal?.description == "old: no such snapshot set")
    }
}

@Suite("A COW that recurses is refused")
struct RecursionTests {
    @Test func aLoopOverAFileOnAFilesystemOfTheSet() throws {
        let fx = SnapFixture(devices: 2, mounted: [0, 1])
        let loop = DeviceNumber(major: 7, minor: 40)
        fx.dm.addBlock("/dev/loop40", number: loop, size: 65_536)
        // its file lives on vg1-live's filesystem: a COW of vg0 there still writes into the set
        fx.dm.loopBackings[loop] = LoopBacking(file: "/mnt/1/cow.img", fileSystemDevice: try #require(fx.dm.device(Fx.live(1))?.number))
        let request = TakeRequest(set: "s", pairs: [(Fx.live(0).value, "/dev/loop40"), (Fx.live(1).value, Fx.cow(1))])
        fx.dm.resetTrace()
        let result = attempt { () throws(DMSnapError) in try fx.manager.take(request) }
        #expect(result.refusal?.description == "/dev/loop40: COW is a loop over /mnt/1/cow.img, on a filesystem of the set (on vg1-live): writes to the snapshot would go into the snapshot")
        #expect(fx.mutations.isEmpty)
    }

    @Test func throughALoopOnALoopAndADeviceStackedOnAMember() throws {
        let fx = SnapFixture(devices: 1)
        // an LV-like device on top of the member, a filesystem on it, a file there under a loop,
        // a filesystem on that loop, and the COW a loop over a file there
        let upper = mkName("vg0-lv")
        let upperNumber = fx.dm.addDevice(upper, table: mkTable("0 2048 linear \(try #require(fx.dm.device(Fx.live(0))?.number)) 0"))
        let inner = DeviceNumber(major: 7, minor: 41), outer = DeviceNumber(major: 7, minor: 42)
        fx.dm.addBlock("/dev/loop41", number: inner, size: 65_536)
        fx.dm.addBlock("/dev/loop42", number: outer, size: 65_536)
        fx.dm.loopBackings[inner] = LoopBacking(file: "/srv/lv/inner.img", fileSystemDevice: upperNumber)
        fx.dm.loopBackings[outer] = LoopBacking(file: "/srv/inner/cow.img", fileSystemDevice: inner)
        let result = attempt { () throws(DMSnapError) in
            try fx.manager.take(TakeRequest(set: "s", pairs: [(Fx.live(0).value, "/dev/loop42")]))
        }
        #expect(result.refusal?.description == "/dev/loop42: COW is a loop over /srv/lv/inner.img, on a filesystem of the set (on vg0-live): writes to the snapshot would go into the snapshot")
        // a COW that is itself stacked on the member
        let stacked = attempt { () throws(DMSnapError) in
            try fx.manager.take(TakeRequest(set: "s", pairs: [(Fx.live(0).value, upper.path)]))
        }
        #expect(stacked.refusal?.description == "/dev/mapper/vg0-lv: COW is stacked on vg0-live, a device of the set: writes to the snapshot would go into the snapshot")
        // a loop over a file elsewhere is fine
        fx.dm.loopBackings[outer] = LoopBacking(file: "/var/cow.img", fileSystemDevice: DeviceNumber(major: 8, minor: 1))
        #expect(attempt { () throws(DMSnapError) in try fx.manager.take(TakeRequest(set: "s", pairs: [(Fx.live(0).value, "/dev/loop42")])) }.isSuccess)
    }
}

@Suite("The window guardian")
struct GuardianTests {
    /// The guardian starts before the plan, knows every device the window suspends and every
    /// filesystem it freezes, is told the window opens right before the first freeze and closes
    /// right after the last thaw, and stops at the end.
    @Test func aTakeRunsUnderTheGuardianAroundItsWindow() throws {
        let fx = SnapFixture(devices: 2, mounted: [0, 1])
        fx.dm.resetTrace()
        try #require(fx.take() != nil)
        let e = fx.dm.guardianEvents
        #expect(e.map(\.event) == ["start vg0-live(nolockfs),vg1-live(nolockfs) /mnt/0,/mnt/1", "open", "close", "stop"])
        #expect(fx.dm.trace[e[1].at] == "freeze /mnt/0", "opens right before the first freeze")
        #expect(fx.dm.trace[e[2].at - 1] == "thaw /mnt/1", "closes right after the last thaw")
        #expect(fx.dm.trace[..<e[0].at].allSatisfy(Fx.isRead), "started before the first change")
    }

    @Test func aMergeOrDiscardWindowIsGuardedToo() throws {
        let fx = SnapFixture(devices: 1)
        try #require(fx.take() != nil)
        #expect(attempt { () throws(DMSnapError) in try fx.manager.discard("s") }.isSuccess)
        let e = fx.dm.guardianEvents.suffix(4)
        #expect(e.map(\.event) == ["start vg0-live ", "open", "close", "stop"], "a discard suspends with lockfs and freezes nothing")
        #expect(fx.dm.trace[e[e.startIndex + 1].at].hasPrefix("suspend vg0-live"))
    }

    @Test func noGuardianNoWindow() throws {
        let fx = SnapFixture(devices: 2, mounted: [0])
        fx.dm.failGuardian = true
        fx.dm.resetTrace()
        let result = attempt { () throws(DMSnapError) in try fx.manager.take(fx.request()) }
        let e = try #require(result.executionError, "\(result)")
        #expect(e.rolledBack)
        #expect(e.description.hasPrefix("freeze /mnt/0 failed: dmsnap: start window guardian failed: Resource temporarily unavailable"))
        #expect(fx.mutations.isEmpty, "nothing was changed")
        #expect(fx.store.sets.isEmpty)
    }
}

@Suite("SIGINT and SIGTERM")
struct InterruptTests {
    /// A signal before the point of no return rolls the take back; after it, the take finishes.
    @Test func aTakeRollsBackOrFinishes() throws {
        let ref = SnapFixture(devices: 2, mounted: [0, 1])
        let pristine = ref.world
        try #require(ref.take() != nil)
        let changes = ref.mutations.count
        var outcomes: [String: Int] = [:]
        for after in 0...changes {
            let fx = SnapFixture(devices: 2, mounted: [0, 1])
            fx.dm.resetTrace()
            fx.manager.interruption = { fx.mutations.count >= after ? SIGTERM : nil }
            let result = attempt { () throws(DMSnapError) in try fx.manager.take(fx.request()) }
            fx.expectSafe("interrupted after \(after) changes")
            switch result {
            case .success:
                for k in fx.all { #expect(fx.dm.device(Fx.live(k))?.live == fx.snapshotTable(k)) }
                outcomes["finished", default: 0] += 1
            case let .failure(.failed(e)):
                #expect(e.cause == .interrupted(signal: SIGTERM), "\(e)")
                #expect(e.rolledBack, "\(e)")
                #expect(e.description.contains("interrupted by SIGTERM; everything was rolled back"))
                #expect(fx.world.devices == pristine.devices && fx.store.sets.isEmpty, "after \(after)")
                outcomes["rolled back", default: 0] += 1
            case let .failure(other):
                Issue.record("after \(after): \(other)")
            }
        }
        #expect(outcomes["rolled back", default: 0] > 0 && outcomes["finished", default: 0] > 0, "\(outcomes)")
    }

    @Test func aWaitingMergeStopsWaitingAndSaysHowToFinish() throws {
        let fx = SnapFixture(devices: 1)
        try #require(fx.take() != nil)
        fx.dm.statusOverride[Fx.live(0)] = "400/65536 16"  // not done
        // the signal arrives once the merge runs in the kernel
        fx.manager.interruption = { fx.dm.device(Fx.live(0))?.live?.targets.first?.type == "snapshot-merge" ? SIGINT : nil }
        let result = attempt { () throws(DMSnapError) in try fx.manager.merge("s") }
        guard case let .failure(.interrupted(signal, message)) = result else {
            Issue.record("\(result)")
            return
        }
        #expect(signal == SIGINT)
        #expect(message == "interrupted by SIGINT while waiting: the merge goes on in the kernel; run 'dmsnap merge s' to wait for it and finish it")
        #expect(CLIError(.interrupted(signal: SIGINT, message)).status.rawValue == 130)
        fx.dm.statusOverride[Fx.live(0)] = nil
        fx.manager.interruption = nil
        #expect(attempt { () throws(DMSnapError) in try fx.manager.merge("s") }.isSuccess)
        #expect(fx.store.sets.isEmpty)
    }
}

/// Follows the printed way out of a state until the set is gone (merged, discarded or
/// forgotten), doing what a refusal asks first (unmount). Fails on a hint that points back to a
/// state already left through the same command, or after too many steps.
@discardableResult
func walk(_ fx: SnapFixture, _ name: String = "s", sourceLocation: SourceLocation = #_sourceLocation) -> [String] {
    var path: [String] = []
    var seen: Set<String> = []
    for _ in 0..<8 {
        guard case let .success(statuses) = attempt({ () throws(DMSnapError) in try fx.manager.status(name) }),
              let status = statuses.first else { return path }  // gone
        // active is healthy: the user's choice ends it; merge is what the walk picks
        let command = status.hint ?? "dmsnap merge \(name)"
        let step = "\(status.state.rawValue) → \(command)"
        #expect(seen.insert(step).inserted, "the hints go in a circle: \(path + [step])", sourceLocation: sourceLocation)
        path.append(step)
        let verb = command.split(separator: " ")[1]
        func run() -> Result<Void, DMSnapError> {
            attempt { () throws(DMSnapError) in
                switch verb {
                case "merge": try fx.manager.merge(name)
                case "discard": try fx.manager.discard(name)
                case "activate": try fx.manager.activate(name)
                case "recover": _ = try fx.manager.recover(name)
                case "forget": _ = try fx.manager.forget(name)
                default: Issue.record("unknown hint \(command)", sourceLocation: sourceLocation)
                }
            }
        }
        var result = run()
        if let refusal = result.refusal, refusal.description.contains("unmount") || refusal.description.contains("mounted on") {
            path.append("(unmount)")
            for k in fx.all { fx.dm.unmount(Fx.mountPoint(k)) }
            result = run()
        }
        if case let .failure(e) = result { Issue.record("\(command) after \(path): \(e)", sourceLocation: sourceLocation); return path }
    }
    Issue.record("no way out after \(path)", sourceLocation: sourceLocation)
    return path
}

@Suite("Every state has a way out")
struct WayOutTests {
    typealias Scenario = (name: String, make: () throws -> SnapFixture)

    static func taken(mounted: [Int] = [0, 1], _ change: (SnapFixture) throws -> Void = { _ in }) throws -> SnapFixture {
        let fx = SnapFixture(devices: 2, mounted: Set(mounted))
        try #require(fx.take() != nil)
        try change(fx)
        return fx
    }

    static let scenarios: [String] = [
        "active", "merging", "merge-failed", "invalid", "inactive after a reboot", "invalid after a reboot", "lost",
        "unreadable", "orphaned", "interrupted take", "interrupted merge finish", "interrupted discard",
    ]

    static func make(_ scenario: String) throws -> SnapFixture {
        switch scenario {
        case "active": return try taken()
        case "merging": return try taken { fx in
            _ = try attempt { () throws(DMSnapError) in try fx.manager.merge("s", wait: false) }.get()
        }
        case "merge-failed": return try taken { fx in
            _ = try attempt { () throws(DMSnapError) in try fx.manager.merge("s", wait: false) }.get()
            fx.dm.failedTargets = [Fx.live(0)]
            for k in fx.all { fx.dm.blocks[Fx.cow(k)]?.header = COWBytes.valid }
        }
        case "invalid": return try taken { fx in fx.dm.statusOverride[Fx.live(1)] = "Invalid" }
        case "inactive after a reboot": return try rebooted()
        case "invalid after a reboot": return try rebooted(header: COWBytes.invalidated)
        case "lost": return try taken { fx in
            try fx.dm.load(Fx.live(1), table: mkTable("0 131072 error"))
            try fx.dm.suspend(Fx.live(1), lockfs: true)
            try fx.dm.resume(Fx.live(1))
        }
        case "unreadable": return try taken { fx in
            fx.store.sets = [:]
            fx.store.unreadable[mkSetName("s")] = "the file is empty"
        }
        case "orphaned": return try taken { fx in fx.store.sets = [:] }
        case "interrupted take":
            let fx = SnapFixture(devices: 2, mounted: [0, 1])
            fx.dm.failWhen = { $0 == "thaw /mnt/1" }
            _ = attempt { () throws(DMSnapError) in try fx.manager.take(fx.request()) }
            fx.dm.failWhen = nil
            return fx
        case "interrupted merge finish": return try taken { fx in
            fx.dm.failWhen = { $0 == "remove vg1-live-dmsnap-base" }
            _ = attempt { () throws(DMSnapError) in try fx.manager.merge("s") }
            fx.dm.failWhen = nil
        }
        case "interrupted discard": return try taken(mounted: []) { fx in
            fx.dm.failWhen = { $0.hasPrefix("remove") }
            _ = attempt { () throws(DMSnapError) in try fx.manager.discard("s") }
            fx.dm.failWhen = nil
        }
        default: throw CancellationError()
        }
    }

    @Test(arguments: scenarios)
    func followingTheHintsEndsTheSet(_ scenario: String) throws {
        let fx = try Self.make(scenario)
        let state = try attempt { () throws(DMSnapError) in try fx.manager.status("s") }.get().first?.state
        let path = walk(fx)
        #expect(fx.store.sets.isEmpty && fx.store.unreadable.isEmpty, "\(scenario): still recorded after \(path)")
        fx.expectSafe(scenario)
        #expect(!fx.dm.devices.keys.contains { $0.value.hasSuffix("-dmsnap-base") }, "\(scenario): a base is left after \(path)")
        print("way out of \(scenario) (\(state?.rawValue ?? "?")): \(path.joined(separator: ", "))")
    }
}

@Suite("activate --all at boot")
struct ActivateAllTests {
    @Test func activatesInactiveSetsWhoseDevicesExistAndListsTheRest() throws {
        // s: rebooted, devices re-created; t: its device not re-created yet
        let fx = try rebooted(devices: 2)
        try fx.dm.remove(Fx.live(1))
        fx.dm.resetTrace()
        let outcomes = try attempt { () throws(DMSnapError) in try fx.manager.activateAll() }.get()
        #expect(outcomes == [BootActivation(set: "s", outcome: .skipped,
                                            detail: "not there yet: \(Fx.live(1)); run 'dmsnap activate s' once it is")])
        #expect(fx.mutations.isEmpty, "a set with a missing device is left alone: \(fx.mutations)")
        _ = fx.dm.addDevice(Fx.live(1), table: Fx.original(1))
        let again = try attempt { () throws(DMSnapError) in try fx.manager.activateAll() }.get()
        #expect(again == [BootActivation(set: "s", outcome: .activated, detail: nil)])
        let status = try #require(try attempt { () throws(DMSnapError) in try fx.manager.status("s") }.get().first)
        #expect(status.state == .active)
        // run again (the unit on the next start): nothing to do
        let third = try attempt { () throws(DMSnapError) in try fx.manager.activateAll() }.get()
        #expect(third == [BootActivation(set: "s", outcome: .skipped, detail: "already active")])
        fx.expectSafe()
    }

    @Test func aDeviceSomethingWasStackedOnAtBootIsNamed() throws {
        // LVM's udev rules activated a VG on the re-created device before the unit ran
        let fx = try rebooted(devices: 1)
        let live = try #require(fx.dm.devices[Fx.live(0)]?.number)
        _ = fx.dm.addDevice(mkName("vg-root"), table: mkTable("0 64 linear \(live) 0"), uuid: "LVM-abc")
        fx.dm.resetTrace()
        let outcomes = try attempt { () throws(DMSnapError) in try fx.manager.activateAll() }.get()
        #expect(outcomes.map(\.outcome) == [.failed])
        #expect(outcomes.first?.detail?.contains("\(Fx.live(0)): is open (vg-root on it); close them before activating") == true,
                "\(outcomes)")
        #expect(fx.mutations.isEmpty, "\(fx.mutations)")
    }

    @Test func oneFailureDoesNotStopTheRest() throws {
        // two sets of one device each, both inactive after a reboot
        let fx = SnapFixture(devices: 2)
        try #require(fx.take("s", [0]) != nil)
        try #require(fx.take("t", [1]) != nil)
        for k in fx.all {
            try fx.dm.load(Fx.live(k), table: Fx.original(k))
            try fx.dm.suspend(Fx.live(k), lockfs: false)
            try fx.dm.resume(Fx.live(k))
            try fx.dm.remove(Fx.base(k))
            fx.dm.blocks[Fx.cow(k)]?.header = COWBytes.valid
        }
        fx.dm.bootID = "boot-2"
        // s's base cannot be created: its activation fails, t's goes on
        fx.dm.failWhen = { $0.hasPrefix("create \(Fx.base(0)) ") }
        let outcomes = try attempt { () throws(DMSnapError) in try fx.manager.activateAll() }.get()
        #expect(outcomes.map(\.set) == ["s", "t"])
        #expect(outcomes.map(\.outcome) == [.failed, .activated], "\(outcomes)")
        #expect(outcomes[0].detail?.isEmpty == false)
        fx.dm.failWhen = nil
        let status = try attempt { () throws(DMSnapError) in try fx.manager.status() }.get()
        #expect(status.map(\.state) == [.inactive, .active], "the failed set is left as it was: \(status.map(\.summary))")
        fx.expectSafe()
    }
}
