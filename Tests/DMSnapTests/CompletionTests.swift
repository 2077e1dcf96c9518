@testable import DMSnapCLI
import Foundation
import Testing

/// Dynamic shell completion (issue 17): `status -o` lists, `DEVICE=COW` pairs.
@Suite struct CompletionTests {
    @Test func aFieldListCompletesItsLastField() {
        let fields = StatusField.allCases.map(\.rawValue)
        #expect(Completions.list("set,dev", of: fields) == ["set,device"])
        #expect(Completions.list("state,cow_u", of: fields) == ["state,cow_used_sectors"])
        #expect(Completions.list("state,cow_", of: fields) == ["state,cow_total_sectors", "state,cow_used_sectors", "state,cow_kind", "state,cow_loop"])
        #expect(Completions.list("", of: ["a", "b"]) == ["a", "b"])
        #expect(Completions.list("x,", of: ["a", "b"]) == ["x,a", "x,b"])
    }

    @Test func aPairCompletesTheCOWPathAfterTheEqualsSign() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dmsnap-completion-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for name in ["cow1", "cow2", "other", ".hidden"] {
            FileManager.default.createFile(atPath: "\(dir)/\(name)", contents: nil)
        }
        #expect(Completions.pairs("vg-data=\(dir)/co") == ["vg-data=\(dir)/cow1", "vg-data=\(dir)/cow2"])
        #expect(Completions.pairs("vg-data=\(dir)/") == ["vg-data=\(dir)/cow1", "vg-data=\(dir)/cow2", "vg-data=\(dir)/other"])
        #expect(Completions.pairs("vg-data=") == ["vg-data=/dev/"])
    }

    @Test func setNamesAreTheDescriptionsInTheStateDirectory() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dmsnap-sets-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for name in ["nightly.json", "weekly.json", ".nightly.json.tmp", "notes.txt", "nightly.json.unreadable-1"] {
            FileManager.default.createFile(atPath: "\(dir)/\(name)", contents: nil)
        }
        #expect(Completions.setNames(in: dir) == ["nightly", "weekly"])
    }
}
