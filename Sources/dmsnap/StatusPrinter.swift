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
                    }
                })
            }
        }
        let text = Output.columns(rows, header: headings ? fields.map(\.heading) : nil)
        if !text.isEmpty { print(text) }
    }
}
