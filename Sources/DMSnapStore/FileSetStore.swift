import DMSnapModel
import FoundationEssentials
import SystemPackage
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One JSON file per set under the state directory (`/var/lib/dmsnap`, or `$DMSNAP_STATE_DIR`):
/// directory 0700, files 0600, opened with O_NOFOLLOW, written to a temp file, fsynced and
/// renamed, then the directory fsynced.
public final class FileSetStore: SetStore {
    public let directory: String

    public static var defaultDirectory: String {
        if let dir = ProcessInfo.processInfo.environment["DMSNAP_STATE_DIR"], !dir.isEmpty { return dir }
        return "/var/lib/dmsnap"
    }

    public init(directory: String = FileSetStore.defaultDirectory) {
        self.directory = directory
    }

    public var location: String { directory }

    private func path(_ name: SetName) -> String { "\(directory)/\(name.value).json" }

    /// Runs a libc call that returns -1 and sets errno on failure (EINTR retried).
    private func check(_ call: String, _ path: String, _ body: () -> Int32) throws(StoreError) {
        while body() != 0 {
            let code = Errno(rawValue: errno)
            if code != .interrupted { throw StoreError(path: path, .io(call: call, errno: code)) }
        }
    }

    /// Creates the directory (0700) if missing; refuses a symlink, a non-directory, or a
    /// directory others can write to.
    private func checkDirectory(create: Bool) throws(StoreError) -> Bool {
        var st: Stat
        do { st = try FilePath(directory).stat(followTargetSymlink: false) } catch {
            guard error == .noSuchFileOrDirectory else { throw StoreError(path: directory, .io(call: "lstat", errno: error)) }
            guard create else { return false }
            // mkdir -p for the parents, 0700 for the leaf.
            var prefix = ""
            for part in directory.split(separator: "/") {
                prefix += "/" + part
                let mode: mode_t = prefix == directory || prefix == "/" + directory ? 0o700 : 0o755
                if mkdir(prefix, mode) != 0 && errno != EEXIST {
                    throw StoreError(path: prefix, .io(call: "mkdir", errno: Errno(rawValue: errno)))
                }
            }
            do { st = try FilePath(directory).stat(followTargetSymlink: false) } catch {
                throw StoreError(path: directory, .io(call: "lstat", errno: error))
            }
        }
        if st.type == .symbolicLink { throw StoreError(path: directory, .unsafe("state directory is a symlink; refusing")) }
        guard st.type == .directory else { throw StoreError(path: directory, .unsafe("not a directory")) }
        let mode = st.permissions.rawValue
        if mode & 0o022 != 0 {
            throw StoreError(path: directory, .unsafe("state directory is writable by others (mode \(String(mode & 0o777, radix: 8))); refusing"))
        }
        return true
    }

    /// The names of the recorded sets (each `SET.json`), sorted, without reading them; none when
    /// the directory does not exist.
    public func names() throws(StoreError) -> [SetName] {
        guard try checkDirectory(create: false) else { return [] }
        return try jsonFiles(in: directory).compactMap { try? SetName(String($0.dropLast(5))) }.sorted()
    }

    /// The `*.json` files of `dir` (not the hidden ones); none when it does not exist.
    private func jsonFiles(in dir: String) throws(StoreError) -> [String] {
        guard let d = opendir(dir) else {
            if errno == ENOENT { return [] }
            throw StoreError(path: dir, .io(call: "opendir", errno: Errno(rawValue: errno)))
        }
        defer { closedir(d) }
        var files: [String] = []
        while let entry = readdir(d) {
            let file = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            if file.hasSuffix(".json"), !file.hasPrefix(".") { files.append(file) }
        }
        return files.sorted()
    }

    public func scan() throws(StoreError) -> StoreScan {
        var scan = StoreScan(sets: [])
        for name in try names() {
            do {
                if let set = try load(name) { scan.sets.append(set) }
            } catch {
                guard case let .corrupt(why) = error.kind else { throw error }
                scan.unreadable.append(UnreadableSet(name: name, path: path(name), reason: why))
            }
        }
        return scan
    }

    public func quarantine(_ name: SetName) throws(StoreError) -> String {
        let from = path(name)
        let to = "\(directory)/\(name.value).json.unreadable-\(Timestamp.string(Date()))"
        try check("rename", from) { rename(from, to) }
        syncDirectory()
        return to
    }

    public func load(_ name: SetName) throws(StoreError) -> SnapshotSet? {
        guard try checkDirectory(create: false) else { return nil }
        let file = path(name)
        guard let bytes = try read(file) else { return nil }
        do {
            return try Self.decoder.decode(SnapshotSet.self, from: Data(bytes))
        } catch {
            throw StoreError(path: file, .corrupt(Self.oneLine(error, bytes: bytes.count)))
        }
    }

    /// A file's bytes; nil when it does not exist (never through a symlink).
    private func read(_ file: String) throws(StoreError) -> [UInt8]? {
        let fd: FileDescriptor
        do { fd = try FileDescriptor.open(FilePath(file), .readOnly, options: [.noFollow, .closeOnExec]) } catch {
            if error as? Errno == .noSuchFileOrDirectory { return nil }
            throw StoreError(path: file, .io(call: "open", errno: error as? Errno ?? .ioError))
        }
        defer { try? fd.close() }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n: Int
            do { n = try chunk.withUnsafeMutableBytes { try fd.read(into: $0) } } catch {
                throw StoreError(path: file, .io(call: "read", errno: error as? Errno ?? .ioError))
            }
            if n == 0 { break }
            bytes += chunk[0..<n]
        }
        return bytes
    }

    public func save(_ set: SnapshotSet) throws(StoreError) {
        let file = path(set.name)
        let data: Data
        do { data = try Self.encoder.encode(set) } catch {
            throw StoreError(path: file, .corrupt("cannot encode: \(error)"))
        }
        try write(data, to: file, temp: "\(directory)/.\(set.name.value).json.tmp")
    }

    /// Prepared volumes: `volumes/NAME.json` in the state directory (a directory of its own: set
    /// descriptions are the state directory's `*.json`).
    var volumeDirectory: String { "\(directory)/volumes" }

    public func volumes() throws(StoreError) -> [PreparedVolume] {
        var out: [PreparedVolume] = []
        for file in try jsonFiles(in: volumeDirectory) {
            let path = "\(volumeDirectory)/\(file)"
            guard let bytes = try read(path) else { continue }
            do { out.append(try Self.decoder.decode(PreparedVolume.self, from: Data(bytes))) } catch {
                throw StoreError(path: path, .corrupt("not a prepared volume: \(error)"))
            }
        }
        return out
    }

    public func saveVolume(_ volume: PreparedVolume) throws(StoreError) {
        let file = "\(volumeDirectory)/\(volume.name.value).json"
        let data: Data
        do { data = try Self.encoder.encode(volume) } catch { throw StoreError(path: file, .corrupt("cannot encode: \(error)")) }
        _ = try checkDirectory(create: true)
        if mkdir(volumeDirectory, 0o700) != 0 && errno != EEXIST {
            throw StoreError(path: volumeDirectory, .io(call: "mkdir", errno: Errno(rawValue: errno)))
        }
        try write(data, to: file, temp: "\(volumeDirectory)/.\(volume.name.value).json.tmp")
    }

    public func deleteVolume(_ name: DeviceName) throws(StoreError) {
        let file = "\(volumeDirectory)/\(name.value).json"
        if unlink(file) != 0 && errno != ENOENT { throw StoreError(path: file, .io(call: "unlink", errno: Errno(rawValue: errno))) }
    }

    /// The running monitor's report: `.monitor/report.json` in the state directory (hidden, and in
    /// a directory of its own: writing it every second does not change the state directory,
    /// which the monitor watches for new sets).
    var monitorDirectory: String { "\(directory)/.monitor" }
    var monitorFile: String { "\(monitorDirectory)/report.json" }

    public func monitorReport() -> MonitorReport? {
        guard let bytes = try? read(monitorFile) else { return nil }
        return try? Self.decoder.decode(MonitorReport.self, from: Data(bytes))
    }

    public func saveMonitorReport(_ report: MonitorReport?) throws(StoreError) {
        guard let report else {
            unlink(monitorFile)
            return
        }
        let data: Data
        do { data = try Self.encoder.encode(report) } catch { throw StoreError(path: monitorFile, .corrupt("cannot encode: \(error)")) }
        _ = try checkDirectory(create: true)
        if mkdir(monitorDirectory, 0o700) != 0 && errno != EEXIST {
            throw StoreError(path: monitorDirectory, .io(call: "mkdir", errno: Errno(rawValue: errno)))
        }
        try write(data, to: monitorFile, temp: "\(monitorDirectory)/.report.tmp", durable: false)
    }

    /// Atomic: written to `temp`, synced, renamed over `file` (and the directory synced when `durable`).
    private func write(_ data: Data, to file: String, temp: String, durable: Bool = true) throws(StoreError) {
        _ = try checkDirectory(create: true)
        unlink(temp)
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(FilePath(temp), .writeOnly, options: [.create, .exclusiveCreate, .noFollow, .closeOnExec],
                                         permissions: [.ownerRead, .ownerWrite])
        } catch {
            throw StoreError(path: temp, .io(call: "open", errno: error as? Errno ?? .ioError))
        }
        var renamed = false
        defer {
            try? fd.close()
            if !renamed { unlink(temp) }
        }
        do { _ = try data.withUnsafeBytes { try fd.writeAll($0) } } catch {
            throw StoreError(path: temp, .io(call: "write", errno: error as? Errno ?? .ioError))
        }
        if durable { try check("fsync", temp) { fsync(fd.rawValue) } }
        try check("rename", file) { rename(temp, file) }
        renamed = true
        if durable { syncDirectory() }
    }

    public func delete(_ name: SetName) throws(StoreError) {
        let file = path(name)
        if unlink(file) != 0 && errno != ENOENT { throw StoreError(path: file, .io(call: "unlink", errno: Errno(rawValue: errno))) }
        syncDirectory()
    }

    private func syncDirectory() {
        guard let dfd = try? FileDescriptor.open(FilePath(directory), .readOnly, options: [.directory, .closeOnExec]) else { return }
        fsync(dfd.rawValue)
        try? dfd.close()
    }

    /// A decoding failure in one line for people (not the decoder's debug text).
    static func oneLine(_ error: any Error, bytes: Int) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().drop { $0 == "." }.description
        }
        if bytes == 0 { return "the file is empty" }
        switch error as? DecodingError {
        case let .keyNotFound(key, c)?: return "field '\(path(c.codingPath + [key]))' is missing"
        case let .valueNotFound(_, c)?: return "field '\(path(c.codingPath))' has no value"
        case let .typeMismatch(_, c)?: return "field '\(path(c.codingPath))' has the wrong type"
        case let .dataCorrupted(c)? where !c.codingPath.isEmpty:
            return "field '\(path(c.codingPath))' is not valid: \(c.debugDescription.split(separator: "\n").first ?? "")"
        default: return "not a set description (the JSON is damaged or cut short)"
        }
    }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = Timestamp.encoding
        return e
    }()
    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = Timestamp.decoding
        return d
    }()
}
