/// One line of a device-mapper table: `START LENGTH TYPE PARAMS`, with typed parameters.
/// Stored as its kernel text.
public struct TargetLine: Hashable, Sendable, CodableAsString, CustomStringConvertible {
    public var start: Sectors
    public var length: Sectors
    public var params: TargetParams

    public init(start: Sectors, length: Sectors, _ params: TargetParams) {
        self.start = start
        self.length = length
        self.params = params
    }

    /// The target type (`linear`, `snapshot`, …).
    public var type: String { params.type }

    /// Parses `0 204800 linear 7:0 0`. Whitespace between fields is folded.
    public init(parsing line: some StringProtocol) throws(ModelError) {
        let text = String(line)
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard fields.count >= 3 else { throw .invalidTargetLine(text, "expected START LENGTH TYPE [PARAMS]") }
        guard let start = UInt64(fields[0]) else { throw .invalidTargetLine(text, "bad start '\(fields[0])'") }
        guard let length = UInt64(fields[1]), length > 0 else {
            throw .invalidTargetLine(text, "bad length '\(fields[1])'")
        }
        let params: TargetParams
        do { params = try TargetParams(type: String(fields[2]), fields: fields.dropFirst(3).map(String.init)) } catch {
            // Never echo a crypt line: it may hold a key.
            let shown = String(fields[2]) == "crypt" ? "\(start) \(length) crypt <hidden>" : text
            throw .invalidTargetLine(shown, error.why)
        }
        self.init(start: Sectors(start), length: Sectors(length), params)
    }

    /// The exact text the kernel takes and reports (a crypt key included).
    public var kernelText: String {
        let p = params.kernelText
        return p.isEmpty ? "\(start) \(length) \(type)" : "\(start) \(length) \(type) \(p)"
    }

    /// For people and logs: a crypt key is never shown.
    public var description: String {
        let p = params.description
        return p.isEmpty ? "\(start) \(length) \(type)" : "\(start) \(length) \(type) \(p)"
    }

    public init(codedText: String) throws(ModelError) { try self.init(parsing: codedText) }
    public var codedText: String { kernelText }
}

/// A whole table: target lines that cover `0..<size` without gaps or overlaps. Stored as its
/// kernel text.
public struct Table: Hashable, Sendable, CodableAsString, CustomStringConvertible {
    public var targets: [TargetLine]

    public init(_ targets: [TargetLine]) throws(ModelError) {
        guard !targets.isEmpty else { throw .invalidTable("no targets") }
        var next = Sectors(0)
        for t in targets {
            guard t.length.value > 0 else { throw .invalidTable("target '\(t)' has zero length") }
            guard t.start == next else {
                throw .invalidTable("target '\(t)' starts at \(t.start), expected \(next)")
            }
            let (end, overflow) = next.value.addingReportingOverflow(t.length.value)
            guard !overflow else { throw .invalidTable("target '\(t)' ends past 2^64 sectors") }
            next = Sectors(end)
        }
        self.targets = targets
    }

    /// One target covering `0..<size`. `size` must not be zero.
    public static func single(size: Sectors, _ params: TargetParams) -> Table {
        precondition(size.value > 0, "a table needs a non-empty device")
        // A single non-empty target starting at 0 can never fail Table's checks.
        return try! Table([TargetLine(start: 0, length: size, params)])
    }

    /// Parses the text `dmsetup table` prints (one target per line).
    public init(parsing text: some StringProtocol) throws(ModelError) {
        var lines: [TargetLine] = []
        for raw in text.split(separator: "\n") where !raw.trimmingWhitespace().isEmpty {
            lines.append(try TargetLine(parsing: raw))
        }
        try self.init(lines)
    }

    public var size: Sectors { targets.reduce(Sectors(0)) { $0 + $1.length } }
    /// The kernel's text (newline between targets).
    public var kernelText: String { targets.map(\.kernelText).joined(separator: "\n") }
    /// For people and logs (newline between targets); never shows a key.
    public var description: String { targets.map(\.description).joined(separator: "\n") }
    /// On one line, targets separated by ` | `.
    public var oneLine: String { targets.map(\.description).joined(separator: " | ") }

    /// True when a target holds key material (dm-crypt).
    public var holdsSecret: Bool { targets.contains { $0.params.holdsSecret } }

    /// Every device the table refers to.
    public var devices: [DeviceRef] { targets.flatMap(\.params.devices) }

    /// The same table with every device reference replaced by `transform`'s.
    public func mapDevices<E: Error>(_ transform: (DeviceRef) throws(E) -> DeviceRef) throws(E) -> Table {
        var out = self
        for i in out.targets.indices { out.targets[i].params = try out.targets[i].params.mapDevices(transform) }
        return out
    }

    public init(codedText: String) throws(ModelError) { try self.init(parsing: codedText) }
    public var codedText: String { kernelText }
}
