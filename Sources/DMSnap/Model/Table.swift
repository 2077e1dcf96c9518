/// One line of a device-mapper table: `START LENGTH TYPE PARAMS`.
public struct TargetLine: Hashable, Sendable, Codable, CustomStringConvertible {
    public var start: Sectors
    public var length: Sectors
    public var type: String
    public var params: String

    public init(start: Sectors, length: Sectors, type: String, params: String) {
        self.start = start
        self.length = length
        self.type = type
        self.params = params
    }

    /// Parses `0 204800 linear 7:0 0`. Whitespace between fields is folded.
    public init(parsing line: some StringProtocol) throws(ModelError) {
        let text = String(line)
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard fields.count >= 3 else { throw .invalidTargetLine(text, "expected START LENGTH TYPE [PARAMS]") }
        guard let start = UInt64(fields[0]) else { throw .invalidTargetLine(text, "bad start '\(fields[0])'") }
        guard let length = UInt64(fields[1]), length > 0 else {
            throw .invalidTargetLine(text, "bad length '\(fields[1])'")
        }
        let type = String(fields[2])
        guard type.utf8.count < 16, type.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
            throw .invalidTargetLine(text, "bad target type '\(type)'")
        }
        self.init(start: Sectors(start), length: Sectors(length), type: type,
                  params: fields.dropFirst(3).joined(separator: " "))
    }

    public var description: String {
        params.isEmpty ? "\(start) \(length) \(type)" : "\(start) \(length) \(type) \(params)"
    }
}

/// A whole table: target lines that cover `0..<size` without gaps or overlaps.
public struct Table: Hashable, Sendable, Codable, CustomStringConvertible {
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

    /// Parses the text `dmsetup table` prints (one target per line).
    public init(parsing text: some StringProtocol) throws(ModelError) {
        var lines: [TargetLine] = []
        for raw in text.split(separator: "\n") where !raw.trimmingWhitespace().isEmpty {
            lines.append(try TargetLine(parsing: raw))
        }
        try self.init(lines)
    }

    public var size: Sectors { targets.reduce(Sectors(0)) { $0 + $1.length } }
    public var description: String { targets.map(\.description).joined(separator: "\n") }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let raw = try container.decode(String.self)
        do { try self.init(parsing: raw) } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.description)
        }
    }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// Parameters of a `snapshot` / `snapshot-merge` target: `ORIGIN COW PERSISTENT CHUNK`.
public struct SnapshotParams: Hashable, Sendable {
    public var origin: DeviceNumber
    public var cow: DeviceNumber
    public var persistent: String
    public var chunk: Sectors

    public init(origin: DeviceNumber, cow: DeviceNumber, persistent: String = "P", chunk: Sectors) {
        self.origin = origin
        self.cow = cow
        self.persistent = persistent
        self.chunk = chunk
    }

    public init(parsing params: String) throws(ModelError) {
        let f = params.split(separator: " ")
        guard f.count == 4, let chunk = UInt64(f[3]) else {
            throw .invalidTargetLine(params, "expected ORIGIN COW P|N|PO CHUNK")
        }
        self.init(origin: try DeviceNumber(f[0]), cow: try DeviceNumber(f[1]), persistent: String(f[2]), chunk: Sectors(chunk))
    }

    public var text: String { "\(origin) \(cow) \(persistent) \(chunk)" }

    public func table(size: Sectors, merge: Bool) -> Table {
        precondition(size.value > 0, "a snapshot table needs a non-empty device")
        // A single non-empty target covering the whole device can never fail Table's checks.
        return try! Table([TargetLine(start: 0, length: size, type: merge ? "snapshot-merge" : "snapshot", params: text)])
    }
}
