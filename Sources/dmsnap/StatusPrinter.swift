import DMSnap

/// The `lvs`-like table of `status` and `take`: one row per device.
enum StatusPrinter {
    static func table(_ sets: [SetStatus], fields: [StatusField], headings: Bool) {
        var rows: [[String]] = []
        for s in sets {
            for d in s.devices {
                rows.append(fields.map { f in
                    switch f {
                    case .set: s.name
                    case .setState: s.state.rawValue
                    case .created: s.created.map(Timestamp.string) ?? "-"
                    case .device: d.device
                    case .base: d.base
                    case .cow: d.cow
                    case .chunkSectors: String(d.chunkSectors)
                    case .cowTotalSectors: String(d.cowTotalSectors)
                    case .cowUsedSectors: d.cowUsedSectors.map(String.init) ?? "-"
                    case .metadataSectors: d.metadataSectors.map(String.init) ?? "-"
                    case .usedPercent: d.usedPercent.map { fixed($0, 2) } ?? "-"
                    case .state: d.state.rawValue
                    case .cowKind: d.cowKind + (d.volatile ? " (volatile)" : "")
                    case .cowLoop: d.cowLoop ?? "-"
                    case .timeToFull: d.secondsToFull.map(duration) ?? (d.monitored ? "not filling" : "-")
                    }
                })
            }
        }
        let text = Output.columns(rows, header: headings ? fields.map(\.heading) : nil)
        if !text.isEmpty { print(text) }
    }

    /// `45s`, `12m`, `3h20m`, `2d4h`.
    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m" }
        if s < 86400 { return "\(s / 3600)h\(s % 3600 / 60)m" }
        return "\(s / 86400)d\(s % 86400 / 3600)h"
    }
}
