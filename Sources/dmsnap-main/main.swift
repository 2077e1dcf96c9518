// The shipped dmsnap: the commands of DMSnapCLI against the real kernel. No test hook.
import DMSnapCLI

DMSnapCommand.main()
