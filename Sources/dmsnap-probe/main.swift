// dmsnap-probe: drives the DMSnap library directly, for the kernel suite and the benchmark.
//   dmsnap-probe cycle NAME COUNT          suspend+resume NAME COUNT times, print max/mean ms
//   dmsnap-probe take SET DEVICE=COW...    take a set through SnapshotManager
//   dmsnap-probe state SET                 print "device state used%" per member
import DMSnap
#if canImport(Glibc)
import Glibc
#endif

func fail(_ message: String) -> Never {
    writeStandardError("dmsnap-probe: \(message)\n")
    exit(1)
}

let args = Array(CommandLine.arguments.dropFirst())
guard let command = args.first else { fail("usage: dmsnap-probe cycle|take|state ...") }

switch command {
case "cycle":
    guard args.count == 3, let name = try? DeviceName(args[1]), let count = Int(args[2]), count > 0 else {
        fail("usage: dmsnap-probe cycle NAME COUNT")
    }
    let dm = LibDeviceMapper()
    var worst = Duration.zero
    var total = Duration.zero
    for _ in 0..<count {
        let start = ContinuousClock.now
        do {
            try dm.suspend(name, lockfs: true)
        } catch { fail(error.description) }
        do { try dm.resume(name) } catch { fail("\(error) — device may be left suspended") }
        let d = ContinuousClock.now - start
        worst = max(worst, d)
        total += d
    }
    let info: DeviceInfo?
    do { info = try dm.info(name) } catch { fail(error.description) }
    guard let info, !info.suspended else { fail("\(name) is suspended after the cycles") }
    let ms = { (d: Duration) in Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15 }
    print("cycles=\(count) max_ms=\(ms(worst)) mean_ms=\(ms(total) / Double(count))")
case "take":
    guard args.count >= 3 else { fail("usage: dmsnap-probe take SET DEVICE=COW...") }
    do {
        let pairs = try args.dropFirst(2).map { s throws(PlanError) in try TakeRequest.pair(s) }
        let set = try SnapshotManager().take(TakeRequest(set: args[1], pairs: pairs))
        print("took \(set.name) phase=\(set.phase.rawValue) members=\(set.members.map(\.device.value).joined(separator: ","))")
    } catch { fail("\(error)") }
case "state":
    guard args.count == 2 else { fail("usage: dmsnap-probe state SET") }
    do {
        for s in try SnapshotManager().status(args[1]) {
            for d in s.devices { print("\(d.device) \(d.state.rawValue) \(d.usedPercent ?? -1)") }
        }
    } catch { fail("\(error)") }
default:
    fail("unknown command '\(command)'")
}
