// dmsnap-test: the kernel suite's build of dmsnap. The same commands as the shipped binary, plus
// the fault-injection hook: DMSNAP_TEST_FAULT=fail:N makes the N-th changing kernel call fail with
// EIO, kill:N sends the process SIGKILL just before it, int:N / term:N SIGINT / SIGTERM,
// delay:N:MS sleeps MS milliseconds before it. Never installed or packaged. It never writes to
// the system log.
import DMSnap
import DMSnapCLI
import DMSnapTesting
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

var runtime = Runtime.production
runtime.syslog = false  // the suite's lines stay out of the system log
if let fault = ProcessInfo.processInfo.environment["DMSNAP_TEST_FAULT"] {
    guard let mode = FaultInjector.mode(fault) else {
        writeStandardError("dmsnap: DMSNAP_TEST_FAULT: expected fail:N, kill:N, int:N, term:N or delay:N:MS, got '\(fault)'\n")
        exit(2)
    }
    runtime.makeKernel = { FaultInjector(LinuxKernel(logger: $0), mode: mode) }
}
Runtime.$current.withValue(runtime) { DMSnapCommand.main() }
