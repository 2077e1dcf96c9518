import Logging

/// `dmsnap run SET DEVICE=COW... -- CMD`: a snapshot as a safety net around a risky change.
public struct RunRequest: Sendable {
    public enum AfterSuccess: String, Sendable, CaseIterable { case merge, keep }
    public enum AfterFailure: String, Sendable, CaseIterable { case discard, keep }

    public var take: TakeRequest
    /// The program and its arguments (run without a shell, in the foreground).
    public var command: [String]
    public var onSuccess: AfterSuccess = .merge
    public var onFailure: AfterFailure = .discard
    /// Roll back mounted filesystems: stop the take's units, unmount, discard, mount again with
    /// the original options, start the units.
    public var remount = false

    public init(take: TakeRequest, command: [String]) {
        self.take = take
        self.command = command
    }
}

/// How a `run` ended.
public struct RunOutcome: Sendable {
    public enum Action: String, Sendable { case merged, kept, discarded }

    public var set: String
    public var command: ProgramOutcome
    /// SIGINT or SIGTERM that reached dmsnap while the command ran (passed on to it).
    public var signal: Int32?
    public var action: Action
    /// Mount points unmounted for the rollback and mounted again.
    public var remounted: [String] = []
    /// Why a rollback did not happen (the set is kept) and what to do: one line.
    public var problem: String?
    /// Post-thaw hooks that failed (the set was taken).
    public var hookFailures: [String] = []

    /// The command exited 0 and was not interrupted.
    public var succeeded: Bool { command.succeeded && signal == nil }

    /// What `dmsnap run` exits with: the command's status (128 + signal when a signal ended it;
    /// 128 + the signal dmsnap got when the command exited 0 anyway).
    public var exitStatus: Int32 {
        if let code = command.exitCode, code != 0 { return code }
        if let s = command.signal { return 128 + s }
        if let signal { return 128 + signal }
        return command.succeeded ? 0 : 1
    }
}

extension SnapshotManager {
    /// What a rollback must not pull away: dmsnap's binary and its state directory.
    var floor: [String: String] {
        ["/proc/self/exe": "dmsnap's own binary", store.location: "dmsnap's state directory"]
    }

    /// Takes the set, runs the command, then merges (`onSuccess`) or rolls back (`onFailure`).
    /// Bad input — an empty or missing command, a rollback of what dmsnap runs from — is
    /// refused before the take. A merge that fails is thrown (the command's work is still in the
    /// set); a rollback that cannot happen keeps the set and says why (`RunOutcome.problem`).
    public func run(_ request: RunRequest, taken: (SnapshotSet) -> Void = { _ in },
                    progress: (MergeProgress) -> Void = { _ in }) throws(DMSnapError) -> RunOutcome {
        guard let program = request.command.first, !program.isEmpty else {
            throw .refused(PlanError("run", "no command given (dmsnap run SET DEVICE=COW... -- CMD [ARGS...])"))
        }
        guard kernel.executable(program) != nil else {
            throw .refused(PlanError(program, KernelView.notExecutable(runs: "it")))
        }
        var take = request.take
        if request.onFailure == .discard { take.floor = floor }
        let set = try self.take(take)
        let hookFailures = self.hookFailures
        taken(set)
        let name = set.name.value
        let outcome: ProgramOutcome
        do {
            outcome = try kernel.runCommand(request.command, environment: [
                "DMSNAP_SET": name, "DMSNAP_DEVICES": set.members.map(\.device.value).joined(separator: " "),
            ])
        } catch {
            // (checked above; a program that vanished since) the set is kept as after a failure
            outcome = ProgramOutcome(exitCode: 127)
            logger.error("\(program): \(error)")
        }
        let signal = interruption?()
        // passed on to the command; the merge or rollback that follows must not stop for it
        if signal != nil { clearInterruption?() }
        var result = RunOutcome(set: name, command: outcome, signal: signal, action: .kept, hookFailures: hookFailures)
        if result.succeeded {
            if request.onSuccess == .merge {
                try merge(name, wait: true, progress: progress)
                result.action = .merged
            }
            return result
        }
        guard request.onFailure == .discard else { return result }
        if request.remount {
            return try rollbackRemounting(set, units: request.take.units, into: result)
        }
        do {
            try discard(name)
            result.action = .discarded
        } catch let .refused(e) {
            result.problem = "\(e); the set is kept: unmount its filesystems and run 'dmsnap discard \(name)' to roll back (or 'dmsnap merge \(name)' to keep the changes), or use 'dmsnap run --remount' next time"
        }
        return result
    }

    /// Stops the units, unmounts the set's filesystems, discards, mounts them again and starts the
    /// units. A filesystem that cannot be unmounted (busy) puts everything back and keeps the set.
    func rollbackRemounting(_ set: SnapshotSet, units: [String], into result: RunOutcome) throws(DMSnapError) -> RunOutcome {
        var result = result
        let name = set.name.value
        let v = try view(scope: .of([set]))
        let (down, up) = try plan { () throws(PlanError) in try Planner.remount(set, units: units, view: v) }
        let mountPoints = down.actions.compactMap { if case let .unmount(mp) = $0 { mp } else { nil } }
        let listed = mountPoints.reversed().joined(separator: " ")
        do { try execute(down) } catch {
            guard case let .failed(e) = error, e.rolledBack else { throw error }
            var busy = ""
            if case let .unmount(mp) = e.step { busy = ": stop what keeps \(mp) busy (fuser -vm \(mp))," }
            result.problem = "\(e.step.description) failed (\(e.cause)); everything is mounted and running again and the set is kept\(busy) then unmount \(listed) and run 'dmsnap discard \(name)' (or 'dmsnap merge \(name)' to keep the changes)"
            return result
        }
        var discardError: DMSnapError?
        do { try discard(name) } catch { discardError = error }
        // mounted and started again whether or not the discard worked
        var failures: [String] = []
        for action in up {
            do { try executor.perform(action) } catch {
                failures.append("\(action.description): \(error) (by hand: \(action.manualCommand(stateDirectory: store.location)))")
            }
        }
        if !failures.isEmpty {
            logger.error("set \(name): \(failures.joined(separator: "; "))")
        }
        if let discardError {
            result.problem = "the discard failed (\(discardError)); the set is kept, its filesystems mounted again\(failures.isEmpty ? "" : " except: " + failures.joined(separator: "; "))"
            return result
        }
        result.action = .discarded
        result.remounted = mountPoints.reversed()
        if !failures.isEmpty {
            result.problem = "the set was discarded, but " + failures.joined(separator: "; ")
        }
        return result
    }
}
