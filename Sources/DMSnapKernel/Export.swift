import CDeviceMapper
import DMSnapModel
import SystemPackage
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `dmsnap export`'s stream: 4 MiB O_DIRECT reads of the frozen image (past the page cache), a
/// SHA-256 of every byte read, then zstd or gzip (libzstd, zlib) or a sparse raw file (blocks
/// of zeros become holes). A file is written unnamed (O_TMPFILE) or under a hidden temporary
/// name, and linked or renamed into place only when complete.
extension LinuxKernel {
    static let exportBlock = 4 << 20

    public func exportImage(_ path: String, to output: ExportOutput, compression: Compression, level: Int,
                            checksum: Bool, progress: (UInt64) -> Bool) throws(KernelError) -> ExportSummary {
        let started = ContinuousClock.now
        var direct = true
        var source = open(path, O_RDONLY | O_CLOEXEC | cdm_o_direct())
        if source < 0, errno == EINVAL {
            direct = false
            source = open(path, O_RDONLY | O_CLOEXEC)
        }
        guard source >= 0 else { throw KernelError(call: "open", device: path, errno: Errno(rawValue: errno)) }
        defer { close(source) }
        let target = try ExportTarget(output)
        var finished = false
        defer { if !finished { target.abandon() } }
        var hash: OpaquePointer?
        if checksum {
            guard let h = cdm_sha256_new() else { throw KernelError(call: "sha256", device: path, errno: .noMemory) }
            hash = h
        }
        defer { if let hash { var d = [UInt8](repeating: 0, count: 32); cdm_sha256_final(hash, &d) } }
        var compressor: OpaquePointer?
        if compression != .none {
            guard let c = cdm_compressor_new(compression == .zstd ? Int32(CDM_ZSTD) : Int32(CDM_GZIP), Int32(level)) else {
                throw KernelError(call: "compressor", device: compression.rawValue, errno: Errno(rawValue: errno))
            }
            compressor = c
        }
        defer { if let compressor { cdm_compressor_free(compressor) } }

        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.exportBlock, alignment: 4096)
        defer { buffer.deallocate() }
        var read: UInt64 = 0
        var written: UInt64 = 0
        while true {
            guard progress(read) else { throw KernelError(call: "export", device: path, errno: .interrupted) }
            var n = 0
            while n < Self.exportBlock {
                let r = pread(source, buffer.baseAddress! + n, Self.exportBlock - n, off_t(read) + off_t(n))
                if r < 0 {
                    if errno == EINTR { continue }
                    throw KernelError(call: direct ? "read (O_DIRECT)" : "read", device: path, errno: Errno(rawValue: errno))
                }
                if r == 0 { break }
                n += r
            }
            if n == 0 { break }
            if let hash { cdm_sha256_update(hash, buffer.baseAddress, n) }
            if let compressor {
                guard cdm_compress_write(compressor, target.fd, buffer.baseAddress, n, 0, &written) == 0 else {
                    throw KernelError(call: "write", device: target.name, errno: Errno(rawValue: errno))
                }
            } else {
                try target.write(UnsafeRawBufferPointer(rebasing: buffer[0..<n]), at: read)
                written += UInt64(n)
            }
            read += UInt64(n)
            if n < Self.exportBlock { break }
        }
        if let compressor {
            guard cdm_compress_write(compressor, target.fd, nil, 0, 1, &written) == 0 else {
                throw KernelError(call: "write", device: target.name, errno: Errno(rawValue: errno))
            }
        }
        _ = progress(read)
        try target.finish(length: compression == .none ? read : nil)
        finished = true
        var hex: String?
        if let h = hash {
            var digest = [UInt8](repeating: 0, count: 32)
            cdm_sha256_final(h, &digest)
            hash = nil
            hex = digest.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
        }
        let elapsed = ContinuousClock.now - started
        return ExportSummary(bytesRead: read, bytesWritten: written,
                             seconds: elapsed.seconds, sha256: hex)
    }
}

/// Where the export's bytes go: stdout, or a file that appears under its name only when whole.
struct ExportTarget {
    let fd: Int32
    let name: String
    private let path: String?
    private let overwrite: Bool
    /// The hidden name of a named temporary file (nil: stdout, or an unnamed O_TMPFILE).
    private let temporary: String?
    private let sparse: Bool

    init(_ output: ExportOutput) throws(KernelError) {
        switch output {
        case .standardOutput:
            fd = 1
            name = "standard output"
            path = nil
            overwrite = false
            temporary = nil
            sparse = false
        case let .file(path, overwrite):
            self.path = path
            self.overwrite = overwrite
            name = path
            sparse = true
            let dir = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
            let unnamed = open(dir.isEmpty ? "/" : dir, cdm_o_tmpfile() | O_WRONLY | O_CLOEXEC, 0o600)
            if unnamed >= 0 {
                fd = unnamed
                temporary = nil
            } else {
                let base = String(path[(path.lastIndex(of: "/").map { path.index(after: $0) } ?? path.startIndex)...])
                let prefix = "\(dir.isEmpty ? "" : dir)/.\(base).dmsnap-export-"
                Self.removeStale(prefix)
                let temp = "\(prefix)\(getpid())"
                let named = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
                guard named >= 0 else { throw KernelError(call: "create", device: temp, errno: Errno(rawValue: errno)) }
                fd = named
                temporary = temp
            }
        }
    }

    /// Writes `bytes` at `offset`; for a file, aligned runs of 64 KiB of zeros are left as
    /// holes, and the data between them goes out in one write each (a stream: one write).
    func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws(KernelError) {
        guard sparse else { return try put(bytes, at: offset) }
        let step = 64 << 10
        var data: Int?  // where the run of data pieces not written yet starts
        for i in stride(from: 0, to: bytes.count, by: step) {
            if cdm_is_zero(bytes.baseAddress! + i, min(step, bytes.count - i)) == 0 {
                if data == nil { data = i }
            } else if let start = data {
                try put(UnsafeRawBufferPointer(rebasing: bytes[start..<i]), at: offset + UInt64(start))
                data = nil
            }
        }
        if let start = data {
            try put(UnsafeRawBufferPointer(rebasing: bytes[start...]), at: offset + UInt64(start))
        }
    }

    private func put(_ piece: UnsafeRawBufferPointer, at offset: UInt64) throws(KernelError) {
        var done = 0
        while done < piece.count {
            let w = sparse
                ? pwrite(fd, piece.baseAddress! + done, piece.count - done, off_t(offset) + off_t(done))
                : Glibc.write(fd, piece.baseAddress! + done, piece.count - done)
            if w < 0 {
                if errno == EINTR { continue }
                throw KernelError(call: "write", device: name, errno: Errno(rawValue: errno))
            }
            done += w
        }
    }

    /// Sets a sparse file's length (its trailing holes), syncs, and puts the file in place.
    func finish(length: UInt64?) throws(KernelError) {
        guard let path else { return }
        if let length, sparse, ftruncate(fd, off_t(length)) != 0 {
            throw KernelError(call: "truncate", device: name, errno: Errno(rawValue: errno))
        }
        guard fsync(fd) == 0 else { throw KernelError(call: "fsync", device: name, errno: Errno(rawValue: errno)) }
        if let temporary {
            guard rename(temporary, path) == 0 else { throw KernelError(call: "rename", device: path, errno: Errno(rawValue: errno)) }
        } else {
            // An unnamed file gets its name only now (linkat needs CAP_DAC_READ_SEARCH: root).
            let proc = "/proc/self/fd/\(fd)"
            if overwrite {
                let side = path + ".dmsnap-export-\(getpid())"
                guard linkat(AT_FDCWD, proc, AT_FDCWD, side, AT_SYMLINK_FOLLOW) == 0 else {
                    throw KernelError(call: "link", device: side, errno: Errno(rawValue: errno))
                }
                guard rename(side, path) == 0 else {
                    unlink(side)
                    throw KernelError(call: "rename", device: path, errno: Errno(rawValue: errno))
                }
            } else {
                guard linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0 else {
                    throw KernelError(call: "link", device: path, errno: Errno(rawValue: errno))
                }
            }
        }
        close(fd)
    }

    /// Temporary files of exports to the same name whose process is gone (killed).
    static func removeStale(_ prefix: String) {
        let dir = String(prefix[..<prefix.lastIndex(of: "/")!])
        let name = String(prefix[prefix.index(after: prefix.lastIndex(of: "/")!)...])
        guard let d = opendir(dir.isEmpty ? "/" : dir) else { return }
        defer { closedir(d) }
        while let entry = readdir(d) {
            let file = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            guard file.hasPrefix(name), let pid = Int32(file.dropFirst(name.count)), kill(pid, 0) != 0, errno == ESRCH else { continue }
            unlink("\(dir)/\(file)")
        }
    }

    /// A failed export: the output goes away (a named temporary file is removed).
    func abandon() {
        guard path != nil else { return }
        close(fd)
        if let temporary { unlink(temporary) }
    }
}
