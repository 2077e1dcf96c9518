extension SnapshotManager {
    /// Brings sets a killed dmsnap left half-way to a consistent state: resumes suspended
    /// devices, then finishes or undoes the interrupted step, and thaws. Idempotent. Returns one
    /// line per set saying what it did.
    /// A set whose description cannot be read, or was deleted, is rebuilt from the kernel first
    /// (the unreadable file is kept under another name).
    public func recover(_ name: String? = nil) throws(DMSnapError) -> [String] {
        try requireRoot()
        let names: [String]
        if let name {
            _ = try lookup(name)
            names = [name]
        } else {
            let v = try view(scope: .recordedSets)
            names = (v.sets.map(\.name) + v.unreadable.map(\.name) + v.strayBases.values).map(\.value).uniqued()
        }
        var report: [String] = []
        for n in names {
            let settled = try journaled(n, "recover", { $0.changed ? $0.lines.joined(separator: "; ") : nil }) {
                () throws(DMSnapError) -> (lines: [String], needsMerge: Bool, changed: Bool) in
                try locked { () throws(DMSnapError) -> (lines: [String], needsMerge: Bool, changed: Bool) in try recoverLocked(n) }
            }
            let (lines, needsMerge) = (settled.lines, settled.needsMerge)
            if needsMerge { try merge(n) }
            report += lines
        }
        return report
    }

    /// Settles one set: the lines saying what happened, whether a merge is to be finished, and
    /// whether anything changed.
    func recoverLocked(_ name: String) throws(DMSnapError) -> (lines: [String], needsMerge: Bool, changed: Bool) {
        var lines: [String] = []
        let set: SnapshotSet
        switch try lookup(name) {
        case let .recorded(recorded): set = recorded
        case let .stray(setName, view):
            guard let rebuilt = try rebuild(setName, view, into: &lines) else { return (lines, false, true) }
            set = rebuilt
        }
        let (line, needsMerge, changed) = try settle(set)
        return (lines + [line], needsMerge, changed || !lines.isEmpty)
    }

    /// Rebuilds the description of `name` from its devices in the kernel and records it. With no
    /// devices left, an unreadable description is only moved aside (nothing else to recover).
    func rebuild(_ name: SetName, _ view: KernelView, into lines: inout [String]) throws(DMSnapError) -> SnapshotSet? {
        let bases = view.strayBases.filter { $0.value == name }.keys.sorted()
        let unreadable = view.unreadable.first { $0.name == name }
        var kept: String?
        if unreadable != nil {
            do { kept = try store.quarantine(name) } catch { throw .from(error) }
        }
        guard !bases.isEmpty else {
            lines.append("set \(name): its description cannot be read and no device of it is left; the file was kept as \(kept ?? "?")")
            return nil
        }
        let lives = bases.compactMap(DMSnapNaming.live(ofBase:))
        let set = try plan { () throws(PlanError) in
            try Planner.reconstruct(name, devices: lives, view: view, cowPaths: view.devicePaths)
        }
        do { try store.save(set) } catch { throw .from(error) }
        let why = kept.map { "its description could not be read (kept as \($0))" } ?? "its description was gone"
        lines.append("rebuilt set \(name) from the kernel (\(lives.count) device\(lives.count == 1 ? "" : "s")): \(why)")
        return set
    }

    func settle(_ set: SnapshotSet) throws(DMSnapError) -> (String, Bool, Bool) {
        let v1 = try view(scope: .of([set]))
        let first = try plan { () throws(PlanError) in try Planner.resumeStage(set, view: v1) }
        try execute(first)
        let v2 = try view(scope: .of([set]))
        let settlement = try plan { () throws(PlanError) in try Planner.settleStage(set, view: v2) }
        try execute(settlement.plan)
        var line = settlement.summary
        let resumed = first.steps.count
        if resumed > 0 { line += " (resumed \(resumed) suspended device\(resumed == 1 ? "" : "s"))" }
        return (line, settlement.needsMerge, resumed > 0 || !settlement.plan.steps.isEmpty)
    }

    /// Records each base's fingerprint (after take, outside the freeze window) and returns the
    /// set with them. A base that cannot be read, or a record that cannot be saved, is reported
    /// as a warning: `activate` then cannot check that device after a reboot.
    func recordFingerprints(_ set: SnapshotSet) -> SnapshotSet {
        var updated = set
        for (i, m) in set.members.enumerated() {
            do {
                let header = try kernel.readHeader(m.base.path, bytes: Fingerprint.bytes)
                updated.members[i].baseFingerprint = Fingerprint.of(header: header, size: m.size)
            } catch {
                logger.warning("\(m.device): cannot record the frozen image's fingerprint (\(error)); activate after a reboot will not be able to check this device")
            }
        }
        guard updated != set else { return set }
        do { try store.save(updated) } catch {
            logger.warning("set \(set.name): cannot save the fingerprints (\(error)); activate after a reboot will not be able to check the devices")
            return set
        }
        return updated
    }

    /// After a reboot: rebuilds the snapshot stack of `name` on the re-created live devices from
    /// the persistent COWs. Refuses a device whose content changed since take unless `force`.
    public func activate(_ name: String, force: Bool = false) throws(DMSnapError) {
        _ = try existing(name)
        try journaled(name, "activate", { force ? "activated (--force: not checked against the take)" : "activated" }) { () throws(DMSnapError) in
            try locked { () throws(DMSnapError) in try activateLocked(name, force: force) }
        }
    }

    /// At boot (`dmsnap activate --all`, the dmsnap-activate unit): activates every inactive set
    /// whose live devices all exist again; leaves the others, saying why. One failure does not
    /// stop the rest. Returns what happened to each recorded set.
    public func activateAll() throws(DMSnapError) -> [BootActivation] {
        var outcomes: [BootActivation] = []
        for status in try status() {
            guard status.state == .inactive else {
                let why = status.state == .active ? "already active" : status.summary
                outcomes.append(BootActivation(set: status.name, outcome: .skipped, detail: why))
                continue
            }
            let set = try existing(status.name)
            let v = try view(scope: .of([set]))
            let missing = set.members.filter { v.devices[$0.device] == nil }.map(\.device.value)
            guard missing.isEmpty else {
                outcomes.append(BootActivation(set: status.name, outcome: .skipped,
                                               detail: "not there yet: \(missing.joined(separator: ", ")); run 'dmsnap activate \(status.name)' once it is"))
                continue
            }
            do {
                try activate(status.name)
                outcomes.append(BootActivation(set: status.name, outcome: .activated, detail: nil))
            } catch {
                outcomes.append(BootActivation(set: status.name, outcome: .failed, detail: error.description))
            }
        }
        return outcomes
    }

    func activateLocked(_ name: String, force: Bool) throws(DMSnapError) {
        let set = try existing(name)
        let files = set.members.filter { $0.cowFile != nil }.map(\.cow)
        let v = try view(paths: [], probePaths: set.members.filter { $0.cowFile == nil }.map(\.cow), scope: .of([set]), files: files)
        var fingerprints: [DeviceName: String] = [:]
        for m in set.members {
            // Only read devices that exist and are not suspended (the planner refuses the rest).
            if let live = v.devices[m.device], !live.info.suspended, live.table == m.originalTable {
                do {
                    fingerprints[m.device] = Fingerprint.of(header: try kernel.readHeader(m.device.path, bytes: Fingerprint.bytes), size: m.size)
                } catch { throw .kernel(error) }
            }
        }
        let (_, activation) = try plan { () throws(PlanError) in
            try Planner.activate(set, view: v, fingerprints: fingerprints, force: force)
        }
        if set.phase == .active, !force {
            for m in set.members where m.baseFingerprint == nil {
                logger.warning("\(m.device): no fingerprint was recorded at take; cannot check that it is unchanged since")
            }
        }
        try execute(activation)
    }
}

extension Array where Element: Hashable {
    /// The elements in order, each once.
    func uniqued() -> [Element] {
        var seen: Set<Element> = []
        return filter { seen.insert($0).inserted }
    }
}

/// What `activateAll` did with one set.
public struct BootActivation: Hashable, Sendable, Encodable {
    public enum Outcome: String, Hashable, Sendable, Encodable { case activated, skipped, failed }
    public var set: String
    public var outcome: Outcome
    /// Why it was skipped or failed.
    public var detail: String?

    public init(set: String, outcome: Outcome, detail: String?) {
        self.set = set
        self.outcome = outcome
        self.detail = detail
    }
}
