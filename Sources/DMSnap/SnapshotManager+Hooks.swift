import FoundationEssentials
import Logging

/// Hooks around a take: the pre-freeze ones after planning (nothing changed yet) and before the
/// plan, the post-thaw ones after it — also when the take failed or a pre-freeze hook did, so a
/// hook's "unlock" always follows its "lock". Never inside the freeze window.
extension SnapshotManager {
    /// The drop-in directory (`$DMSNAP_HOOKS_DIR`, default `/etc/dmsnap/hooks.d`).
    public static var defaultHooksDirectory: String {
        if let dir = ProcessInfo.processInfo.environment["DMSNAP_HOOKS_DIR"], !dir.isEmpty { return dir }
        return "/etc/dmsnap/hooks.d"
    }

    /// The hooks of a take, checked before anything runs: each command split into words (no
    /// shell) and its program found and executable; the drop-ins of the hooks directory, in name
    /// order, get the phase as their argument.
    func hooks(for request: TakeRequest) throws(DMSnapError) -> [Hook] {
        var out: [Hook] = []
        func command(_ text: String, _ phase: Hook.Phase) throws(DMSnapError) -> Hook {
            let argv: [String]
            do { argv = try ShellWords.split(text) } catch { throw .refused(PlanError("--\(phase.rawValue)", error.description)) }
            guard kernel.executable(argv[0]) != nil else {
                throw .refused(PlanError("--\(phase.rawValue)", "'\(argv[0])' is not an executable program (PATH searched; no shell runs the hook: use sh -c '...' for one)"))
            }
            return Hook(phase: phase, argv: argv, text: text)
        }
        let dropIns = kernel.hookFiles(in: hooksDirectory)
        for text in request.preFreeze { out.append(try command(text, .preFreeze)) }
        out += dropIns.map { Hook(phase: .preFreeze, argv: [$0, Hook.Phase.preFreeze.rawValue], text: $0) }
        for text in request.postThaw { out.append(try command(text, .postThaw)) }
        out += dropIns.map { Hook(phase: .postThaw, argv: [$0, Hook.Phase.postThaw.rawValue], text: $0) }
        return out
    }

    /// Runs the hooks of `phase` in order; returns the failures (one line each). A pre-freeze
    /// run stops at the first failure.
    func run(_ hooks: [Hook], _ phase: Hook.Phase, set: SetName, devices: [String], timeout: Duration,
             result: String? = nil) -> [String] {
        var failures: [String] = []
        var env = ["DMSNAP_SET": set.value, "DMSNAP_PHASE": phase.rawValue, "DMSNAP_DEVICES": devices.joined(separator: " ")]
        if let result { env["DMSNAP_RESULT"] = result }
        for hook in hooks where hook.phase == phase {
            logger.trace("hook \(phase.rawValue): \(hook.text)")
            do {
                let outcome = try kernel.run(hook.argv, environment: env, timeout: timeout)
                logger.trace("done hook \(phase.rawValue): \(hook.text): \(outcome)")
                if !outcome.succeeded { failures.append("\(phase.rawValue) hook '\(hook.text)' failed (\(outcome))") }
            } catch {
                failures.append("\(phase.rawValue) hook '\(hook.text)' could not run (\(error))")
            }
            if phase == .preFreeze, !failures.isEmpty { break }
        }
        return failures
    }
}
