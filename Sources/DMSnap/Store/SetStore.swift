import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Where set descriptions live. `FileSetStore` is the real one; `MemorySetStore` serves tests.
public protocol SetStore: AnyObject {
    func list() throws(StoreError) -> [SnapshotSet]
    func load(_ name: SetName) throws(StoreError) -> SnapshotSet?
    /// Atomic: a reader sees the old or the new description, never a torn one.
    func save(_ set: SnapshotSet) throws(StoreError)
    func delete(_ name: SetName) throws(StoreError)
}

public struct StoreError: Error, Hashable, Sendable, CustomStringConvertible {
    public var path: String
    public var what: String
    public init(path: String, what: String) {
        self.path = path
        self.what = what
    }
    public var description: String { "\(path): \(what)" }
}

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

    private func path(_ name: SetName) -> String { "\(directory)/\(name.value).json" }

    private func error(_ path: String, _ call: String, _ code: Int32 = errno) -> StoreError {
        StoreError(path: path, what: "\(call) failed: \(errnoDescription(code))")
    }

    /// Creates the directory (0700) if missing; refuses a symlink, a non-directory, or a
    /// directory others can write to.
    private func checkDirectory(create: Bool) throws(StoreError) -> Bool {
        var st = stat()
        if lstat(directory, &st) != 0 {
            guard errno == ENOENT else { throw error(directory, "lstat") }
            guard create else { return false }
            // mkdir -p for the parents, 0700 for the leaf.
            var prefix = ""
            for part in directory.split(separator: "/") {
                prefix += "/" + part
                if mkdir(prefix, prefix == directory || prefix == "/" + directory ? 0o700 : 0o755) != 0 && errno != EEXIST {
                    throw error(prefix, "mkdir")
                }
            }
            guard lstat(directory, &st) == 0 else { throw error(directory, "lstat") }
        }
        if (st.st_mode & S_IFMT) == S_IFLNK { throw StoreError(path: directory, what: "state directory is a symlink; refusing") }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw StoreError(path: directory, what: "not a directory") }
        if st.st_mode & 0o022 != 0 {
            throw StoreError(path: directory, what: "state directory is writable by others (mode \(String(st.st_mode & 0o777, radix: 8))); refusing")
        }
        return true
    }

    public func list() throws(StoreError) -> [SnapshotSet] {
        guard try checkDirectory(create: false) else { return [] }
        guard let dir = opendir(directory) else { throw error(directory, "opendir") }
        defer { closedir(dir) }
        var names: [SetName] = []
        while let entry = readdir(dir) {
            let file = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            guard file.hasSuffix(".json"), !file.hasPrefix("."), let name = try? SetName(String(file.dropLast(5))) else { continue }
            names.append(name)
        }
        var sets: [SnapshotSet] = []
        for name in names.sorted() {
            if let set = try load(name) { sets.append(set) }
        }
        return sets
    }

    public func load(_ name: SetName) throws(StoreError) -> SnapshotSet? {
        guard try checkDirectory(create: false) else { return nil }
        let file = path(name)
        let fd = open(file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw error(file, "open")
        }
        defer { close(fd) }
        guard let bytes = readAll(fd) else { throw error(file, "read") }
        do {
            return try Self.decoder.decode(SnapshotSet.self, from: Data(bytes))
        } catch {
            throw StoreError(path: file, what: "cannot parse set description: \(error)")
        }
    }

    public func save(_ set: SnapshotSet) throws(StoreError) {
        _ = try checkDirectory(create: true)
        let file = path(set.name)
        let temp = "\(directory)/.\(set.name.value).json.tmp"
        let data: Data
        do { data = try Self.encoder.encode(set) } catch {
            throw StoreError(path: file, what: "cannot encode: \(error)")
        }
        unlink(temp)
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw error(temp, "open") }
        var ok = false
        defer {
            if fd >= 0 { close(fd) }
            if !ok { unlink(temp) }
        }
        var rest = data[...]
        while !rest.isEmpty {
            let n = rest.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n <= 0 { throw error(temp, "write") }
            rest = rest.dropFirst(n)
        }
        guard fsync(fd) == 0 else { throw error(temp, "fsync") }
        guard rename(temp, file) == 0 else { throw error(file, "rename") }
        ok = true
        syncDirectory()
    }

    public func delete(_ name: SetName) throws(StoreError) {
        let file = path(name)
        if unlink(file) != 0 && errno != ENOENT { throw error(file, "unlink") }
        syncDirectory()
    }

    private func syncDirectory() {
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            fsync(dfd)
            close(dfd)
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

/// An in-memory store for tests; can fail any save or delete on demand.
public final class MemorySetStore: SetStore {
    public var sets: [SetName: SnapshotSet] = [:]
    public var failSave: ((SnapshotSet) -> Bool)?
    public var failDelete = false
    public init() {}
    public func list() throws(StoreError) -> [SnapshotSet] { sets.values.sorted { $0.name < $1.name } }
    public func load(_ name: SetName) throws(StoreError) -> SnapshotSet? { sets[name] }
    public func save(_ set: SnapshotSet) throws(StoreError) {
        if failSave?(set) ?? false { throw StoreError(path: "memory:\(set.name)", what: "injected") }
        sets[set.name] = set
    }
    public func delete(_ name: SetName) throws(StoreError) {
        if failDelete { throw StoreError(path: "memory:\(name)", what: "injected") }
        sets[name] = nil
    }
}
