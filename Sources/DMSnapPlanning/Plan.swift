import DMSnapModel

/// One kernel or state change. Plans are lists of these; compensations are too.
public enum Action: Hashable, Sendable, CustomStringConvertible {
    case create(DeviceName, uuid: String, table: Table, hidden: Bool)
    case load(DeviceName, Table)
    case clearInactive(DeviceName)
    case suspend(DeviceName, lockfs: Bool)
    case resume(DeviceName)
    case remove(DeviceName)
    case zeroHeader(String, bytes: Int)
    /// A COW dmsnap is done with: zero its header chunk and wipe every signature libblkid finds
    /// on it (copied blocks in its data area look like filesystems), so the next take accepts it.
    case releaseCOW(String, bytes: Int)
    case syncFilesystem(String)
    case freeze(String)
    case thaw(String)
    /// Thaw that succeeds when the filesystem was not frozen (recovery does not know).
    case thawIfFrozen(String)
    /// Stops every process of a cgroup (v2 freezer), waiting until they are stopped.
    case freezeCgroup(String)
    case thawCgroup(String)
    case save(SnapshotSet)
    case deleteState(SetName)
    /// A throwaway snapshot of `origin` (its COW in memory, `scratch` sectors at most), hidden.
    case createView(DeviceName, uuid: String, origin: DeviceName, size: Sectors, scratch: Sectors)
    /// A sparse COW file, O_EXCL, mode 0600.
    case createFile(String, bytes: UInt64)
    /// Removes a COW file dmsnap made.
    case deleteFile(String)
    /// Attaches a loop device to a COW file; tables of the same plan that name the file by
    /// path get the loop's number (the executor resolves it).
    case attachLoop(String, directIO: Bool)
    /// Lets go of the loop `attachLoop` made: it detaches itself once no table holds it.
    case detachLoop(String)
    case makeDirectory(String)
    case removeDirectory(String)
    /// Read-only, nodev, nosuid, noexec, with the type's own options (`nouuid` for xfs).
    case mount(String, at: String, type: String, options: String)
    case unmount(String)
    /// Mounts a filesystem of the set again as the mount table had it before `run --remount`
    /// took it away: from `device`, or a bind mount from `bindFrom`.
    case restoreMount(MountEntry, device: String, bindFrom: String?)
    /// `systemctl stop` / `systemctl start` of a unit whose files are on the set.
    case stopUnit(String)
    case startUnit(String)
    /// The record of a prepared volume (`dmsnap prepare`).
    case saveVolume(PreparedVolume)
    case deleteVolume(DeviceName)

    public var description: String {
        switch self {
        case let .create(n, uuid, t, _): "create \(n) (\(uuid)) with \(t.targets.map(\.type).joined(separator: ","))"
        case let .load(n, t): "load \(t.targets.map(\.type).joined(separator: ",")) table into \(n)"
        case let .clearInactive(n): "clear inactive table of \(n)"
        case let .suspend(n, lockfs): "suspend \(n)\(lockfs ? "" : " (nolockfs)")"
        case let .resume(n): "resume \(n)"
        case let .remove(n): "remove \(n)"
        case let .zeroHeader(p, b): "zero first \(b) bytes of \(p)"
        case let .releaseCOW(p, b): "release COW \(p) (zero first \(b) bytes, wipe signatures)"
        case let .syncFilesystem(m): "sync filesystem \(m)"
        case let .freeze(m): "freeze \(m)"
        case let .thaw(m): "thaw \(m)"
        case let .thawIfFrozen(m): "thaw \(m) if frozen"
        case let .freezeCgroup(c): "freeze cgroup \(c)"
        case let .thawCgroup(c): "thaw cgroup \(c)"
        case let .save(s): "record set \(s.name) as \(s.phase.rawValue)"
        case let .deleteState(n): "delete record of set \(n)"
        case let .createView(n, _, origin, _, _): "create \(n) (throwaway snapshot of \(origin))"
        case let .createFile(p, b): "create COW file \(p) (\(b) bytes, sparse)"
        case let .deleteFile(p): "delete COW file \(p)"
        case let .attachLoop(p, dio): "attach a loop device to \(p)\(dio ? " (direct I/O)" : "")"
        case let .detachLoop(p): "detach the loop device of \(p)"
        case let .makeDirectory(p): "make directory \(p)"
        case let .removeDirectory(p): "remove directory \(p)"
        case let .mount(d, mp, type, _): "mount \(d) (\(type), read-only) on \(mp)"
        case let .unmount(mp): "unmount \(mp)"
        case let .restoreMount(e, device, from): "mount \(from ?? device) (\(e.fsType)) on \(e.mountPoint) again"
        case let .stopUnit(u): "stop unit \(u)"
        case let .startUnit(u): "start unit \(u)"
        case let .saveVolume(v): "record prepared volume \(v.name) (\(v.identity))"
        case let .deleteVolume(n): "delete record of prepared volume \(n)"
        }
    }

    /// The dm device the action changes, if any.
    public var device: DeviceName? {
        switch self {
        case let .create(n, _, _, _), let .load(n, _), let .clearInactive(n), let .suspend(n, _), let .resume(n), let .remove(n),
             let .createView(n, _, _, _, _): n
        default: nil
        }
    }

    /// The shell command an admin runs to do this by hand (for "rollback incomplete" reports);
    /// `stateDirectory` is where the set descriptions live.
    public func manualCommand(stateDirectory: String) -> String {
        switch self {
        case let .create(n, uuid, t, _): "dmsetup create \(n) -u \(uuid) --table '\(t.shellText)'"
        case let .load(n, t): "dmsetup load \(n) --table '\(t.shellText)'"
        case let .clearInactive(n): "dmsetup clear \(n)"
        case let .suspend(n, lockfs): "dmsetup suspend\(lockfs ? "" : " --nolockfs") \(n)"
        case let .resume(n): "dmsetup resume \(n)"
        case let .remove(n): "dmsetup remove \(n)"
        case let .zeroHeader(p, b): "dd if=/dev/zero of=\(p) bs=\(b) count=1 oflag=sync"
        case let .releaseCOW(p, b): "wipefs -a \(p) && dd if=/dev/zero of=\(p) bs=\(b) count=1 oflag=sync"
        case let .syncFilesystem(m): "sync -f \(m)"
        case let .freeze(m): "fsfreeze -f \(m)"
        case let .thaw(m), let .thawIfFrozen(m): "fsfreeze -u \(m)"
        case let .freezeCgroup(c): "echo 1 > \(c)/cgroup.freeze"
        case let .thawCgroup(c): "echo 0 > \(c)/cgroup.freeze"
        case let .save(s): "(dmsnap state: set \(s.name) should be recorded as \(s.phase.rawValue))"
        case let .deleteState(n): "rm \(stateDirectory)/\(n).json"
        case let .createView(n, uuid, origin, size, _): "dmsetup create \(n) -u \(uuid) (snapshot of \(origin) over a scratch loop, \(size) sectors)"
        case let .createFile(p, b): "truncate -s \(b) \(p) && chmod 600 \(p)"
        case let .deleteFile(p): "rm \(p)"
        case let .attachLoop(p, dio): "losetup -f --show\(dio ? " --direct-io=on" : "") \(p)"
        case let .detachLoop(p): "losetup -d $(losetup -n -O NAME -j \(p))"
        case let .makeDirectory(p): "mkdir \(p)"
        case let .removeDirectory(p): "rmdir \(p)"
        case let .mount(d, mp, type, o): "mount -t \(type) -o ro,nodev,nosuid,noexec\(o.isEmpty ? "" : "," + o) \(d) \(mp)"
        case let .unmount(mp): "umount \(mp)"
        case let .restoreMount(e, device, from):
            if let from { "mount --bind \(from) \(e.mountPoint) && mount -o remount,bind,\(e.options.joined(separator: ",")) \(e.mountPoint)" }
            else { "mount -t \(e.fsType) -o \((e.options + e.superOptions.filter { $0 != "rw" && $0 != "ro" }).joined(separator: ",")) \(device) \(e.mountPoint)" }
        case let .stopUnit(u): "systemctl stop \(u)"
        case let .startUnit(u): "systemctl start \(u)"
        case let .saveVolume(v): "(dmsnap state: prepared volume \(v.name) should be recorded)"
        case let .deleteVolume(n): "rm \(stateDirectory)/volumes/\(n).json"
        }
    }
}

extension Table {
    /// The table for `dmsetup --table '…'` (`\n` between targets). A keyed table is never printed
    /// with its key (dmsnap refuses to take one, so a plan never holds one).
    var shellText: String {
        (holdsSecret ? description : kernelText).split(separator: "\n").joined(separator: "\\n")
    }
}

/// A step of a plan: what to do and, if a later step fails, how to undo it.
public struct Step: Hashable, Sendable {
    public var action: Action
    /// Run in order on rollback. Empty when there is nothing to undo.
    public var undo: [Action]
    /// When set, a failure of this step does not fail the plan: the executor reports this text
    /// with the error as a warning and goes on (for clean-up after the point of no return whose
    /// failure leaves nothing the set depends on, e.g. wiping a dead COW).
    public var warning: String?

    public init(_ action: Action, undo: [Action] = [], warning: String? = nil) {
        self.action = action
        self.undo = undo
        self.warning = warning
    }

    /// Releasing a COW at the end of a merge, discard or recovery: the set no longer depends on
    /// it, so a COW that cannot be written (a dead disk) only earns a warning.
    public static func release(_ cow: String, bytes: Int) -> Step {
        Step(.releaseCOW(cow, bytes: bytes),
             warning: "\(cow): COW still carries a snapshot header; wipe its first chunk before reusing it")
    }

    /// The end of a member's COW: a file dmsnap made is deleted (its loop, which no table holds
    /// any more, has detached itself); any other COW is released for reuse.
    public static func release(_ m: SnapshotSet.Member, bytes: Int) -> Step {
        guard m.cowFile?.created == true else { return release(m.cow, bytes: bytes) }
        return Step(.deleteFile(m.cow), warning: "\(m.cow): the COW file dmsnap made could not be deleted; remove it by hand")
    }
}

/// An ordered list of steps. Steps before `commitIndex` are rolled back on failure; once the step
/// at `commitIndex` has succeeded the plan only rolls forward: a later failure undoes nothing
/// except what must never be left behind (a suspended device, a frozen filesystem). A negative
/// `commitIndex` means the plan only rolls forward from its first step (recovery, forgetting).
public struct Plan: Hashable, Sendable {
    public var steps: [Step]
    public var commitIndex: Int

    public init(steps: [Step], commitIndex: Int? = nil) {
        self.steps = steps
        self.commitIndex = commitIndex ?? (steps.count - 1)
    }

    public var actions: [Action] { steps.map(\.action) }
}

/// A request that cannot be carried out; nothing was changed.
public struct PlanError: Error, Hashable, Sendable, CustomStringConvertible {
    public var subject: String
    public var reason: String
    public init(_ subject: String, _ reason: String) {
        self.subject = subject
        self.reason = reason
    }
    public var description: String { subject.isEmpty ? reason : "\(subject): \(reason)" }
}
