import DMSnap
import DMSnapTesting
import FoundationEssentials
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `dmsnap run` (issue 16): the command's exit decides merge or rollback; --remount takes the
/// filesystems away and puts them back as they were; what cannot be rolled back is kept and said.
@Suite("run: a set around a command")
struct RunTests {
    static func fixture(mounted: Set<Int> = [0, 1]) -> SnapFixture {
        let fx = SnapFixture(devices: 2, mounted: mounted)
        fx.dm.executables = ["migrate", "systemctl"]
        return fx
    }

    static func request(_ fx: SnapFixture, units: [String] = [], remount: Bool = false) -> RunRequest {
        var take = fx.request()
        take.units = units
        var r = RunRequest(take: take, command: ["migrate", "--to", "v2"])
        r.remount = remount
        return r
    }

    static func run(_ fx: SnapFixture, _ r: RunRequest) -> Result<RunOutcome, DMSnapError> {
        attempt { () throws(DMSnapError) in try fx.manager.run(r) }
    }

    @Test func aCommandThatSucceedsIsMergedAndSeesTheSetInItsEnvironment() throws {
        let fx = Self.fixture()
        let out = try Self.run(fx, Self.request(fx)).get()
        #expect(out.action == .merged && out.exitStatus == 0)
        #expect(fx.store.sets.isEmpty)
        #expect(fx.dm.commandRuns.map(\.argv) == [["migrate", "--to", "v2"]])
        #expect(fx.dm.commandRuns[0].environment == ["DMSNAP_SET": "s", "DMSNAP_DEVICES": "\(Fx.live(0)) \(Fx.live(1))"])
        // the command ran with the set taken, the merge after it
        let lines = fx.dm.trace
        let command = try #require(lines.firstIndex { $0.hasPrefix("command") })
        #expect(lines[..<command].contains { $0.hasPrefix("resume") })
        #expect(lines[command...].contains { $0.hasPrefix("load") && $0.contains("snapshot-merge") })
    }

    @Test func onSuccessKeepLeavesTheSet() throws {
        let fx = Self.fixture()
        var r = Self.request(fx)
        r.onSuccess = .keep
        let out = try Self.run(fx, r).get()
        #expect(out.action == .kept && out.exitStatus == 0)
        #expect(fx.store.sets.count == 1)
    }

    @Test func aFailedCommandOnUnmountedDevicesIsDiscardedWithItsStatus() throws {
        let fx = Self.fixture(mounted: [])
        fx.dm.commandOutcome = ProgramOutcome(exitCode: 3)
        let out = try Self.run(fx, Self.request(fx)).get()
        #expect(out.action == .discarded && out.exitStatus == 3 && out.problem == nil)
        #expect(fx.store.sets.isEmpty)
        #expect(fx.dm.devices[Fx.live(0)]?.live == Fx.original(0))
    }

    @Test func withoutRemountAMountedSetIsKeptWithWhatToDo() throws {
        let fx = Self.fixture()
        fx.dm.commandOutcome = ProgramOutcome(exitCode: 1)
        let out = try Self.run(fx, Self.request(fx)).get()
        #expect(out.action == .kept && out.exitStatus == 1)
        let problem = try #require(out.problem)
        #expect(problem.contains("is mounted on /mnt/"), "\(problem)")
        #expect(problem.contains("the set is kept") && problem.contains("'dmsnap discard s'") && problem.contains("--remount"))
        #expect(fx.store.sets.count == 1)
    }

    @Test func remountStopsUnitsUnmountsDiscardsAndPutsEverythingBackAsItWas() throws {
        let fx = Self.fixture()
        // a filesystem with options of its own, and a bind mount of a subdirectory of it
        fx.dm.unmount(Fx.mountPoint(1))
        fx.dm.mount(Fx.live(1), at: "/srv/db", options: ["rw", "nosuid", "noatime"], superOptions: ["rw", "commit=7"])
        fx.dm.mount(Fx.live(1), at: "/var/lib/db", root: "/data", options: ["ro", "relatime"])
        fx.dm.unitCgroups["db.service"] = "/sys/fs/cgroup/system.slice/db.service"
        fx.dm.cgroupDirs["/sys/fs/cgroup/system.slice/db.service"] = CgroupFacts(path: "/sys/fs/cgroup/system.slice/db.service", hasFreezer: true, isRoot: false, holdsSelf: false, processes: 1)
        let before = fx.dm.mountTable
        fx.dm.commandOutcome = ProgramOutcome(exitCode: 1)
        let out = try Self.run(fx, Self.request(fx, units: ["db.service"], remount: true)).get()
        #expect(out.action == .discarded && out.problem == nil && out.exitStatus == 1)
        #expect(Set(out.remounted) == ["/mnt/0", "/srv/db", "/var/lib/db"])
        #expect(fx.store.sets.isEmpty)
        #expect(fx.dm.mountTable.sorted { $0.mountPoint < $1.mountPoint } == before.sorted { $0.mountPoint < $1.mountPoint })
        let lines = fx.dm.trace
        let after = try #require(lines.firstIndex { $0.hasPrefix("command") })
        let tail = Array(lines[after...]).filter { !Fx.isRead($0) }
        let stop = try #require(tail.firstIndex(of: "systemctl stop db.service"))
        let start = try #require(tail.firstIndex(of: "systemctl start db.service"))
        let umounts = tail.indices.filter { tail[$0].hasPrefix("umount") }
        let mounts = tail.indices.filter { tail[$0].hasPrefix("mount again") }
        let discard = try #require(tail.firstIndex { $0.hasPrefix("load") })
        #expect(umounts.count == 3 && mounts.count == 3)
        #expect(stop < umounts[0] && umounts.last! < discard && discard < mounts[0] && mounts.last! < start, "\(tail)")
        // the bind mount goes first and comes back last, from its filesystem's mount point
        #expect(tail[umounts[0]] == "umount /var/lib/db")
        #expect(tail[mounts[2]] == "mount again /srv/db/data /var/lib/db")
    }

    @Test func aBusyFilesystemPutsEverythingBackAndKeepsTheSet() throws {
        let fx = Self.fixture()
        fx.dm.unitCgroups["db.service"] = "/sys/fs/cgroup/system.slice/db.service"
        fx.dm.cgroupDirs["/sys/fs/cgroup/system.slice/db.service"] = CgroupFacts(path: "/sys/fs/cgroup/system.slice/db.service", hasFreezer: true, isRoot: false, holdsSelf: false, processes: 1)
        fx.dm.busyMounts = [Fx.mountPoint(0)]
        let before = fx.dm.mountTable
        fx.dm.commandOutcome = ProgramOutcome(exitCode: 1)
        let out = try Self.run(fx, Self.request(fx, units: ["db.service"], remount: true)).get()
        #expect(out.action == .kept && out.exitStatus == 1)
        let problem = try #require(out.problem)
        #expect(problem.contains("fuser -vm /mnt/0") && problem.contains("'dmsnap discard s'"), "\(problem)")
        #expect(Set(fx.dm.mountTable) == Set(before))
        #expect(fx.dm.trace.last { $0.hasPrefix("systemctl") } == "systemctl start db.service")
        #expect(fx.store.sets.count == 1)
    }

    @Test func aSignalIsAFailureAndDoesNotStopTheRollback() throws {
        let fx = Self.fixture(mounted: [])
        var signal: Int32?
        fx.manager.interruption = { signal }
        fx.manager.clearInterruption = { signal = nil }
        fx.dm.commandBody = { _ in signal = SIGTERM }
        let out = try Self.run(fx, Self.request(fx)).get()
        #expect(out.signal == SIGTERM && out.action == .discarded && out.exitStatus == 143)
        #expect(fx.store.sets.isEmpty)
    }

    @Test(arguments: [
        ([String](), "no command given"),
        (["nosuchprogram"], "nosuchprogram: is not an executable program"),
        ([""], "no command given"),
    ])
    func badCommandsAreRefusedBeforeAnyChange(command: [String], message: String) {
        let fx = Self.fixture()
        let before = fx.world
        var r = Self.request(fx)
        r.command = command
        let e = Self.run(fx, r).refusal
        #expect(e?.description.contains(message) == true, "\(String(describing: e))")
        #expect(fx.world == before)
        #expect(fx.dm.commandRuns.isEmpty)
    }

    @Test func aRollbackOfTheFilesystemDmsnapRunsFromIsRefused() {
        let fx = Self.fixture(mounted: [1])
        fx.dm.mount(Fx.live(0), at: "/proc")
        fx.dm.existingFiles.insert("/proc/self/exe")
        let before = fx.world
        let e = Self.run(fx, Self.request(fx)).refusal
        #expect(e?.description == "\(Fx.live(0)): holds dmsnap's own binary (/proc/self/exe): rolling it back would pull the floor out from under dmsnap; use --on-failure keep")
        #expect(fx.world == before)
        // keeping the set on failure is fine
        var keep = Self.request(fx)
        keep.onFailure = .keep
        fx.dm.commandOutcome = ProgramOutcome(exitCode: 1)
        #expect((try? Self.run(fx, keep).get())?.action == .kept)
    }
}
