// DMSnapCLI (Sources/dmsnap) — the command line: one file per subcommand that parses, calls the
// DMSnap library and prints; the printers, the progress bar, the error mapping and the logging
// in files of their own. The executables `dmsnap` and `dmsnap-test` run `DMSnapCommand.main()`.
import ArgumentParser
import DMSnap
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The root command: configuration only. Each subcommand is a file of its own; the printers,
/// the progress bar and the error mapping are too.
public struct DMSnapCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "dmsnap",
        abstract: "Consistent, online device-mapper snapshots of a set of block devices.",
        discussion: ExitStatus.helpText,
        version: DMSnapVersion.string,
        subcommands: [Take.self, Status.self, Merge.self, Discard.self, Recover.self, Activate.self, Forget.self, Changes.self, Export.self, Mount.self, Umount.self, Devices.self,
                      Extend.self, Monitor.self, Run.self, Prepare.self, Unprepare.self]
    )

    public init() {}

    /// Runs the command line in `Runtime.current` and exits: every error becomes one line on
    /// stderr and a documented exit status.
    public static func main() {
        CLILog.bootstrap()
        let status: ExitStatus
        do {
            let (arguments, passthrough) = Run.splitCommand(Array(CommandLine.arguments.dropFirst()))
            var command = try parseAsRoot(arguments)
            if var run = command as? Run {
                run.command = passthrough
                command = run
            }
            try command.run()
            status = .ok
        } catch let done as CommandStatus {
            CLILog.flush()
            Glibc.exit(done.code)
        } catch let error as CLIError {
            CLILog.flush()
            Output.error(error.message)
            status = error.status
        } catch {
            if let code = (error as? ExitCode) {
                status = code == .success ? .ok : .failed
            } else {
                let code = exitCode(for: error)
                if code == .success {
                    print(fullMessage(for: error))
                    status = .ok
                } else {
                    // Usage errors: one line, util-linux style, pointing to --help.
                    let text = message(for: error).split(separator: "\n").first.map(String.init) ?? "usage error"
                    Output.error("\(text) (see 'dmsnap --help')")
                    status = .usage
                }
            }
        }
        CLILog.flush()
        Glibc.exit(status.rawValue)
    }
}
