import DMSnap

/// A one-line progress bar on stderr for terminals; silent otherwise.
final class ProgressBar {
    let enabled: Bool
    let label: String
    private var shown = false

    init(enabled: Bool, label: String) {
        self.enabled = enabled
        self.label = label
    }

    func update(_ fraction: Double) {
        guard enabled else { return }
        let width = 30
        let filled = Int((fraction * Double(width)).rounded(.down))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let percent = fixed(fraction * 100, 0)
        writeStandardError("\r\(label) [\(bar)] \(String(repeating: " ", count: max(0, 3 - percent.count)) + percent)%")
        shown = true
    }

    func finish() {
        if shown { writeStandardError("\n") }
        shown = false
    }
}
