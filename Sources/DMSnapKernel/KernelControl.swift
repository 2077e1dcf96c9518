// DMSnapKernel — the kernel: device-mapper, block devices, filesystems and mounts. The only user
// of the C boundary (CDeviceMapper); file descriptors through swift-system; every failure a
// `KernelError` with the call, the device and its errno. Depends on the model, not on planning.
import DMSnapModel
import SystemPackage

// What dmsnap needs from the kernel, split by concern. `LinuxKernel` is the real one (the only
// user of the C boundary); the DMSnapTesting target has an in-memory model of it for unit tests.
// Every call is synchronous.

/// Device-mapper: the control ioctls on /dev/mapper/control.
public protocol DeviceMapperControl: AnyObject {
    /// True when the process may issue device-mapper ioctls (root / CAP_SYS_ADMIN).
    var isPrivileged: Bool { get }

    func list() throws(KernelError) -> [DeviceListEntry]
    /// nil when no device of that name exists.
    func info(_ name: DeviceName) throws(KernelError) -> DeviceInfo?
    func table(_ name: DeviceName) throws(KernelError) -> Table
    func status(_ name: DeviceName) throws(KernelError) -> [TargetStatus]
    /// Devices the live table uses.
    func dependencies(_ name: DeviceName) throws(KernelError) -> [DeviceNumber]
    /// Creates a device and activates `table` (load + resume). `hidden` keeps udev's disk
    /// rules (by-uuid links, auto-mount) off it, like lvm2's `-real` layers.
    func create(_ name: DeviceName, uuid: String, table: Table, hidden: Bool) throws(KernelError)
    /// Loads the inactive table slot.
    func load(_ name: DeviceName, table: Table) throws(KernelError)
    /// Drops the inactive table slot.
    func clearInactive(_ name: DeviceName) throws(KernelError)
    /// `lockfs: false` skips the kernel's own filesystem freeze (needed when dmsnap froze it).
    func suspend(_ name: DeviceName, lockfs: Bool) throws(KernelError)
    /// Resumes; swaps in the inactive table when one is loaded.
    func resume(_ name: DeviceName) throws(KernelError)
    func remove(_ name: DeviceName) throws(KernelError)
    /// `true`: from now on a resume does not wait for udev to process its event (its udev cookie
    /// is kept); `false`: waits for every kept cookie. The freeze window holds them: a resume
    /// inside it must not wait a udev round trip while filesystems are frozen.
    func holdUdevWaits(_ hold: Bool)
    /// Creates the hidden dm device `name`: a non-persistent snapshot of `origin` whose COW is a
    /// loop over an unlinked file of `scratch` sectors in memory (/run); the loop detaches itself
    /// when the device is removed.
    func createView(_ name: DeviceName, uuid: String, origin: DeviceName, size: Sectors, scratch: Sectors) throws(KernelError)
}

/// Block devices: facts, exclusive users, signatures, and the COW header.
public protocol BlockDeviceControl: AnyObject {
    /// A block device's number and size; fails for anything that is not a block device.
    func blockDevice(at path: String) throws(KernelError) -> BlockDeviceInfo
    /// A path for the block device with this number (`/dev/mapper/NAME` for a dm device, else
    /// `/dev/NAME` from sysfs); nil when there is none.
    func path(of number: DeviceNumber) -> String?
    /// For a loop device: its backing file and the device of the filesystem holding the file
    /// (sysfs `loop/backing_file`, then stat); nil for anything else.
    func loopBacking(of number: DeviceNumber) -> LoopBacking?
    /// What identifies the block device at `path` across reboots, best first: its partition's
    /// UUID, its WWN, the UUID of the filesystem or LUKS container on it (none: nothing does).
    func identities(of path: String) -> [VolumeIdentity]
    /// The block devices, dm devices aside, that carry `identity` now.
    func blockDevices(with identity: VolumeIdentity) -> [String]
    /// The block devices stacked directly on this one (sysfs `holders`: dm devices on it, md…).
    func holders(of number: DeviceNumber) -> [DeviceNumber]
    /// True when someone else holds the device open exclusively (mounted, claimed by dm, …).
    func isClaimed(_ path: String) throws(KernelError) -> Bool
    /// The first filesystem / RAID / LVM / partition-table signature libblkid finds, if any.
    func probeSignature(_ path: String) throws(KernelError) -> String?
    /// Reads the first `bytes` bytes (fewer if the device is smaller).
    func readHeader(_ path: String, bytes: Int) throws(KernelError) -> [UInt8]
    /// Reads `count` bytes at `offset` with O_DIRECT (both multiples of the logical block
    /// size): past the page cache, so a reader never sees stale cached data and a backup does not
    /// push the live system's pages out. Fewer bytes at the end of the device.
    func readDirect(_ path: String, offset: UInt64, count: Int) throws(KernelError) -> [UInt8]
    /// Writes `bytes` zero bytes at offset 0 and syncs them.
    func zeroHeader(_ path: String, bytes: Int) throws(KernelError)
    /// Streams the block device at `path` to `output` (large O_DIRECT reads, with `checksum` a
    /// SHA-256 of what was read, optional compression; a raw file output is sparse). `progress` gets the bytes
    /// read so far and says whether to go on (false stops with EINTR, leaving no output file).
    func exportImage(_ path: String, to output: ExportOutput, compression: Compression, level: Int,
                     checksum: Bool, progress: (UInt64) -> Bool) throws(KernelError) -> ExportSummary
    /// Erases the magic of every signature libblkid finds (as `wipefs -a` does) and syncs.
    /// Returns what was wiped.
    @discardableResult
    func wipeSignatures(_ path: String) throws(KernelError) -> [String]
}

/// Filesystems and mounts.
public protocol FilesystemControl: AnyObject {
    func mounts() throws(KernelError) -> [MountEntry]
    /// Mounts `device` at `mountPoint` read-only, nodev, nosuid, noexec, with `options`.
    func mountFilesystem(_ device: String, at mountPoint: String, type: String, options: String) throws(KernelError)
    func unmountFilesystem(_ mountPoint: String) throws(KernelError)
    /// Mounts `device` again as `entry` had it (`dmsnap run --remount`): its type, mount flags and
    /// filesystem options; a bind mount (root not `/`) of `bindFrom` with the entry's flags.
    func restoreMount(_ entry: MountEntry, device: String, bindFrom: String?) throws(KernelError)
    /// mkdir, mode 0700.
    func makeDirectory(_ path: String) throws(KernelError)
    /// rmdir (of an empty directory).
    func removeDirectory(_ path: String) throws(KernelError)
    /// True when `path` is an empty directory; nil when it is no directory.
    func isEmptyDirectory(_ path: String) -> Bool?
    /// The device of the filesystem that holds `path` (its `st_dev`); nil when `path` does not
    /// exist.
    func fileSystemDevice(of path: String) -> DeviceNumber?
    func syncFilesystem(_ mountPoint: String) throws(KernelError)
    func freeze(_ mountPoint: String) throws(KernelError)
    func thaw(_ mountPoint: String) throws(KernelError)
}

/// COW files and the loop devices they run on.
public protocol FileControl: AnyObject {
    /// What `path` is as a COW file, nothing changed. Fails when its directory does not exist or
    /// cannot be read.
    func inspectFile(_ path: String) throws(KernelError) -> FileFacts
    /// Creates `path` sparse and `bytes` long: O_EXCL, never through a symlink, mode 0600.
    func createFile(_ path: String, bytes: UInt64) throws(KernelError)
    /// Grows the regular file `path` to `bytes` (sparse); never shrinks it.
    func growFile(_ path: String, to bytes: UInt64) throws(KernelError)
    /// Removes the regular file `path` (not a symlink; ENOENT is success).
    func deleteFile(_ path: String) throws(KernelError)
    /// Attaches a free loop device to the regular file `path` (LOOP_CONFIGURE, autoclear; direct
    /// I/O when asked and the backing filesystem allows it).
    func attachLoop(_ path: String, directIO: Bool) throws(KernelError) -> LoopAttachment
    /// Closes dmsnap's descriptor of the loop: a loop no table holds detaches itself.
    func releaseLoop(_ loop: LoopAttachment)
    /// After `file` grew: checks that loop `number` runs on that very file, tells it to re-read the
    /// size (LOOP_SET_CAPACITY) and returns the loop's size now.
    func refreshLoopCapacity(_ number: DeviceNumber, file: String) throws(KernelError) -> Sectors
    /// Free (to unprivileged users) and total bytes of the filesystem holding `path`.
    func space(of path: String) throws(KernelError) -> (free: UInt64, total: UInt64)
}

/// The cgroup v2 freezer: freezing the processes of an application around a take.
public protocol CgroupControl: AnyObject {
    /// What the directory `path` is as a cgroup (nothing changed).
    func inspectCgroup(_ path: String) throws(KernelError) -> CgroupFacts
    /// The cgroup of the systemd unit `name` (found under the cgroup2 mount, without asking
    /// systemd); nil when there is none.
    func cgroup(ofUnit name: String) -> String?
    /// Writes 1 to `cgroup.freeze` and waits until `cgroup.events` says `frozen 1` (at most
    /// `timeout`: then it writes 0 again and fails with ETIMEDOUT).
    func freezeCgroup(_ path: String, timeout: Duration?) throws(KernelError)
    /// Writes 0 to `cgroup.freeze` (harmless when the cgroup is not frozen).
    func thawCgroup(_ path: String) throws(KernelError)
}

/// How a program ended.
public struct ProgramOutcome: Hashable, Sendable, CustomStringConvertible {
    public var exitCode: Int32?
    public var signal: Int32?
    public var timedOut: Bool
    public init(exitCode: Int32?, signal: Int32? = nil, timedOut: Bool = false) {
        self.exitCode = exitCode
        self.signal = signal
        self.timedOut = timedOut
    }
    public var succeeded: Bool { exitCode == 0 && !timedOut }
    public var description: String {
        if timedOut { return "timed out (killed)" }
        if let exitCode { return "exit \(exitCode)" }
        return "killed by signal \(signal ?? 0)"
    }
}

/// Running hooks: programs without a shell.
public protocol ProcessControl: AnyObject {
    /// Runs `argv` (PATH searched) with the environment plus `environment`, in its own process
    /// group; past `timeout` the group is killed.
    func run(_ argv: [String], environment: [String: String], timeout: Duration?) throws(KernelError) -> ProgramOutcome
    /// Runs `argv` (PATH searched) in the foreground (dmsnap's process group, terminal and
    /// standard streams) with the environment plus `environment`, until it ends; a SIGINT or
    /// SIGTERM sent to dmsnap (after `catchInterrupts`) is passed on to it.
    func runCommand(_ argv: [String], environment: [String: String]) throws(KernelError) -> ProgramOutcome
    /// The path `program` runs from (PATH searched) when it is an executable regular file.
    func executable(_ program: String) -> String?
    /// The executable regular files of `directory`, in name order (none when it is missing).
    func hookFiles(in directory: String) -> [String]
}

/// Facts about the running kernel.
public protocol SystemControl: AnyObject {
    /// This boot's id (`/proc/sys/kernel/random/boot_id`); nil when it cannot be read.
    var bootID: String? { get }
}

/// The guardian of a freeze window: a process that outlives dmsnap and, if dmsnap dies while the
/// window is open (SIGKILL included), resumes what is suspended and thaws what is frozen.
public protocol WindowGuard: AnyObject {
    /// Before the first suspend or freeze of the window.
    func windowOpens()
    /// Once nothing is suspended or frozen any more.
    func windowCloses()
    /// The plan is over: the guardian exits.
    func stop()
}

/// Starting window guardians.
public protocol GuardianControl: AnyObject {
    /// A guardian for a window that suspends `devices` (with the plan's lockfs choice for each),
    /// freezes the filesystems at `mountPoints` and the cgroups (directories) `cgroups`.
    func startGuardian(devices: [(name: DeviceName, lockfs: Bool)], mountPoints: [String],
                       cgroups: [String]) throws(KernelError) -> any WindowGuard
}

/// Everything dmsnap asks of the kernel.
public typealias KernelControl = DeviceMapperControl & BlockDeviceControl & FilesystemControl & FileControl & SystemControl
    & GuardianControl & CgroupControl & ProcessControl

/// A failed kernel call: which call, on which device, and the errno the kernel gave.
public struct KernelError: Error, Hashable, Sendable, CustomStringConvertible {
    public var call: String
    public var device: String
    public var errno: Errno?
    public var detail: String

    public init(call: String, device: String, errno: Errno?, detail: String = "") {
        self.call = call
        self.device = device
        self.errno = errno
        self.detail = detail
    }

    /// `vg-root: resume failed: Device or resource busy`
    public var description: String {
        var reason = errno?.description ?? ""
        if !detail.isEmpty { reason = reason.isEmpty ? detail : "\(reason) (\(detail))" }
        if reason.isEmpty { reason = "failed" }
        return "\(device): \(call) failed: \(reason)"
    }

    /// The same failure as a path lookup result for the planner.
    public var lookupFailure: LookupFailure { LookupFailure(errno: errno, detail: detail) }
}
