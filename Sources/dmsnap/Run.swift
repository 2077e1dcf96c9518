import ArgumentParser
import DMSnap

extension RunRequest.AfterSuccess: ExpressibleByArgument {}
extension RunRequest.AfterFailure: ExpressibleByArgument {}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Take a set, run a command, then keep its changes or roll them back.",
        usage: """
            dmsnap run <set> <DEVICE=COW[:SIZE]>... [take options] [--remount]
                   [--on-success merge|keep] [--on-failure discard|keep]
                   -- <command> [<argument>...]
            """,
        discussion: """
            A safety net around a risky change (an upgrade, a migration): the set is taken as by \
            'dmsnap take', then the command runs in the foreground, without a shell, with DMSNAP_SET \
            and DMSNAP_DEVICES in its environment. If it exits 0, the set is merged (every change \
            kept); otherwise the set is discarded (the devices go back to the image taken before \
            it). SIGINT and SIGTERM to dmsnap are passed to the command and count as a failure.

            A mounted filesystem can only be rolled back unmounted: with --remount, dmsnap stops \
            the --freeze-unit services, unmounts the set's filesystems, discards, mounts them again \
            with their options and starts the services. Without it, or when a filesystem is busy, \
            the set is kept and dmsnap says what to do.

            Exit status: the command's (128 + N when signal N ended it); dmsnap's own (see \
            'dmsnap --help') when the take failed or was refused, or a merge failed. dmsnap's \
            lines go to stderr; the command has stdout.
            """
    )

    @Argument(help: "Name of the new set: 1-64 of [A-Za-z0-9._+-].") var set: String
    @Argument(help: ArgumentHelp("DEVICE=COW pairs (DEVICE alone with --cow-dir).", valueName: "DEVICE=COW[:SIZE]"))
    var pairs: [DevicePair] = []
    /// What follows `--` (swift-argument-parser cannot have it after the pairs' array: main
    /// splits it off, `splitCommand`).
    var command: [String] = []
    @OptionGroup var options: TakeOptions
    @Option(help: ArgumentHelp("When the command succeeds: merge or keep the set.", valueName: "action"))
    var onSuccess: RunRequest.AfterSuccess = .merge
    @Option(help: ArgumentHelp("When it fails (or is interrupted): discard or keep the set.", valueName: "action"))
    var onFailure: RunRequest.AfterFailure = .discard
    @Flag(help: "Unmount the set's filesystems to roll back, and mount them again.") var remount = false
    @Flag(help: "Print the outcome as JSON (on stdout, after the command's output).") var json = false
    @OptionGroup var common: ChangeOptions

    struct Result: Encodable {
        var set: String
        var exitCode: Int32?
        var signal: String?
        var action: String
        var remounted: [String]
        var problem: String?
        var status: Int32

        enum CodingKeys: String, CodingKey {
            case set, exitCode = "exit_code", signal, action, remounted, problem, status
        }
    }

    func run() throws {
        var request = RunRequest(take: try options.request(set: set, pairs: pairs), command: command)
        request.onSuccess = onSuccess
        request.onFailure = onFailure
        request.remount = remount
        let manager = makeManager(common)
        let bar = ProgressBar(enabled: Output.isTerminal && !json, label: "merging \(set)")
        defer { bar.finish() }
        let name = command.first ?? ""
        let result = try cli { () throws(DMSnapError) in
            try manager.run(request, taken: { taken in
                Output.note("took set \(set) (\(taken.members.map(\.device.value).joined(separator: ", "))); running \(name)")
            }, progress: { bar.update($0.fraction) })
        }
        bar.finish()
        result.hookFailures.forEach { Output.warning("\($0) (the set was taken)") }
        let passed = result.signal.map { " after dmsnap got \(signalName($0)) and passed it on" } ?? ""
        let ended = "\(name) \(result.command.exitCode.map { "exited \($0)" } ?? result.command.description)\(passed)"
        if json {
            try Output.json(Result(set: set, exitCode: result.command.exitCode, signal: result.signal.map(signalName),
                                   action: result.action.rawValue, remounted: result.remounted, problem: result.problem,
                                   status: result.exitStatus))
        }
        switch (result.succeeded, result.action) {
        case (true, .merged):
            Output.note("\(ended); merged set \(set): the devices keep every change")
        case (true, _):
            Output.note("\(ended); set \(set) kept: 'dmsnap merge \(set)' keeps the changes, 'dmsnap discard \(set)' (unmounted) throws them away")
        case (false, .discarded) where result.problem == nil:
            let again = result.remounted.isEmpty ? "" : " and are mounted again (\(result.remounted.joined(separator: ", ")))"
            Output.note("\(ended); rolled back: set \(set) discarded, its devices hold the image taken before \(name)\(again)")
        case (false, _):
            if let problem = result.problem {
                Output.note("\(ended); \(problem)")
            } else {
                Output.note("\(ended); set \(set) kept (--on-failure keep): 'dmsnap discard \(set)' (unmounted) rolls back, 'dmsnap merge \(set)' keeps the changes")
            }
        }
        throw CommandStatus(code: result.problem != nil && result.exitStatus == 0 ? ExitStatus.failed.rawValue : result.exitStatus)
    }
}

extension Run {
    /// Splits `run ... -- CMD ARGS` into the arguments to parse and the command.
    static func splitCommand(_ arguments: [String]) -> (arguments: [String], command: [String]) {
        guard arguments.first == "run", let dashes = arguments.firstIndex(of: "--") else { return (arguments, []) }
        return (Array(arguments[..<dashes]), Array(arguments[(dashes + 1)...]))
    }

    /// Parses a `run` command line (without the program name), the command after `--` included.
    static func parse(commandLine arguments: [String]) throws -> Run {
        let (args, command) = splitCommand(["run"] + arguments)
        var run = try parse(Array(args.dropFirst()))
        run.command = command
        return run
    }
}

/// Ends dmsnap with this status (`run`: its command's).
struct CommandStatus: Error {
    var code: Int32
}
