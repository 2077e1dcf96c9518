/// A device as a table names it: by number (`253:0`, what the kernel reports), by path, or a
/// device-mapper device by name that a plan creates before loading the table (the executor turns
/// it into a number first, so a loaded table reads back the same as the one dmsnap records).
public enum DeviceRef: Hashable, Sendable, CustomStringConvertible {
    case number(DeviceNumber)
    case mapper(DeviceName)
    case path(String)

    /// `253:0` is a number, `/dev/mapper/NAME` a mapper name, anything else a path.
    public init(parsing token: String) throws(ModelError) {
        if let n = try? DeviceNumber(parsing: token) {
            self = .number(n)
        } else if token.hasPrefix("/dev/mapper/"), let name = try? DeviceName(String(token.dropFirst(12))) {
            self = .mapper(name)
        } else if token.hasPrefix("/") {
            self = .path(token)
        } else {
            throw .invalidNumber(token)
        }
    }

    public var description: String {
        switch self {
        case let .number(n): n.description
        case let .mapper(name): name.path
        case let .path(p): p
        }
    }

    public var number: DeviceNumber? { if case let .number(n) = self { n } else { nil } }
}

/// `linear DEVICE OFFSET`
public struct LinearParams: Hashable, Sendable {
    public var device: DeviceRef
    public var offset: Sectors
    public init(device: DeviceRef, offset: Sectors) {
        self.device = device
        self.offset = offset
    }
}

/// `striped COUNT CHUNK DEVICE OFFSET [DEVICE OFFSET]...`
public struct StripedParams: Hashable, Sendable {
    public struct Stripe: Hashable, Sendable {
        public var device: DeviceRef
        public var offset: Sectors
        public init(device: DeviceRef, offset: Sectors) {
            self.device = device
            self.offset = offset
        }
    }
    public var chunk: Sectors
    public var stripes: [Stripe]
    public init(chunk: Sectors, stripes: [Stripe]) {
        self.chunk = chunk
        self.stripes = stripes
    }
}

/// Parameters of a `snapshot` / `snapshot-merge` target: `ORIGIN COW STORE CHUNK`.
public struct SnapshotParams: Hashable, Sendable {
    /// How the exception store lives on the COW.
    public enum Store: String, Hashable, Sendable {
        /// Kept on the COW, survives a reboot (what dmsnap uses).
        case persistent = "P"
        /// In memory only.
        case transient = "N"
        /// Persistent; a full COW reports `Overflow` instead of invalidating the snapshot.
        case persistentOverflow = "PO"
    }

    public var origin: DeviceRef
    public var cow: DeviceRef
    public var store: Store
    public var chunk: Sectors

    public init(origin: DeviceRef, cow: DeviceRef, store: Store = .persistent, chunk: Sectors) {
        self.origin = origin
        self.cow = cow
        self.store = store
        self.chunk = chunk
    }

    public init(origin: DeviceNumber, cow: DeviceNumber, store: Store = .persistent, chunk: Sectors) {
        self.init(origin: .number(origin), cow: .number(cow), store: store, chunk: chunk)
    }

    public init(parsing params: String) throws(ModelError) {
        do { self = try Self(fields: params.split(separator: " ").map(String.init)) } catch {
            throw .invalidTargetLine(params, error.why)
        }
    }

    init(fields f: [String]) throws(TargetParams.FieldError) {
        guard f.count == 4, let store = Store(rawValue: f[2]), let chunk = UInt64(f[3]), chunk > 0 else {
            throw .init("expected ORIGIN COW P|N|PO CHUNK")
        }
        self.init(origin: try TargetParams.device(f[0]), cow: try TargetParams.device(f[1]), store: store,
                  chunk: Sectors(chunk))
    }

    public var text: String { "\(origin) \(cow) \(store.rawValue) \(chunk)" }

    /// The whole-device table of this snapshot (`merge`: as `snapshot-merge`).
    public func table(size: Sectors, merge: Bool) -> Table {
        Table.single(size: size, merge ? .snapshotMerge(self) : .snapshot(self))
    }
}

/// `crypt CIPHER KEY IV_OFFSET DEVICE OFFSET [OPTIONAL...]`, kept opaque: the key is never shown
/// (`description`), only the kernel text carries it.
public struct CryptParams: Hashable, Sendable, CustomStringConvertible {
    public var cipher: String
    /// The key field: hex bytes, or `:SIZE:TYPE:DESCRIPTION` for a key in the kernel keyring.
    var key: String
    public var ivOffset: String
    public var device: DeviceRef
    public var offset: Sectors
    public var optional: [String]

    init(fields f: [String]) throws(TargetParams.FieldError) {
        guard f.count >= 5, let offset = UInt64(f[4]) else {
            throw .init("expected CIPHER KEY IV_OFFSET DEVICE OFFSET [OPTIONS]")
        }
        cipher = f[0]
        key = f[1]
        ivOffset = f[2]
        device = try TargetParams.device(f[3])
        self.offset = Sectors(offset)
        optional = Array(f.dropFirst(5))
    }

    /// True when the table carries the key itself (not a keyring reference).
    public var keyInTable: Bool { !key.hasPrefix(":") && key != "-" }

    var kernelText: String { ([cipher, key, ivOffset, device.description, offset.description] + optional).joined(separator: " ") }
    public var description: String {
        ([cipher, "<key hidden>", ivOffset, device.description, offset.description] + optional).joined(separator: " ")
    }
}

/// A target's parameters, typed for the targets dmsnap reads into; any other target is kept as its
/// text. Parsing and printing are symmetric: `TargetParams(type:fields:)` of `kernelText` gives the
/// same value.
public enum TargetParams: Hashable, Sendable, CustomStringConvertible {
    case linear(LinearParams)
    case striped(StripedParams)
    case snapshot(SnapshotParams)
    case snapshotMerge(SnapshotParams)
    case error
    case crypt(CryptParams)
    /// Any other target: its type and parameter text as the kernel gives them.
    case other(type: String, params: String)

    struct FieldError: Error {
        var why: String
        init(_ why: String) { self.why = why }
    }

    static func device(_ token: String) throws(FieldError) -> DeviceRef {
        do { return try DeviceRef(parsing: token) } catch { throw FieldError("bad device '\(token)'") }
    }

    static func sectors(_ token: String, _ what: String) throws(FieldError) -> Sectors {
        guard let v = UInt64(token) else { throw FieldError("bad \(what) '\(token)'") }
        return Sectors(v)
    }

    init(type: String, fields f: [String]) throws(FieldError) {
        guard type.utf8.count < 16, !type.isEmpty,
              type.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
            throw FieldError("bad target type '\(type)'")
        }
        switch type {
        case "linear":
            guard f.count == 2 else { throw FieldError("expected DEVICE OFFSET") }
            self = .linear(LinearParams(device: try Self.device(f[0]), offset: try Self.sectors(f[1], "offset")))
        case "striped":
            guard f.count >= 4, let n = Int(f[0]), n >= 1, f.count == 2 + 2 * n else {
                throw FieldError("expected COUNT CHUNK and COUNT pairs of DEVICE OFFSET")
            }
            var stripes: [StripedParams.Stripe] = []
            for i in 0..<n {
                stripes.append(.init(device: try Self.device(f[2 + 2 * i]), offset: try Self.sectors(f[3 + 2 * i], "offset")))
            }
            self = .striped(StripedParams(chunk: try Self.sectors(f[1], "chunk size"), stripes: stripes))
        case "snapshot": self = .snapshot(try SnapshotParams(fields: f))
        case "snapshot-merge": self = .snapshotMerge(try SnapshotParams(fields: f))
        case "error":
            guard f.isEmpty else { throw FieldError("error takes no parameters") }
            self = .error
        case "crypt": self = .crypt(try CryptParams(fields: f))
        default: self = .other(type: type, params: f.joined(separator: " "))
        }
    }

    public var type: String {
        switch self {
        case .linear: "linear"
        case .striped: "striped"
        case .snapshot: "snapshot"
        case .snapshotMerge: "snapshot-merge"
        case .error: "error"
        case .crypt: "crypt"
        case let .other(type, _): type
        }
    }

    /// The exact parameter text the kernel takes and reports.
    public var kernelText: String {
        switch self {
        case let .linear(p): "\(p.device) \(p.offset)"
        case let .striped(p): (["\(p.stripes.count)", "\(p.chunk)"] + p.stripes.flatMap { ["\($0.device)", "\($0.offset)"] }).joined(separator: " ")
        case let .snapshot(p), let .snapshotMerge(p): p.text
        case .error: ""
        case let .crypt(p): p.kernelText
        case let .other(_, params): params
        }
    }

    /// For people and logs: like `kernelText`, with a crypt key hidden.
    public var description: String {
        if case let .crypt(p) = self { return p.description }
        return kernelText
    }

    /// The snapshot parameters of a `snapshot` or `snapshot-merge` target.
    public var snapshot: SnapshotParams? {
        switch self {
        case let .snapshot(p), let .snapshotMerge(p): p
        default: nil
        }
    }

    public var isSnapshot: Bool { snapshot != nil }

    /// Key material in the table: dm-crypt (a key, or a reference to one in the kernel keyring).
    public var holdsSecret: Bool { if case .crypt = self { true } else { false } }

    /// Every device the target refers to (for `other` targets: the `MAJ:MIN` tokens).
    public var devices: [DeviceRef] {
        switch self {
        case let .linear(p): [p.device]
        case let .striped(p): p.stripes.map(\.device)
        case let .snapshot(p), let .snapshotMerge(p): [p.origin, p.cow]
        case .error: []
        case let .crypt(p): [p.device]
        case let .other(_, params):
            params.split(separator: " ").compactMap { token in
                token.contains(":") ? (try? DeviceNumber(parsing: token)).map(DeviceRef.number) : nil
            }
        }
    }

    func mapDevices<E: Error>(_ f: (DeviceRef) throws(E) -> DeviceRef) throws(E) -> TargetParams {
        switch self {
        case var .linear(p):
            p.device = try f(p.device)
            return .linear(p)
        case var .striped(p):
            for i in p.stripes.indices { p.stripes[i].device = try f(p.stripes[i].device) }
            return .striped(p)
        case var .snapshot(p):
            p.origin = try f(p.origin)
            p.cow = try f(p.cow)
            return .snapshot(p)
        case var .snapshotMerge(p):
            p.origin = try f(p.origin)
            p.cow = try f(p.cow)
            return .snapshotMerge(p)
        case var .crypt(p):
            p.device = try f(p.device)
            return .crypt(p)
        case .error, .other: return self
        }
    }
}
