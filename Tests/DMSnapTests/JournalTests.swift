import DMSnap
import DMSnapTesting
import Logging
import Testing

/// The journal (issue 17): one line per state change of a set, with the set, the action and the
/// outcome; none for a refusal or a command that changed nothing.
@Suite struct JournalTests {
    final class Journal: @unchecked Sendable {
        var lines: [(level: Logger.Level, text: String, outcome: String?)] = []
    }

    func fixture(devices: Int = 1) -> (SnapFixture, Journal) {
        let f = SnapFixture(devices: devices)
        let journal = Journal()
        f.manager.journal = Logger(label: "dmsnap.journal") { _ in
            SinkLogHandler(logLevel: .trace) { event in
                journal.lines.append((event.level, "\(event.message)", event.metadata?["outcome"].map { "\($0)" }))
            }
        }
        return (f, journal)
    }

    @Test func lifecycleWritesOneLinePerChange() throws {
        let (f, journal) = fixture(devices: 2)
        f.take("s")
        _ = try f.manager.startMerge("s")
        _ = try f.manager.startMerge("s")  // already merging: nothing changed, no line
        try f.manager.merge("s")
        f.take("t")
        try f.manager.discard("t")
        #expect(journal.lines.map(\.text) == [
            "set s: taken: \(Fx.live(0))=\(Fx.cow(0)), \(Fx.live(1))=\(Fx.cow(1))",
            "set s: merge started",
            "set s: merged: every change is in the devices; set forgotten",
            "set t: taken: \(Fx.live(0))=\(Fx.cow(0)), \(Fx.live(1))=\(Fx.cow(1))",
            "set t: discarded: the devices hold the frozen image again; set forgotten",
        ])
        #expect(journal.lines.allSatisfy { $0.level == .notice && $0.outcome == "done" })
    }

    @Test func refusalWritesNothing() {
        let (f, journal) = fixture()
        let refused = attempt { () throws(DMSnapError) in try f.manager.discard("nope") }
        guard case .failure(.refused) = refused else { Issue.record("expected a refusal: \(refused)"); return }
        let bad = attempt { () throws(DMSnapError) in
            try f.manager.take(TakeRequest(set: "s", pairs: [("nope", Fx.cow(0))]))
        }
        guard case .failure(.refused) = bad else { Issue.record("expected a refusal: \(bad)"); return }
        #expect(journal.lines.isEmpty, "\(journal.lines)")
    }

    @Test func failedTakeIsAnErrorLineSayingRolledBack() {
        let (f, journal) = fixture()
        f.dm.failWhen = { $0.hasPrefix("suspend") }
        let result = attempt { () throws(DMSnapError) in try f.manager.take(f.request()) }
        guard case .failure(.failed) = result else { Issue.record("expected a failure: \(result)"); return }
        #expect(journal.lines.count == 1)
        #expect(journal.lines.first?.level == .error)
        #expect(journal.lines.first?.outcome == "rolled back")
        #expect(journal.lines.first?.text.hasPrefix("set s: take failed, rolled back: ") == true, "\(journal.lines)")
    }

    @Test func recoverWritesOnlyWhatItChanged() throws {
        let (f, journal) = fixture()
        f.take("s")
        _ = try f.manager.recover("s")  // healthy: nothing to do
        #expect(journal.lines.count == 1, "\(journal.lines)")
    }
}
