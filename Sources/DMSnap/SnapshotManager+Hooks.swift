import FoundationEssentials
import Logging

/// Hooks around a take (looked up with the kernel view, `KernelView.readHooks`, recorded by the
/// planner): the pre-freeze ones after planning (nothing changed yet) and before the plan, the
/// post-thaw ones after it — also when the take failed or a pre-freeze hook did, so a
/// hook's "unlock" always follows its "lock". Never inside the freeze window.
extension SnapshotManager {
    /// The drop-in directory (`$DMSNAP_HOOKS_DIR`, default `/etc/dmsnap/hooks.d`).
    public static var defaultHooksDirectory: String {
        if let dir = ProcessInfo.processInfo.environment["DMSNAP_HOOKS_DIR"], !dir.isEmpty { return dir }
        return "/etc/dmsnap/hooks.d"
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
