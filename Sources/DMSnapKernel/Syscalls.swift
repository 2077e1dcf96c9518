import DMSnapModel
import SystemPackage
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// The one funnel for the kernel layer's file I/O: swift-system file descriptors (EINTR retried),
// every failure a KernelError naming the call and the path.

enum Syscalls {
    /// Opens `path`, runs `body` with the descriptor, closes it.
    static func withFile<T>(_ path: String, _ mode: FileDescriptor.AccessMode, options: FileDescriptor.OpenOptions = [],
                            call: String = "open", _ body: (FileDescriptor) throws(KernelError) -> T) throws(KernelError) -> T {
        let fd: FileDescriptor
        do { fd = try FileDescriptor.open(FilePath(path), mode, options: options.union(.closeOnExec)) } catch {
            throw KernelError(call: call, device: path, errno: error as? Errno)
        }
        defer { try? fd.close() }
        return try body(fd)
    }

    /// Reads up to `count` bytes from offset 0 (fewer at the end of the file).
    static func readPrefix(_ fd: FileDescriptor, count: Int, path: String) throws(KernelError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n: Int
            do {
                n = try buffer.withUnsafeMutableBytes { raw in
                    try fd.read(fromAbsoluteOffset: Int64(done), into: UnsafeMutableRawBufferPointer(rebasing: raw[done...]))
                }
            } catch { throw KernelError(call: "read", device: path, errno: error as? Errno) }
            if n == 0 { break }
            done += n
        }
        return Array(buffer[0..<done])
    }

    /// Reads `count` bytes at `offset` from a descriptor opened with O_DIRECT, into an aligned
    /// buffer (fewer at the end).
    static func readDirect(_ fd: FileDescriptor, offset: UInt64, count: Int, path: String) throws(KernelError) -> [UInt8] {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 4096), alignment: 4096)
        defer { buffer.deallocate() }
        var done = 0
        while done < count {
            let n: Int
            do {
                n = try fd.read(fromAbsoluteOffset: Int64(offset) + Int64(done),
                                into: UnsafeMutableRawBufferPointer(rebasing: buffer[done..<count]))
            } catch { throw KernelError(call: "read", device: path, errno: error as? Errno) }
            if n == 0 { break }
            done += n
        }
        return Array(buffer[0..<done])
    }

    /// Reads a whole (small, procfs) file.
    static func readFile(_ path: String) throws(KernelError) -> String {
        try withFile(path, .readOnly) { fd throws(KernelError) in
            var data: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let n: Int
                do { n = try chunk.withUnsafeMutableBytes { try fd.read(into: $0) } } catch {
                    throw KernelError(call: "read", device: path, errno: error as? Errno)
                }
                if n == 0 { break }
                data += chunk[0..<n]
            }
            return String(decoding: data, as: UTF8.self)
        }
    }

    /// The entries of a directory (not `.` and `..`), each with whether it is a directory
    /// (`d_type`); nil when the directory cannot be opened.
    static func entries(_ path: String) -> [(name: String, isDirectory: Bool)]? {
        guard let d = opendir(path) else { return nil }
        defer { closedir(d) }
        var out: [(name: String, isDirectory: Bool)] = []
        while let entry = readdir(d) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            if name == "." || name == ".." { continue }
            out.append((name, entry.pointee.d_type == UInt8(DT_DIR)))
        }
        return out
    }

    /// Runs a raw call that returns -1 and sets errno on failure, retrying EINTR.
    static func check(_ call: String, _ path: String, _ body: () -> Int32) throws(KernelError) {
        while true {
            if body() == 0 { return }
            let code = Errno(rawValue: errno)
            if code == .interrupted { continue }
            throw KernelError(call: call, device: path, errno: code)
        }
    }
}

/// Writes to fd 2 directly (no shared `FILE*`, so it is safe from any thread).
public func writeStandardError(_ text: String) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let n = bytes.withUnsafeBytes { try? FileDescriptor.standardError.write($0) }
        guard let n, n > 0 else { return }
        bytes = bytes.dropFirst(n)
    }
}
