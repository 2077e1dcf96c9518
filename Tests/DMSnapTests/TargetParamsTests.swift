import Foundation
import Testing
@testable import DMSnapModel
import SystemPackage

// Typed target parameters: each target dmsnap reads into parses to its type and prints back the
// kernel's exact text; a crypt key never shows outside the kernel text.

@Suite("Typed target parameters")
struct TargetParamsTests {
    @Test func linearIsTyped() throws {
        let t = try TargetLine(parsing: "0 8388608 linear 8:2 2048")
        #expect(t.params == .linear(LinearParams(device: .number(DeviceNumber(major: 8, minor: 2)), offset: 2048)))
        #expect(t.kernelText == "0 8388608 linear 8:2 2048")
    }

    @Test func stripedIsTypedWithEveryStripe() throws {
        let t = try TargetLine(parsing: "0 6291456 striped 3 128 8:16 0 8:32 2048 8:48 4096")
        guard case let .striped(p) = t.params else {
            Issue.record("not striped: \(t.params)")
            return
        }
        #expect(p.chunk == 128)
        #expect(p.stripes.map(\.device.description) == ["8:16", "8:32", "8:48"])
        #expect(p.stripes.map(\.offset) == [0, 2048, 4096])
        #expect(t.kernelText == "0 6291456 striped 3 128 8:16 0 8:32 2048 8:48 4096")
        #expect(try TargetLine(parsing: t.kernelText) == t)
    }

    @Test(arguments: ["0 100 striped 2 128 8:16 0", "0 100 striped 0 128", "0 100 striped x 128 8:16 0",
                      "0 100 linear 8:16", "0 100 linear 8:16 0 9", "0 100 linear nodev 0", "0 100 error 1",
                      "0 100 snapshot 253:1 7:1 X 8", "0 100 snapshot 253:1 7:1 P 0", "0 100 crypt aes 00 0 8:2"])
    func malformedKnownTargetsAreRefused(_ line: String) {
        #expect(throws: ModelError.self) { try TargetLine(parsing: line) }
    }

    @Test func aMultiSegmentTableWithEveryKindRoundTrips() throws {
        let text = """
            0 2048 linear 7:0 0
            2048 4096 striped 2 64 7:1 0 7:2 0
            6144 1024 error
            7168 1024 zero
            8192 2048 linear 253:4 512
            """
        let table = try Table(parsing: text)
        #expect(table.targets.map(\.type) == ["linear", "striped", "error", "zero", "linear"])
        #expect(table.size == 10240)
        #expect(table.kernelText == text)
        #expect(try Table(parsing: table.kernelText) == table)
        #expect(table.devices.map(\.description) == ["7:0", "7:1", "7:2", "253:4"])
        let data = try JSONEncoder().encode([table])
        #expect(try JSONDecoder().decode([Table].self, from: data) == [table])
    }

    @Test func snapshotParamsNameTheBaseByNameUntilResolved() throws {
        let base = try DeviceName("vg-live-dmsnap-base")
        let p = SnapshotParams(origin: .mapper(base), cow: .number(DeviceNumber(major: 7, minor: 1)), chunk: 8)
        let table = p.table(size: 2048, merge: false)
        #expect(table.kernelText == "0 2048 snapshot /dev/mapper/vg-live-dmsnap-base 7:1 P 8")
        #expect(try Table(parsing: table.kernelText) == table, "a mapper path parses back as a mapper name")
        let resolved = table.mapDevices { ref in ref == .mapper(base) ? .number(DeviceNumber(major: 253, minor: 9)) : ref }
        #expect(resolved.kernelText == "0 2048 snapshot 253:9 7:1 P 8")
    }

    @Test(arguments: [
        "0 976771072 crypt aes-xts-plain64 :64:logon:cryptsetup:8f7c2f61-3c7e-4c1e-9f1a-0a6d1b2c3d4e-d0 0 8:2 32768",
        "0 2048 crypt aes-xts-plain64 6f1c2c0a9bd64e1a7f3b2f5e8c9d0a1b2c3d4e5f60718293a4b5c6d7e8f90123 0 7:3 4096 1 allow_discards",
    ])
    func cryptIsOpaqueAndItsKeyNeverShown(_ line: String) throws {
        let t = try TargetLine(parsing: line)
        let key = line.split(separator: " ")[4]
        #expect(t.kernelText == line, "the kernel text round-trips exactly")
        #expect(!t.description.contains(key))
        #expect(!"\(t.params)".contains(key))
        let table = try Table([t])
        #expect(table.holdsSecret)
        #expect(!table.description.contains(key) && !table.oneLine.contains(key))
        #expect(table.devices.count == 1)
        // A malformed crypt line (no device) is refused without echoing its key.
        let bad = "0 2048 crypt aes-xts-plain64 \(key) 0"
        let e = #expect(throws: ModelError.self) { try TargetLine(parsing: bad) }
        #expect(e.map { !$0.description.contains(key) } == true, "\(String(describing: e))")
    }

    @Test func otherTargetsKeepTheirText() throws {
        let t = try TargetLine(parsing: "0 41943040 thin-pool 253:2 253:3 128 0 1 skip_block_zeroing")
        #expect(t.params == .other(type: "thin-pool", params: "253:2 253:3 128 0 1 skip_block_zeroing"))
        #expect(t.params.devices.map(\.description) == ["253:2", "253:3"])
        #expect(!Table.single(size: 41_943_040, t.params).holdsSecret)
    }
}
