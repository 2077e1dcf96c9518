#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
@testable import DMSnap
import DMSnapTesting

/// A persistent store as the kernel writes it: header, then for each exception the next free
/// chunk (metadata areas skipped), its entry in the current area.
func cowImage(chunk: Sectors, oldChunks: [UInt64], valid: Bool = true) -> [UInt8] {
    let chunkBytes = Int(chunk.bytes)
    let e = ExceptionStore.exceptionsPerArea(chunk: chunk)
    let areas = oldChunks.count / e + 1
    var image = [UInt8](repeating: 0, count: chunkBytes * (1 + areas * (e + 1)))
    func put32(_ v: UInt32, _ at: Int) { for i in 0..<4 { image[at + i] = UInt8((v >> (8 * UInt32(i))) & 0xff) } }
    func put64(_ v: UInt64, _ at: Int) { for i in 0..<8 { image[at + i] = UInt8((v >> (8 * UInt64(i))) & 0xff) } }
    put32(0x7041_6e53, 0)
    put32(valid ? 1 : 0, 4)
    put32(1, 8)
    put32(UInt32(chunk.value), 12)
    for (i, old) in oldChunks.enumerated() {
        let area = i / e, slot = i % e
        let areaStart = Int(ExceptionStore.areaChunk(area, chunk: chunk)) * chunkBytes
        let newChunk = ExceptionStore.areaChunk(area, chunk: chunk) + 1 + UInt64(slot)
        put64(old, areaStart + slot * 16)
        put64(newChunk, areaStart + slot * 16 + 8)
    }
    return image
}

@Suite("Changes from the exception store")
struct ChangesTests {
    @Test func headerAndLayout() {
        #expect(ExceptionStore.exceptionsPerArea(chunk: 8) == 256)
        #expect(ExceptionStore.exceptionsPerArea(chunk: 128) == 4096)
        #expect(ExceptionStore.areaChunk(0, chunk: 8) == 1)
        #expect(ExceptionStore.areaChunk(2, chunk: 8) == 1 + 2 * 257)
        let h = ExceptionStore.header(cowImage(chunk: 16, oldChunks: []))
        #expect(h?.valid == true && h?.version == 1 && h?.chunk == 16)
        #expect(ExceptionStore.header([UInt8](repeating: 0, count: 16)) == nil)
        #expect(ExceptionStore.header(cowImage(chunk: 8, oldChunks: [], valid: false))?.valid == false)
    }

    @Test func rangesAreSortedAndCoalesced() {
        let olds: [UInt64] = [5, 3, 4, 9, 10, 0, 4]
        let ex = olds.map { ExceptionStore.Exception(oldChunk: $0, newChunk: 100) }
        let want: [ExceptionStore.ByteRange] = [.init(offset: 0, length: 4096), .init(offset: 12288, length: 12288),
                                                .init(offset: 36864, length: 8192)]
        #expect(ExceptionStore.ranges(ex, chunk: 8) == want)
    }

    /// Several metadata areas, 4 KiB and 64 KiB chunks: every written chunk is reported, nothing
    /// else, and the bytes add up to the data chunks the store holds.
    @Test(arguments: [(Sectors(8), 700), (Sectors(128), 9000), (Sectors(8), 256), (Sectors(8), 0)])
    func aStoreWithSeveralAreasIsReadWhole(_ chunk: Sectors, _ count: Int) throws {
        let fx = SnapFixture(devices: 1)
        try #require(fx.take(chunk: "\(chunk.bytes / 1024)k") != nil)
        // every third chunk from 10 on, then a run of 40 from 100000 (written out of order)
        var olds = (0..<max(0, count - 40)).map { 10 + UInt64($0) * 3 }
        olds += (0..<min(count, 40)).map { 100_000 + UInt64(39 - $0) }
        let image = cowImage(chunk: chunk, oldChunks: olds)
        fx.dm.blocks[Fx.cow(0)]?.size = Sectors(UInt64(image.count) / 512)
        fx.dm.contents[Fx.cow(0)] = image
        let all = try attempt { () throws(DMSnapError) in try fx.manager.changes("s") }.get()
        let changes = try #require(all.first)
        #expect(changes.chunkBytes == chunk.bytes)
        #expect(changes.changedBytes == UInt64(olds.count) * chunk.bytes)
        let expected = ExceptionStore.ranges(olds.map { .init(oldChunk: $0, newChunk: 1) }, chunk: chunk)
        #expect(changes.changed == expected)
        if count >= 40 { #expect(changes.changed.last == .init(offset: 100_000 * chunk.bytes, length: 40 * chunk.bytes)) }
        #expect(changes.ranges == (count == 0 ? 0 : max(0, count - 40) + (count >= 40 ? 1 : 0)))
        #expect(fx.mutations.filter { !$0.hasPrefix("readdirect") }.count == fx.mutations.count, "reading changes changes nothing")
        #expect(!fx.dm.trace.contains { $0.hasPrefix("readdirect \(Fx.live(0).path)") }, "never through the live device")
    }

    @Test func anInvalidatedStoreOrAnUnknownDeviceIsRefused() throws {
        let fx = SnapFixture(devices: 2)
        try #require(fx.take() != nil)
        fx.dm.contents[Fx.cow(0)] = cowImage(chunk: 8, oldChunks: [1, 2], valid: false)
        let invalid = attempt { () throws(DMSnapError) in try fx.manager.changes("s", device: "vg0-live") }
        guard case let .failure(.kernel(e)) = invalid else { Issue.record("\(invalid)"); return }
        #expect(e.description.contains("the kernel invalidated this snapshot"))
        let unknown = attempt { () throws(DMSnapError) in try fx.manager.changes("s", device: "nope") }
        #expect(unknown.refusal?.description == "nope: not a device of set s (its devices: vg0-live, vg1-live)")
    }
}

@Suite("Export")
struct ExportTests {
    @Test func refusesBeforeWritingAnything() throws {
        let fx = SnapFixture(devices: 2, mounted: [0])
        try #require(fx.take() != nil)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dmsnap-export-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func export(_ device: String, _ output: ExportOutput, _ c: Compression = .none, level: Int? = nil) -> Result<ExportSummary, DMSnapError> {
            attempt { () throws(DMSnapError) in try fx.manager.export("s", device: device, to: output, compression: c, level: level) }
        }
        let ok = export("vg0-live", .file("\(dir)/a.img", overwrite: false))
        #expect((try? ok.get())?.bytesRead == Fx.liveSectors.bytes)
        #expect(fx.dm.trace.contains("export \(Fx.base(0).path)"), "the frozen image is the base")
        #expect(export("vg0-live", .file("\(dir)/a.img", overwrite: false)).refusal?.description == "\(dir)/a.img: exists; refusing to overwrite it (use --force)")
        #expect(export("vg0-live", .file("\(dir)/a.img", overwrite: true)).isSuccess)
        #expect(export("vg0-live", .file("/mnt/0/backup.img", overwrite: false)).refusal?.description == "/mnt/0/backup.img: is on a filesystem of set s (on vg0-live): the backup would be written into the snapshot")
        #expect(export("vg9-live", .standardOutput).refusal?.description == "vg9-live: not a device of set s (its devices: vg0-live, vg1-live)")
        #expect(export("vg1-live", .standardOutput, .zstd, level: 0).refusal?.description == "--level: zstd takes a level from 1 to 19")
        #expect(export("vg1-live", .file("\(dir)/none/x.img", overwrite: false)).refusal?.description.hasSuffix("does not exist") == true)
        fx.dm.statusOverride[Fx.live(1)] = "Invalid"
        #expect(export("vg1-live", .standardOutput).refusal?.description.hasPrefix("s: cannot export vg1-live's frozen image: set is invalid") == true)
        fx.dm.statusOverride[Fx.live(1)] = nil
        _ = try attempt { () throws(DMSnapError) in try fx.manager.merge("s", wait: false) }.get()
        #expect(export("vg0-live", .standardOutput).refusal?.description == "s: cannot export vg0-live's frozen image: set is merging: the merge writes into the frozen image; to move the set on: dmsnap merge s")
    }
}

@Suite("Mount the frozen image")
struct MountTests {
    @Test func mountsEachImageThroughAThrowawaySnapshotAndUnmountsIt() throws {
        let fx = SnapFixture(devices: 2, mounted: [0, 1])
        try #require(fx.take() != nil)
        for k in fx.all { fx.dm.blocks[Fx.base(k).path] = nil }
        fx.dm.directories["/backup"] = true
        // the bases carry ext4 (what libblkid finds)
        for k in fx.all {
            fx.dm.addBlock(Fx.base(k).path, number: try #require(fx.dm.device(Fx.base(k))?.number), size: Fx.liveSectors, signature: k == 0 ? "ext4" : "xfs")
        }
        let views = try attempt { () throws(DMSnapError) in try fx.manager.mount("s", at: "/backup") }.get()
        #expect(views.map(\.mountPoint) == ["/backup/vg0-live", "/backup/vg1-live"])
        #expect(fx.dm.mountTable.contains { $0.mountPoint == "/backup/vg1-live" && $0.fsType == "xfs" })
        #expect(fx.mutations.contains("mount /dev/mapper/vg1-live-dmsnap-view /backup/vg1-live xfs nouuid"))
        let view = try #require(fx.dm.device(mkName("vg0-live-dmsnap-view")))
        #expect(view.live?.targets.first?.params.snapshot?.store == .transient, "a throwaway snapshot")
        #expect(view.live?.targets.first?.params.snapshot?.origin == .number(try #require(fx.dm.device(Fx.base(0))?.number)))
        let status = try #require(try attempt { () throws(DMSnapError) in try fx.manager.status("s") }.get().first)
        #expect(status.devices.map(\.imageMount) == ["/backup/vg0-live", "/backup/vg1-live"])
        #expect(attempt { () throws(DMSnapError) in try fx.manager.merge("s") }.refusal?.description
            == "s: vg0-live's frozen image is mounted on /backup/vg0-live (dmsnap mount); run 'dmsnap umount s' first")
        let down = try attempt { () throws(DMSnapError) in try fx.manager.umount("s", target: "/backup") }.get()
        #expect(down.count == 2)
        #expect(fx.dm.device(mkName("vg0-live-dmsnap-view")) == nil)
        #expect(fx.dm.directories["/backup/vg0-live"] == nil && fx.dm.directories["/backup"] != nil)
        #expect(fx.store.sets[mkSetName("s")]?.members.allSatisfy { $0.view == nil } == true)
        #expect(attempt { () throws(DMSnapError) in try fx.manager.merge("s") }.isSuccess)
    }

    @Test func refusesBeforeAnyChange() throws {
        let fx = SnapFixture(devices: 1, mounted: [0])
        try #require(fx.take() != nil)
        fx.dm.addBlock(Fx.base(0).path, number: try #require(fx.dm.device(Fx.base(0))?.number), size: Fx.liveSectors, signature: "btrfs")
        fx.dm.directories["/empty"] = true
        fx.dm.directories["/full"] = false
        fx.dm.directories["/mnt/0/in"] = true
        fx.dm.existingFiles.insert("/mnt/0/in")
        fx.dm.resetTrace()
        func mount(_ dir: String) -> String? { attempt { () throws(DMSnapError) in try fx.manager.mount("s", at: dir) }.refusal?.description }
        #expect(mount("/nope") == "/nope: does not exist or is not a directory")
        #expect(mount("/full") == "/full: is not empty")
        #expect(mount("/mnt/0/in") == "/mnt/0/in: is on a filesystem of set s (on vg0-live): the backup would be written into the snapshot")
        #expect(mount("/empty")?.hasPrefix("vg0-live: its frozen image btrfs in this kernel cannot mount") == true)
        #expect(attempt { () throws(DMSnapError) in try fx.manager.umount("s") }.refusal?.description == "s: no frozen image of set s is mounted")
        #expect(fx.mutations.isEmpty)
    }
}
