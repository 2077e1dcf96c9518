import ArgumentParser
import DMSnap
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension Compression: ExpressibleByArgument {}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stream a device's frozen image to a file or to standard output.",
        usage: """
            dmsnap export <set> <device> [-o <file>] [--compress none|zstd|gzip]
                   [--level <level>] [--sha256] [--full-speed] [--force] [--json]
            """,
        discussion: """
            Reads the frozen image with large direct I/O (the live system's page cache is left \
            alone), optionally compressed with zstd or gzip. A file is sparse (runs of zeros become \
            holes) and appears under its name only when complete: a killed or failed export leaves \
            nothing there. It runs at a lower CPU and I/O priority (nice 10, best-effort I/O \
            level 7), so the live system's own work goes first; --full-speed keeps the normal one. \
            Example: dmsnap export nightly vg-data --compress zstd | ssh backup \
            'cat > vg-data.img.zst'
            """
    )

    @Argument(help: "The set.", completion: .setNames) var set: String
    @Argument(help: "The device whose frozen image to export.", completion: .deviceNames) var device: String
    @Option(name: .short, help: ArgumentHelp("Write to FILE ('-': standard output, the default).", valueName: "file"))
    var o: String = "-"
    @Option(help: "none, zstd or gzip.") var compress: Compression = .none
    @Option(help: "Compression level (zstd 1-19, default 3; gzip 1-9, default 6).") var level: Int?
    @Flag(help: "Print the SHA-256 of the raw image at the end (--json always has it).") var sha256 = false
    @Flag(help: "Run at the normal CPU and I/O priority.") var fullSpeed = false
    @Flag(help: "Replace an existing output file.") var force = false
    @Flag(help: "Print a JSON summary on stderr at the end (stdout holds the image).") var json = false

    func run() throws {
        let output: ExportOutput = o == "-" ? .standardOutput : .file(o, overwrite: force)
        if output == .standardOutput, isatty(1) != 0 {
            throw CLIError(message: "refusing to write a disk image to a terminal; use -o FILE or a pipe", status: .refused)
        }
        let manager = makeManager()
        if !fullSpeed { LinuxKernel.backgroundPriority() }
        let bar = ProgressBar(enabled: isatty(2) != 0 && !json, label: "exporting \(device)")
        defer { bar.finish() }
        let started = ContinuousClock.now
        let summary = try cli { () throws(DMSnapError) in
            try manager.export(set, device: device, to: output, compression: compress, level: level,
                               checksum: sha256 || json) { done, total in
                bar.update(bytes: done, of: total, since: started)
            }
        }
        bar.finish()
        if json {
            writeStandardError(try Output.jsonText(summary) + "\n")
        } else if output != .standardOutput {
            let digest = summary.sha256.map { "; sha256 \($0)" } ?? ""
            print("Exported \(device)'s frozen image to \(o): \(summary.bytesRead) bytes read, \(summary.bytesWritten) written in \(fixed(summary.seconds, 2)) s\(digest)")
        } else {
            let digest = summary.sha256.map { ", sha256 \($0)" } ?? ""
            writeStandardError("dmsnap: exported \(device): \(summary.bytesRead) bytes\(digest)\n")
        }
    }
}
