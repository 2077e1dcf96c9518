extension KernelView {
    /// Looks up the cgroups a take would freeze: the directories given and the units' cgroups.
    public mutating func readCgroups(_ kernel: some KernelControl, _ request: TakeRequest) {
        for unit in request.units where units[unit] == nil {
            if let cg = kernel.cgroup(ofUnit: unit) { units[unit] = cg }
        }
        for path in request.cgroups + Array(units.values) where cgroups[path] == nil {
            do { cgroups[path] = .success(try kernel.inspectCgroup(path)) } catch { cgroups[path] = .failure(error.lookupFailure) }
        }
    }

    /// Looks up the filesystems of `request.floor`'s paths (and the loops they are on).
    public mutating func readFloors(_ kernel: some KernelControl, _ request: TakeRequest) {
        for path in request.floor.keys {
            // a directory not made yet will be made in the nearest one that exists
            var existing = path
            while kernel.fileSystemDevice(of: existing) == nil, existing.contains("/"), existing != "/" {
                existing = String(existing[..<existing.lastIndex(of: "/")!])
                if existing.isEmpty { existing = "/" }
            }
            guard var n = kernel.fileSystemDevice(of: existing) else { continue }
            floors[path] = n
            for _ in 0..<8 {
                guard loopBackings[n] == nil, let b = kernel.loopBacking(of: n) else { break }
                loopBackings[n] = b
                n = b.fileSystemDevice
            }
        }
    }

    /// Why a command's program cannot run: neither a path nor on PATH, or not executable.
    static func notExecutable(runs what: String) -> String {
        "is not an executable program (PATH searched; no shell runs \(what): use sh -c '...' for one)"
    }

    /// Looks up the hooks of a take: each command split into words (no shell) and its program
    /// found and executable; the drop-ins of `directory`, in name order, get the phase as their
    /// argument. A command that cannot run is the take's refusal (`hooks` holds it).
    public mutating func readHooks(_ kernel: some KernelControl, _ request: TakeRequest, directory: String) {
        func command(_ text: String, _ phase: Hook.Phase) throws(PlanError) -> Hook {
            let argv: [String]
            do { argv = try ShellWords.split(text) } catch { throw PlanError("--\(phase.rawValue)", error.description) }
            guard kernel.executable(argv[0]) != nil else {
                throw PlanError("--\(phase.rawValue)", "'\(argv[0])' \(Self.notExecutable(runs: "the hook"))")
            }
            return Hook(phase: phase, argv: argv, text: text)
        }
        let dropIns = kernel.hookFiles(in: directory)
        hooks = Result { () throws(PlanError) -> [Hook] in
            var out: [Hook] = []
            for text in request.preFreeze { out.append(try command(text, .preFreeze)) }
            out += dropIns.map { Hook(phase: .preFreeze, argv: [$0, Hook.Phase.preFreeze.rawValue], text: $0) }
            for text in request.postThaw { out.append(try command(text, .postThaw)) }
            out += dropIns.map { Hook(phase: .postThaw, argv: [$0, Hook.Phase.postThaw.rawValue], text: $0) }
            return out
        }
    }

    /// Reads what a plan needs: the dm devices in `scope` (one list ioctl finds every device's
    /// number; only the scope is read in full), the mounts, the recorded sets, and block-device
    /// facts for `paths`. `probePaths` (COWs) are also checked for exclusive users and
    /// signatures — never when they are suspended dm devices, whose I/O would block.
    /// `files` (COW file paths) are inspected as files: their filesystem's device is read too.
    public static func read(_ kernel: some KernelControl, store: some SetStore, paths: [String] = [],
                            probePaths: [String] = [], scope: Scope = .all, files: [String] = []) throws(DMSnapError) -> KernelView {
        var view = KernelView(privileged: kernel.isPrivileged, bootID: kernel.bootID)
        guard view.privileged else { return view }
        do {
            let scan = try store.scan()
            view.sets = scan.sets
            view.unreadable = scan.unreadable
        } catch { throw .from(error) }
        do {
            try view.readKernel(kernel, paths: paths, probePaths: probePaths, scope: scope, files: files)
        } catch {
            throw .kernel(error)
        }
        return view
    }

    private mutating func readKernel(_ kernel: some KernelControl, paths: [String], probePaths: [String],
                                     scope: Scope, files filePaths: [String]) throws(KernelError) {
        let listed = try kernel.list()
        var byNumber: [DeviceNumber: DeviceName] = [:]
        for entry in listed where byNumber[entry.number] == nil { byNumber[entry.number] = entry.name }

        // Block facts (stat + size ioctl; no I/O): they also say which dm devices the paths are.
        var seen: Set<String> = []
        for path in paths + probePaths where seen.insert(path).inserted {
            do { blocks[path] = .success(try kernel.blockDevice(at: path)) } catch {
                // A missing or odd path is the user's input: the planner refuses it.
                blocks[path] = .failure(error.lookupFailure)
            }
        }

        // Loops among the paths, and the loops their files live on: a COW must not live on a
        // filesystem of the set. The devices those files are on are read too (what they stack on).
        var fileSystemDevices: [DeviceNumber] = []
        var starts = blocks.values.compactMap { try? $0.get().number }
        for path in filePaths where files[path] == nil {
            do {
                let facts = try kernel.inspectFile(path)
                files[path] = .success(facts)
                if facts.kind == .regular || facts.kind == .missing {
                    starts.append(facts.fileSystemDevice)
                    fileSystemDevices.append(facts.fileSystemDevice)
                }
            } catch {
                files[path] = .failure(error.lookupFailure)
            }
        }
        for start in starts {
            var number = start
            for _ in 0..<8 {
                guard loopBackings[number] == nil, let backing = kernel.loopBacking(of: number) else { break }
                loopBackings[number] = backing
                fileSystemDevices.append(backing.fileSystemDevice)
                number = backing.fileSystemDevice
            }
        }

        var queue: [DeviceName]
        switch scope {
        case .all: queue = listed.map(\.name)
        case let .devices(names): queue = names.sorted()
        case .recordedSets: queue = Scope.names(of: sets).sorted()
        }
        // dmsnap bases no readable set owns (by name, then by uuid): an unreadable or a deleted
        // description. Looked for whenever every set is looked at, or their names are in scope.
        let owned = Scope.names(of: sets)
        for entry in listed where entry.name.value.hasSuffix(DMSnapNaming.baseSuffix) && !owned.contains(entry.name) {
            if case let .devices(names) = scope, !names.contains(entry.name) { continue }
            guard let info = try kernel.info(entry.name), let set = DMSnapNaming.set(ofBaseUUID: info.uuid) else { continue }
            strayBases[entry.name] = set
            queue.append(entry.name)
            if let live = DMSnapNaming.live(ofBase: entry.name) { queue.append(live) }
        }
        if case .all = scope {} else {
            for case let .success(block) in blocks.values { if let n = byNumber[block.number] { queue.append(n) } }
            queue += fileSystemDevices.compactMap { byNumber[$0] }
        }
        // What is stacked on the named devices and on the layer below a named crypt device (a
        // VG's LVs on a PV, a filesystem's crypt device), upwards: a take freezes the filesystems
        // up there too. Read after the devices below, then those found above.
        var upward: [DeviceNumber] = listed.filter { queue.contains($0.name) }.map(\.number)
        var read: Set<DeviceName> = []
        for pass in 0..<2 {
            while !queue.isEmpty {
                let name = queue.removeFirst()
                guard read.insert(name).inserted, let info = try kernel.info(name) else { continue }
                // A crypt table holds the volume key: cryptsetup's devices (CRYPT- uuid) are never
                // asked for it; one made by hand is forgotten as soon as it reads as crypt.
                var keyed = info.uuid.hasPrefix("CRYPT-")
                var table = info.hasLiveTable && !keyed ? try kernel.table(name) : nil
                if table?.holdsSecret == true {
                    keyed = true
                    table = nil
                }
                let deps = info.hasLiveTable ? try kernel.dependencies(name) : []
                let status = table?.targets.contains(where: \.params.isSnapshot) == true ? try kernel.status(name) : []
                devices[name] = Device(info: info, table: table, dependencies: deps, status: status, keyed: keyed)
                if keyed, pass == 0 {
                    for dep in deps where devicePaths[dep] == nil { devicePaths[dep] = kernel.path(of: dep) }
                    upward += deps
                }
                queue += deps.compactMap { byNumber[$0] }
            }
            guard pass == 0 else { break }
            while let n = upward.popLast() {
                guard holders[n] == nil else { continue }
                let above = kernel.holders(of: n)
                holders[n] = above
                upward += above
                queue += above.compactMap { byNumber[$0] }
            }
        }
        mounts = try kernel.mounts()
        // the COWs of stray sets, for rebuilding their descriptions
        for base in strayBases.keys {
            guard let live = DMSnapNaming.live(ofBase: base), let cow = devices[live]?.table?.targets.first?.params.snapshot?.cow.number,
                  devicePaths[cow] == nil else { continue }
            devicePaths[cow] = kernel.path(of: cow)
        }
        // the loops COW files run on, for status
        for set in sets {
            for m in set.members where m.cowFile != nil && devices[m.device] != nil && devicePaths[m.cowNumber] == nil {
                devicePaths[m.cowNumber] = kernel.path(of: m.cowNumber)
            }
        }
        // A member whose base is gone (after a reboot, say): its COW's header tells an inactive
        // set from an invalidated one. Never read a COW that is a suspended dm device.
        let looked: Set<DeviceName>? = switch scope {
        case .all: nil
        case let .devices(names): names
        case .recordedSets: Scope.names(of: sets)
        }
        for set in sets {
            // ... and a failed merge resumes only from a COW that reads back.
            func mergeFailed(_ m: SnapshotSet.Member) -> Bool {
                guard let live = devices[m.device] else { return false }
                return live.status.first?.snapshot == .mergeFailed || live.table == Planner.interimTable(m)
            }
            for m in set.members where (devices[m.base] == nil || mergeFailed(m)) && (looked?.contains(m.base) ?? true)
                && cowHeaders[m.cow] == nil {
                if let dm = devices.values.first(where: { $0.info.number == m.cowNumber }), dm.info.suspended { continue }
                do { cowHeaders[m.cow] = .success(try kernel.readHeader(m.cow, bytes: 512)) } catch {
                    cowHeaders[m.cow] = .failure(error.lookupFailure)
                }
            }
        }
        for path in probePaths {
            guard case let .success(block)? = blocks[path], claimed[path] == nil else { continue }
            // A dm device behind the path is in the view (read above): never probe a suspended one.
            if device(numbered: block.number)?.1.info.suspended == true { continue }
            claimed[path] = try kernel.isClaimed(path)
            if let sig = try kernel.probeSignature(path) { signatures[path] = sig }
        }
    }
}
