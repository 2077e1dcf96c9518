import DMSnap

/// A one-line progress bar on stderr for terminals; silent otherwise.
final class ProgressBar {
    let enabled: Bool
    let label: String
    private var shown = false
    private var lastDraw: ContinuousClock.Instant?

    init(enabled: Bool, label: String) {
        self.enabled = enabled
        self.label = label
    }

    func update(_ fraction: Double, suffix: String = "") {
        guard enabled else { return }
        let width = 30
        let filled = Int((fraction * Double(width)).rounded(.down))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let percent = fixed(fraction * 100, 0)
        writeStandardError("\r\(label) [\(bar)] \(String(repeating: " ", count: max(0, 3 - percent.count)) + percent)%\(suffix)\u{1b}[K")
        shown = true
    }

    /// Bytes done of a total, with the rate and the time left: `[####------] 40% 1.2 GiB of 3.0 GiB, 210 MiB/s, 9 s left`.
    func update(bytes done: UInt64, of total: UInt64, since start: ContinuousClock.Instant) {
        guard enabled else { return }
        // a few redraws a second, and the last one
        let now = ContinuousClock.now
        if let last = lastDraw, now - last < .milliseconds(200), done < total { return }
        lastDraw = now
        let seconds = max((ContinuousClock.now - start).seconds, 0.001)
        let rate = Double(done) / seconds
        let left = rate > 0 ? Double(total - min(done, total)) / rate : 0
        update(total == 0 ? 1 : Double(done) / Double(total),
               suffix: " \(Self.size(done)) of \(Self.size(total)), \(Self.size(UInt64(rate)))/s, \(Int(left.rounded())) s left")
    }

    static func size(_ bytes: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(bytes)
        var i = 0
        while v >= 1024, i < units.count - 1 {
            v /= 1024
            i += 1
        }
        return i == 0 ? "\(bytes) B" : "\(fixed(v, 1)) \(units[i])"
    }

    func finish() {
        if shown { writeStandardError("\n") }
        shown = false
    }
}
