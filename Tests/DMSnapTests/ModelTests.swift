import Foundation
import Testing
@testable import DMSnap
@testable import DMSnapModel
@testable import DMSnapPlanning
@testable import DMSnapKernel
@testable import DMSnapStore
import DMSnapTesting
import SystemPackage

// MARK: - helpers

/// Encodes `value` inside a one-element JSON array (so scalars are valid top-level JSON).
private func json<T: Encodable>(_ value: T) throws -> String {
    String(decoding: try JSONEncoder().encode([value]), as: UTF8.self)
}

/// Decodes the single element of a one-element JSON array.
private func decode<T: Decodable>(_ type: T.Type, _ text: String) throws -> T {
    let array = try JSONDecoder().decode([T].self, from: Data(text.utf8))
    return try #require(array.first)
}

private func roundTrip<T: Codable>(_ value: T) throws -> T {
    try JSONDecoder().decode([T].self, from: JSONEncoder().encode([value]))[0]
}

// MARK: - DeviceName

@Suite("DeviceName")
struct DeviceNameTests {
    @Test(arguments: [
        "vg-root", "a", String(repeating: "x", count: 127), "dmst-1-live.x+y",
        "vg--data-lv_1", "luks-3f2a9c1e-0d4b-4a43-9b55-0f7a6c2d1e11", "..a", "a..", "...",
        // 127 bytes, 64 characters: the limit is in bytes.
        String(repeating: "é", count: 63) + "a",
    ])
    func acceptsValidNames(_ raw: String) throws {
        let name = try DeviceName(raw)
        #expect(name.value == raw)
        #expect(name.description == raw)
    }

    @Test(arguments: [
        ("", "1–127 bytes"),
        (String(repeating: "x", count: 128), "1–127 bytes"),
        (String(repeating: "é", count: 64), "1–127 bytes"),  // 64 characters but 128 bytes
        ("/", "'/'"),
        ("vg/root", "'/'"),
        ("../etc", "'/'"),
        (".", "reserved"),
        ("..", "reserved"),
        ("vg root", "whitespace or control"),
        (" ", "whitespace or control"),
        ("vg\troot", "whitespace or control"),
        ("vg-root\n", "whitespace or control"),
        ("vg\rroot", "whitespace or control"),
        ("a\u{0}b", "whitespace or control"),
        ("a\u{1}", "whitespace or control"),
        ("a\u{1b}[31m", "whitespace or control"),
        ("a\u{7f}", "whitespace or control"),
    ])
    func rejectsInvalidNames(_ raw: String, _ reason: String) {
        let error = #expect(throws: ModelError.self) { try DeviceName(raw) }
        guard case let .invalidDeviceName(reported, _)? = error else {
            Issue.record("expected .invalidDeviceName, got \(String(describing: error))")
            return
        }
        #expect(reported == raw)
        #expect(error?.description.contains("'\(raw)'") == true, "description names the device")
        #expect(error?.description.contains(reason) == true, "description gives the reason")
    }

    @Test func errorDescriptionIsOneReadableLine() {
        #expect(throws: ModelError.invalidDeviceName("vg/root", "contains '/'")) { try DeviceName("vg/root") }
        #expect(ModelError.invalidDeviceName("vg/root", "contains '/'").description
            == "invalid device name 'vg/root': contains '/'")
        #expect(ModelError.invalidDeviceName("..", "reserved name").description == "invalid device name '..': reserved name")
    }

    /// The type promises a name "can always be printed on one line"; Unicode line breaks and
    /// C1 control characters (multi-byte in UTF-8, so every byte is >= 0x80) get through.
    @Test(arguments: ["a\u{85}b", "a\u{2028}b", "a\u{2029}b", "a\u{9b}31m"])
    func rejectsNonASCIILineBreaksAndControls(_ raw: String) {
        #expect(throws: ModelError.self) { try DeviceName(raw) }
    }

    @Test func pathIsUnderDevMapper() throws {
        #expect(try DeviceName("vg-root").path == "/dev/mapper/vg-root")
        #expect(try DeviceName("dmst-1-live.x+y").path == "/dev/mapper/dmst-1-live.x+y")
    }

    @Test func sortsByName() throws {
        let names = try ["vg-root", "a", "dmst-2", "dmst-10"].map { try DeviceName($0) }
        #expect(names.sorted().map(\.value) == ["a", "dmst-10", "dmst-2", "vg-root"])
    }

    @Test func codableRoundTripAsPlainString() throws {
        let name = try DeviceName("vg-root")
        #expect(try json(name) == #"["vg-root"]"#)
        #expect(try roundTrip(name) == name)
        #expect(try decode(DeviceName.self, #"["dmst-1-live.x+y"]"#) == DeviceName("dmst-1-live.x+y"))
    }

    @Test(arguments: [#"["vg/root"]"#, #"[""]"#, #"[".."]"#, #"["a b"]"#, #"[42]"#])
    func decodingInvalidNameFails(_ text: String) {
        #expect(throws: DecodingError.self) { try decode(DeviceName.self, text) }
    }
}

// MARK: - hidden device uuids

@Suite("DMSnapNaming")
struct NamingTests {
    /// lvm2 skips a dm device whose uuid starts with `LVM-` and is longer than 69 characters.
    @Test(arguments: ["a", "nightly.1", String(repeating: "s", count: 64)])
    func baseAndViewUUIDsAreLVMReservedAndFitTheKernel(_ raw: String) throws {
        let set = try SetName(raw)
        for index in [0, 7, 999] {
            for uuid in [DMSnapNaming.baseUUID(set: set, index: index), DMSnapNaming.viewUUID(set: set, index: index)] {
                #expect(uuid.hasPrefix("LVM-DMSNAP_\(raw)_"))
                #expect(uuid.count > 69 && uuid.count <= 128, "\(uuid): \(uuid.count) characters")
                #expect(DMSnapNaming.isHidden(uuid: uuid))
                // an lvm2 VG id is 32 characters of [A-Za-z0-9!#]: the first 32 after LVM- hold a '_'
                #expect(uuid.dropFirst(4).prefix(32).contains("_"))
                // libblkid takes an LVM- uuid with a '-' after the prefix for a private device
                #expect(!uuid.dropFirst(4).contains("-"))
            }
            #expect(DMSnapNaming.set(ofBaseUUID: DMSnapNaming.baseUUID(set: set, index: index)) == set)
            #expect(DMSnapNaming.set(ofBaseUUID: DMSnapNaming.viewUUID(set: set, index: index)) == nil)
        }
    }

    @Test func shortUUIDsArePaddedWithZeros() throws {
        #expect(DMSnapNaming.baseUUID(set: try SetName("s"), index: 10) == "LVM-DMSNAP_s_base10_" + String(repeating: "0", count: 50))
        #expect(DMSnapNaming.set(ofBaseUUID: "LVM-DMSNAP_s_base10_" + String(repeating: "0", count: 50)) == (try SetName("s")))
        // a set's '-' is written ':'; names like the padding, with '_' or ':' read back
        #expect(DMSnapNaming.baseUUID(set: try SetName("pre-up"), index: 1).hasPrefix("LVM-DMSNAP_pre:up_base1_0"))
        for raw in ["0-00", "a_0", "a_", "x_base1", "pre-upgrade.2+x", "0", "a-"] {
            let set = try SetName(raw)
            #expect(DMSnapNaming.set(ofBaseUUID: DMSnapNaming.baseUUID(set: set, index: 0)) == set, "\(raw)")
            #expect(DMSnapNaming.set(ofBaseUUID: DMSnapNaming.baseUUID(set: set, index: 12)) == set, "\(raw)")
        }
    }

    @Test func olderUUIDsAreStillRead() throws {
        #expect(DMSnapNaming.set(ofBaseUUID: "DMSNAP-old-base0") == (try SetName("old")))
        #expect(DMSnapNaming.isHidden(uuid: "DMSNAP-old-base0"))
        #expect(DMSnapNaming.isHidden(uuid: "DMSNAP-old-view3"))
    }

    @Test(arguments: ["", "LVM-abc", "LVM-" + String(repeating: "a", count: 64) + "-real", "CRYPT-LUKS2-x", "DMSNAP-vol-data", "LVM-DMSNAP_s_view0_000", "LVM-DMSNAP_s_basex", "LVM-DMSNAP_000"])
    func otherUUIDsNameNoSet(_ uuid: String) {
        #expect(DMSnapNaming.set(ofBaseUUID: uuid) == nil)
    }

    @Test func preparedVolumesAreNotHidden() throws {
        #expect(!DMSnapNaming.isHidden(uuid: DMSnapNaming.volumeUUID(for: try DeviceName("data"))))
        #expect(!DMSnapNaming.isHidden(uuid: "LVM-" + String(repeating: "a", count: 64)))
    }
}

// MARK: - SetName

@Suite("SetName")
struct SetNameTests {
    @Test(arguments: [
        "a", "Z", "0", "nightly", "pre-upgrade", "Set_1.2+3-x", "a-", "a.", "a..b", "2024-01-01",
        String(repeating: "s", count: 64),
    ])
    func acceptsValidNames(_ raw: String) throws {
        let name = try SetName(raw)
        #expect(name.value == raw)
        #expect(name.description == raw)
    }

    @Test(arguments: [
        ("", "1–64"),
        (String(repeating: "s", count: 65), "1–64"),
        ("-a", "must not start"),
        ("-", "must not start"),
        (".hidden", "must not start"),
        (".", "must not start"),
        ("a/b", "only letters"),
        ("a b", "only letters"),
        ("a\tb", "only letters"),
        ("é", "only letters"),
        ("café", "only letters"),
        ("cafe\u{301}", "only letters"),  // decomposed é
        ("ß", "only letters"),
        ("a:b", "only letters"),
        ("a@b", "only letters"),
        ("a*", "only letters"),
        ("a\n", "only letters"),
        ("١٢٣", "only letters"),  // non-ASCII digits
    ])
    func rejectsInvalidNames(_ raw: String, _ reason: String) {
        let error = #expect(throws: ModelError.self) { try SetName(raw) }
        guard case let .invalidSetName(reported, _)? = error else {
            Issue.record("expected .invalidSetName, got \(String(describing: error))")
            return
        }
        #expect(reported == raw)
        #expect(error?.description.contains("invalid set name '\(raw)'") == true)
        #expect(error?.description.contains(reason) == true)
    }

    @Test func codableRoundTrip() throws {
        let name = try SetName("pre-upgrade")
        #expect(try json(name) == #"["pre-upgrade"]"#)
        #expect(try roundTrip(name) == name)
        #expect(throws: DecodingError.self) { try decode(SetName.self, #"["-x"]"#) }
        #expect(throws: DecodingError.self) { try decode(SetName.self, #"["a/b"]"#) }
    }

    @Test func sortsByName() throws {
        let names = try ["b", "A", "a", "10", "9"].map { try SetName($0) }
        #expect(names.sorted().map(\.value) == ["10", "9", "A", "a", "b"])
    }
}

// MARK: - SizeParser

@Suite("SizeParser")
struct SizeParserTests {
    @Test(arguments: [
        ("4096", 4096),
        ("0", 0),
        ("8k", 8192),
        ("8K", 8192),
        ("64K", 65536),
        ("64KiB", 65536),
        ("64kib", 65536),
        ("64KB", 65536),
        ("1M", 1 << 20),
        ("1MB", 1 << 20),
        ("1MiB", 1 << 20),
        ("2G", 2 << 30),
        ("2GiB", 2 << 30),
        ("3T", 3 << 40),
        ("512B", 512),
        ("512b", 512),
        (" 4k ", 4096),
        ("\t1g\n", 1 << 30),
        ("18446744073709551615", UInt64.max),
        ("16777215T", 16_777_215 << 40),
    ] as [(String, UInt64)])
    func parses(_ text: String, _ expected: UInt64) throws {
        #expect(try SizeParser.bytes(text) == expected)
    }

    @Test(arguments: [
        "-1", "1.5k", "k", "KiB", "", "   ", "abc", "4kk", "4 k", "4kiB extra", "0x10", "1e3", "+5",
        "1P", "1KiBB", "١٢", "99999999999999999999T", "99999999999999999999", "16777216T",
    ])
    func rejects(_ text: String) {
        let error = #expect(throws: ModelError.self) { try SizeParser.bytes(text) }
        guard case let .invalidSize(reported, _)? = error else {
            Issue.record("expected .invalidSize, got \(String(describing: error))")
            return
        }
        #expect(reported == text)
        #expect(error?.description.hasPrefix("invalid size '\(text)': ") == true)
    }

    @Test func overflowIsReportedAsTooLarge() {
        #expect(throws: ModelError.invalidSize("16777216T", "too large")) { try SizeParser.bytes("16777216T") }
        #expect(throws: ModelError.invalidSize("", "empty")) { try SizeParser.bytes("") }
    }
}

// MARK: - Sectors

@Suite("Sectors")
struct SectorsTests {
    @Test(arguments: [(0, 0), (512, 1), (4096, 8), (1 << 20, 2048), (1 << 30, 2_097_152)] as [(UInt64, UInt64)])
    func convertsExactBytes(_ bytes: UInt64, _ sectors: UInt64) throws {
        let s = try #require(Sectors(bytes: bytes))
        #expect(s.value == sectors)
        #expect(s.bytes == bytes)
        #expect(Sectors(sectors).bytes == bytes)
    }

    @Test(arguments: [1, 256, 511, 513, 768, 1000, 1280, 4097, (1 << 20) + 1] as [UInt64])
    func rejectsInexactBytes(_ bytes: UInt64) {
        #expect(Sectors(bytes: bytes) == nil)
    }

    @Test func parsedSizesConvert() throws {
        #expect(Sectors(bytes: try SizeParser.bytes("1M")) == 2048)
        #expect(Sectors(bytes: try SizeParser.bytes("100")) == nil)
    }

    @Test func arithmeticAndOrdering() {
        let a: Sectors = 8
        let b = Sectors(16)
        #expect(a + b == 24)
        #expect(b - a == 8)
        #expect(a - a == .zero)
        #expect(Sectors.zero.value == 0)
        var c = a
        c += b
        c -= 4
        #expect(c == 20)
        #expect(a < b)
        #expect(!(b < a))
        #expect([Sectors(3), 1, 2].sorted() == [1, 2, 3])
        #expect([Sectors(1), 2, 3].reduce(.zero, +) == 6)
        #expect(Sectors(204_800).description == "204800")
    }

    @Test func codableAsPlainNumber() throws {
        #expect(try json(Sectors(2048)) == "[2048]")
        #expect(try decode(Sectors.self, "[4096]") == Sectors(4096))
        #expect(try roundTrip(Sectors(UInt64.max)) == Sectors(UInt64.max))
        #expect(throws: DecodingError.self) { try decode(Sectors.self, #"["8"]"#) }
        #expect(throws: DecodingError.self) { try decode(Sectors.self, "[-1]") }
    }
}

// MARK: - DeviceNumber

@Suite("DeviceNumber")
struct DeviceNumberTests {
    @Test(arguments: [
        ("253:0", 253, 0), ("7:1", 7, 1), ("8:16", 8, 16), ("0:0", 0, 0),
        ("4294967295:4294967295", .max, .max),
    ] as [(String, UInt32, UInt32)])
    func parses(_ text: String, _ major: UInt32, _ minor: UInt32) throws {
        let n = try DeviceNumber(text)
        #expect(n.major == major)
        #expect(n.minor == minor)
        #expect(n == DeviceNumber(major: major, minor: minor))
        #expect(n.description == text)
        #expect(try DeviceNumber(n.description) == n)
    }

    @Test(arguments: ["253", "a:b", "1:2:3", "1::2", ":1", "1:", ":", "", "253:-1", "4294967296:0", " 253:0", "253.0", "253:0 "])
    func rejects(_ text: String) {
        #expect(throws: ModelError.invalidNumber(text)) { try DeviceNumber(text) }
        #expect(ModelError.invalidNumber(text).description.contains("'\(text)'"))
    }

    @Test func parsesSubstrings() throws {
        let line = "253:1 7:1 P 8"
        let parts = line.split(separator: " ")
        #expect(try DeviceNumber(parts[0]) == DeviceNumber(major: 253, minor: 1))
        #expect(try DeviceNumber(parts[1]) == DeviceNumber(major: 7, minor: 1))
    }

    @Test func ordersNumericallyByMajorThenMinor() throws {
        let numbers = try ["253:1", "8:16", "7:1", "253:0", "8:2", "259:0"].map { try DeviceNumber($0) }
        #expect(numbers.sorted().map(\.description) == ["7:1", "8:2", "8:16", "253:0", "253:1", "259:0"])
        #expect(DeviceNumber(major: 8, minor: 99) < DeviceNumber(major: 9, minor: 0))
    }

    @Test func codableAsMajorMinorString() throws {
        let n = DeviceNumber(major: 253, minor: 0)
        #expect(try json(n) == #"["253:0"]"#)
        #expect(try roundTrip(n) == n)
        #expect(try decode(DeviceNumber.self, #"["7:1"]"#) == DeviceNumber(major: 7, minor: 1))
        #expect(throws: DecodingError.self) { try decode(DeviceNumber.self, #"["253"]"#) }
        #expect(throws: DecodingError.self) { try decode(DeviceNumber.self, "[253]") }
    }
}

// MARK: - TargetLine and Table

@Suite("TargetLine and Table")
struct TableTests {
    /// Lines as `dmsetup table` prints them.
    static let realLines = [
        "0 204800 linear 7:0 0",
        "0 8388608 linear 8:2 2048",
        "0 2097152 striped 2 128 8:16 0 8:32 0",
        "0 131072 snapshot 253:1 7:1 P 8",
        "0 131072 snapshot 253:1 7:1 PO 16",
        "0 131072 snapshot-merge 253:1 7:1 P 8",
        "0 131072 snapshot-origin 253:1",
        "0 2048 error",
        "0 2048 zero",
        "0 976771072 crypt aes-xts-plain64 :64:logon:cryptsetup:8f7c2f61-3c7e-4c1e-9f1a-0a6d1b2c3d4e 0 8:2 32768 2 allow_discards no_read_workqueue",
        "0 41943040 thin-pool 253:2 253:3 128 0 1 skip_block_zeroing",
        "0 8388608 thin 253:4 1",
        "0 409600 cache 253:5 253:6 253:7 128 2 metadata2 writeback smq 0",
    ]

    @Test(arguments: realLines)
    func targetLineRoundTrips(_ line: String) throws {
        let target = try TargetLine(parsing: line)
        #expect(target.kernelText == line)
        #expect(try TargetLine(parsing: target.kernelText) == target)
        let table = try Table(parsing: line + "\n")
        #expect(table.targets == [target])
        #expect(table.kernelText == line)
        // What people and logs see is the same, but a crypt key is never shown.
        if target.type == "crypt" {
            #expect(!target.description.contains(":64:logon") && target.description.contains("<key hidden>"))
        } else {
            #expect(target.description == line)
        }
        #expect(table.size == target.length)
    }

    @Test func parsesFields() throws {
        let t = try TargetLine(parsing: "0 131072 snapshot 253:1 7:1 P 8")
        #expect(t.start == 0)
        #expect(t.length == 131_072)
        #expect(t.type == "snapshot")
        #expect(t.params.kernelText == "253:1 7:1 P 8")
        #expect(t.params == .snapshot(SnapshotParams(origin: DeviceNumber(major: 253, minor: 1),
                                                     cow: DeviceNumber(major: 7, minor: 1), chunk: 8)))

        let e = try TargetLine(parsing: "2048 4096 error")
        #expect(e == TargetLine(start: 2048, length: 4096, type: "error", params: ""))
        #expect(e.description == "2048 4096 error")
    }

    @Test(arguments: [
        ("0  204800\tlinear   7:0\t\t0", "0 204800 linear 7:0 0"),
        ("  0 2048 error  ", "0 2048 error"),
        ("\t0 2048 error\t", "0 2048 error"),
        ("0 131072 snapshot  253:1  7:1  P  8 ", "0 131072 snapshot 253:1 7:1 P 8"),
    ])
    func foldsWhitespace(_ raw: String, _ printed: String) throws {
        #expect(try TargetLine(parsing: raw).description == printed)
    }

    @Test(arguments: [
        ("", "expected START LENGTH TYPE"),
        ("0 2048", "expected START LENGTH TYPE"),
        ("   \t ", "expected START LENGTH TYPE"),
        ("x 2048 linear 7:0 0", "bad start 'x'"),
        ("-1 2048 error", "bad start '-1'"),
        ("0 y linear 7:0 0", "bad length 'y'"),
        ("0 -5 error", "bad length '-5'"),
        ("0 1.5 error", "bad length '1.5'"),
        ("0 0 linear 7:0 0", "bad length '0'"),
        ("0 18446744073709551616 error", "bad length"),
        ("0 2048 bad/type", "bad target type 'bad/type'"),
        ("0 2048 lin.ear", "bad target type"),
        ("0 2048 snapshot!", "bad target type"),
        ("0 2048 tÿpe", "bad target type"),
        ("0 2048 abcdefghijklmnop", "bad target type"),  // 16 bytes; the kernel's limit is 15
    ])
    func targetLineRejects(_ line: String, _ reason: String) {
        let error = #expect(throws: ModelError.self) { try TargetLine(parsing: line) }
        guard case let .invalidTargetLine(reported, why)? = error else {
            Issue.record("expected .invalidTargetLine, got \(String(describing: error))")
            return
        }
        #expect(reported == line)
        #expect(why.contains(reason), "\(why)")
    }

    @Test func typeNameUpTo15Bytes() throws {
        #expect(try TargetLine(parsing: "0 8 abcdefghijklmno").type == "abcdefghijklmno")
        #expect(try TargetLine(parsing: "0 8 dm_test-2").type == "dm_test-2")
    }

    @Test func multiLineTable() throws {
        let text = "0 1024 linear 8:16 0\n1024  2048\tlinear 8:32 0  \n\n   \n3072 1024 error\n"
        let table = try Table(parsing: text)
        #expect(table.targets.count == 3)
        #expect(table.targets.map(\.start) == [0, 1024, 3072])
        #expect(table.targets.map(\.type) == ["linear", "linear", "error"])
        #expect(table.size == 4096)
        #expect(table.description == "0 1024 linear 8:16 0\n1024 2048 linear 8:32 0\n3072 1024 error")
        #expect(try Table(parsing: table.description) == table)
    }

    @Test func lvmStyleSegmentsSumToSize() throws {
        let text = """
            0 8388608 linear 8:2 2048
            8388608 4194304 linear 8:3 2048
            12582912 2097152 striped 2 128 8:16 0 8:32 0

            """
        let table = try Table(parsing: text)
        #expect(table.size == 14_680_064)
        #expect(table.size.bytes == 14_680_064 * 512)
        #expect(table.description + "\n" == text)
    }

    @Test(arguments: [
        ("0 100 error\n200 100 error", "starts at 200, expected 100"),  // gap
        ("0 100 error\n50 100 error", "starts at 50, expected 100"),  // overlap
        ("0 100 error\n0 100 error", "starts at 0, expected 100"),  // duplicate
        ("10 100 error", "starts at 10, expected 0"),  // does not start at 0
        ("", "no targets"),
        ("\n  \n\t\n", "no targets"),
    ])
    func tableRejectsBadCoverage(_ text: String, _ reason: String) {
        let error = #expect(throws: ModelError.self) { try Table(parsing: text) }
        guard case let .invalidTable(why)? = error else {
            Issue.record("expected .invalidTable, got \(String(describing: error))")
            return
        }
        #expect(why.contains(reason), "\(why)")
    }

    @Test(arguments: [
        "0 abc error",
        "0 100 error\n100 0 error",
        "0 100 error\nx 100 error",
        "0 100 bad!type",
        "0 100 error\n100 100",
    ])
    func tableRejectsBadLines(_ text: String) {
        let error = #expect(throws: ModelError.self) { try Table(parsing: text) }
        guard case .invalidTargetLine? = error else {
            Issue.record("expected .invalidTargetLine, got \(String(describing: error))")
            return
        }
    }

    @Test func tableFromTargets() throws {
        let a = TargetLine(start: 0, length: 100, type: "linear", params: "7:0 0")
        let b = TargetLine(start: 100, length: 50, type: "error", params: "")
        let table = try Table([a, b])
        #expect(table.size == 150)
        #expect(table.description == "0 100 linear 7:0 0\n100 50 error")
        #expect(throws: ModelError.invalidTable("no targets")) { try Table([]) }
        #expect(throws: ModelError.self) { try Table([b]) }
        #expect(throws: ModelError.self) { try Table([a, a]) }
        #expect(throws: ModelError.self) { try Table([b, a]) }
    }

    /// A zero-length target is refused by both initialisers, so every Table can round-trip.
    @Test func zeroLengthTargetsAreRejected() throws {
        let zero = TargetLine(start: 0, length: 0, type: "error", params: "")
        #expect(throws: ModelError.self) { try Table([zero]) }
        #expect(throws: ModelError.self) { try Table(parsing: "0 0 error") }
    }

    /// A crafted or corrupted table text whose START+LENGTH overflows throws instead of trapping.
    @Test func hugeLengthsThrowInsteadOfTrapping() {
        #expect(throws: ModelError.self) {
            try Table(parsing: "0 18446744073709551615 error\n18446744073709551615 1 error")
        }
    }

    @Test func singleMaximalTargetIsFine() throws {
        let table = try Table(parsing: "0 18446744073709551615 error")
        #expect(table.size == Sectors(.max))
    }

    @Test func tableCodableAsDmsetupText() throws {
        let table = try Table(parsing: "0 1024 linear 8:16 0\n1024 1024 snapshot 253:1 7:1 P 8\n")
        #expect(try json(table) == #"["0 1024 linear 8:16 0\n1024 1024 snapshot 253:1 7:1 P 8"]"#)
        #expect(try roundTrip(table) == table)
        #expect(try decode(Table.self, #"["0 8 error\n8 8 zero\n"]"#).size == 16)
        #expect(throws: DecodingError.self) { try decode(Table.self, #"["0 100 error\n200 100 error"]"#) }
        #expect(throws: DecodingError.self) { try decode(Table.self, #"[""]"#) }
        #expect(throws: DecodingError.self) { try decode(Table.self, #"["0 0 error"]"#) }
        #expect(throws: DecodingError.self) { try decode(Table.self, "[42]") }
    }

    @Test func targetLineCodableRoundTrip() throws {
        let t = try TargetLine(parsing: "0 131072 snapshot 253:1 7:1 P 8")
        #expect(try roundTrip(t) == t)
    }
}

// MARK: - SnapshotParams

@Suite("SnapshotParams")
struct SnapshotParamsTests {
    @Test(arguments: [
        ("253:1 7:1 P 8", 253, 1, 7, 1, "P", 8),
        ("253:0 253:2 N 16", 253, 0, 253, 2, "N", 16),
        ("8:16 7:0 PO 128", 8, 16, 7, 0, "PO", 128),
    ] as [(String, UInt32, UInt32, UInt32, UInt32, String, UInt64)])
    func parsesAndPrints(_ text: String, _ oMaj: UInt32, _ oMin: UInt32, _ cMaj: UInt32, _ cMin: UInt32,
                         _ persistent: String, _ chunk: UInt64) throws {
        let p = try SnapshotParams(parsing: text)
        #expect(p.origin == .number(DeviceNumber(major: oMaj, minor: oMin)))
        #expect(p.cow == .number(DeviceNumber(major: cMaj, minor: cMin)))
        #expect(p.store.rawValue == persistent)
        #expect(p.chunk == Sectors(chunk))
        #expect(p.text == text)
        #expect(try SnapshotParams(parsing: p.text) == p)
    }

    @Test func defaultsToPersistent() {
        let p = SnapshotParams(origin: DeviceNumber(major: 253, minor: 1), cow: DeviceNumber(major: 7, minor: 1), chunk: 8)
        #expect(p.text == "253:1 7:1 P 8")
    }

    @Test(arguments: ["", "253:1 7:1 P", "253:1 7:1 P 8 extra", "253:1 7:1 P x", "253:1 7:1 P -8",
                      "253 7:1 P 8", "253:1 a:b P 8", "253:1"])
    func rejects(_ text: String) {
        #expect(throws: ModelError.self) { try SnapshotParams(parsing: text) }
    }

    @Test func readsParamsOfAParsedTargetLine() throws {
        let line = try TargetLine(parsing: "0 131072 snapshot 253:1 7:1 P 8")
        let p = try #require(line.params.snapshot)
        #expect(p == SnapshotParams(origin: DeviceNumber(major: 253, minor: 1), cow: DeviceNumber(major: 7, minor: 1),
                                    store: .persistent, chunk: 8))
    }

    @Test(arguments: [false, true])
    func buildsOneLineTable(_ merge: Bool) throws {
        let p = SnapshotParams(origin: DeviceNumber(major: 253, minor: 1), cow: DeviceNumber(major: 7, minor: 1), chunk: 8)
        let table = p.table(size: 131_072, merge: merge)
        let type = merge ? "snapshot-merge" : "snapshot"
        #expect(table.targets.count == 1)
        #expect(table.targets.first == TargetLine(start: 0, length: 131_072, type: type, params: "253:1 7:1 P 8"))
        #expect(table.size == 131_072)
        #expect(table.description == "0 131072 \(type) 253:1 7:1 P 8")
        #expect(try Table(parsing: table.description) == table)
        #expect(try SnapshotParams(parsing: try #require(table.targets.first).params.kernelText) == p)
    }
}

// MARK: - SnapshotStatus

@Suite("SnapshotStatus")
struct SnapshotStatusTests {
    @Test func freshSnapshot() throws {
        let s = try SnapshotStatus(parsing: "16/65536 16")
        #expect(s == .valid(allocated: 16, total: 65536, metadata: 16))
        #expect(s.usedPercent == 0)
        #expect(s.mergeComplete)
        #expect(s.description == "16/65536 16")
    }

    @Test func partlyUsedSnapshot() throws {
        let s = try SnapshotStatus(parsing: "1040/65536 24")
        #expect(s == .valid(allocated: 1040, total: 65536, metadata: 24))
        let percent = try #require(s.usedPercent)
        #expect(abs(percent - 1040.0 / 65536.0 * 100) < 1e-9)
        #expect(abs(percent - 1.5869140625) < 1e-9)
        #expect(!s.mergeComplete)
    }

    @Test func fullSnapshotIs100Percent() throws {
        #expect(try SnapshotStatus(parsing: "65536/65536 24").usedPercent == 100)
        #expect(try SnapshotStatus(parsing: "32768/65536 16").usedPercent == 50)
    }

    @Test func zeroTotalHasNoPercentage() throws {
        #expect(try SnapshotStatus(parsing: "0/0 0").usedPercent == nil)
    }

    @Test(arguments: [
        ("Invalid", SnapshotStatus.invalid),
        ("Merge failed", .mergeFailed),
        ("Overflow", .overflow),
        ("Invalid\n", .invalid),
        (" Overflow ", .overflow),
    ])
    func parsesKeywords(_ text: String, _ expected: SnapshotStatus) throws {
        let s = try SnapshotStatus(parsing: text)
        #expect(s == expected)
        #expect(s.usedPercent == nil)
        #expect(!s.mergeComplete)
    }

    @Test(arguments: ["16/65536 16", "1040/65536 24", "0/65536 0", "Invalid", "Merge failed", "Overflow"])
    func descriptionRoundTrips(_ text: String) throws {
        let s = try SnapshotStatus(parsing: text)
        #expect(s.description == text)
        #expect(try SnapshotStatus(parsing: s.description) == s)
    }

    @Test(arguments: [
        "", "garbage", "invalid", "INVALID", "Merge", "Merge  failed x", "16/65536", "16 65536 16", "16/65536 16 3",
        "16/65536/1 16", "a/b c", "16/65536 x", "-1/65536 0", "1.5/65536 0",
        "65537/65536 16",  // allocated > total
        "16/65536 24",  // metadata > allocated
    ])
    func rejects(_ text: String) {
        let error = #expect(throws: ModelError.self) { try SnapshotStatus(parsing: text) }
        guard case .invalidStatus? = error else {
            Issue.record("expected .invalidStatus, got \(String(describing: error))")
            return
        }
    }

    @Test func errorNamesTheText() {
        #expect(throws: ModelError.invalidStatus("garbage")) { try SnapshotStatus(parsing: "garbage\n") }
        #expect(ModelError.invalidStatus("garbage").description == "unrecognised snapshot status 'garbage'")
    }

    @Test(arguments: [
        ("16/65536 16", true),
        ("0/65536 0", true),
        ("24/65536 16", false),
        ("1040/65536 24", false),
        ("Invalid", false),
        ("Merge failed", false),
        ("Overflow", false),
    ])
    func mergeCompleteOnlyWhenOnlyMetadataLeft(_ text: String, _ complete: Bool) throws {
        #expect(try SnapshotStatus(parsing: text).mergeComplete == complete)
    }
}

// MARK: - MountInfo

@Suite("MountInfo")
struct MountInfoTests {
    static let sample = #"""
        22 1 253:0 / / rw,relatime shared:1 - ext4 /dev/mapper/vg-root rw,errors=remount-ro
        23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
        45 22 253:3 / /mnt/my\040data rw,relatime shared:30 master:2 propagate_from:1 - xfs /dev/mapper/vg-data rw,attr2,inode64
        46 22 8:1 /boot /boot rw,relatime - vfat /dev/sda1 rw,fmask=0022
        garbage line
        47 22 8:1 / /broken rw,relatime

        48 22 notanumber / /x rw shared:1 - ext4 /dev/sdb rw
        50 22 8:2 / /nodash rw,relatime shared:1 master:3 ext4 /dev/sdc rw
        51 22 8:3 / /truncated rw shared:1 a b -
        49 22 7:1 / /mnt/tab\011and\134slash rw shared:5 - ext4 /dev/loop1 rw
        60 22 253:5 / /srv/back\040up rw - ext4 /dev/disk/by-label/my\040disk rw
        """#

    @Test func parsesRealisticExcerpt() {
        let entries = MountInfo.parse(Self.sample)
        #expect(entries == [
            MountEntry(number: DeviceNumber(major: 253, minor: 0), mountPoint: "/", fsType: "ext4", source: "/dev/mapper/vg-root",
                       options: ["rw", "relatime"], superOptions: ["rw", "errors=remount-ro"]),
            MountEntry(number: DeviceNumber(major: 0, minor: 21), mountPoint: "/proc", fsType: "proc", source: "proc",
                       options: ["rw", "nosuid", "nodev", "noexec", "relatime"], superOptions: ["rw"]),
            MountEntry(number: DeviceNumber(major: 253, minor: 3), mountPoint: "/mnt/my data", fsType: "xfs",
                       source: "/dev/mapper/vg-data", options: ["rw", "relatime"], superOptions: ["rw", "attr2", "inode64"]),
            MountEntry(number: DeviceNumber(major: 8, minor: 1), mountPoint: "/boot", fsType: "vfat", source: "/dev/sda1",
                       root: "/boot", options: ["rw", "relatime"], superOptions: ["rw", "fmask=0022"]),
            MountEntry(number: DeviceNumber(major: 7, minor: 1), mountPoint: "/mnt/tab\tand\\slash", fsType: "ext4",
                       source: "/dev/loop1", options: ["rw"], superOptions: ["rw"]),
            MountEntry(number: DeviceNumber(major: 253, minor: 5), mountPoint: "/srv/back up", fsType: "ext4",
                       source: "/dev/disk/by-label/my disk", options: ["rw"], superOptions: ["rw"]),
        ])
    }

    @Test func emptyInput() {
        #expect(MountInfo.parse("").isEmpty)
        #expect(MountInfo.parse("\n\n").isEmpty)
    }

    @Test(arguments: [
        (#"/mnt/my\040data"#, "/mnt/my data"),
        (#"a\134b"#, "a\\b"),
        (#"\012"#, "\n"),
        (#"plain"#, "plain"),
        (#"trailing\04"#, #"trailing\04"#),  // too short to be an escape
        (#"not\9xyz"#, #"not\9xyz"#),  // not octal
        (#"\040\040"#, "  "),
    ])
    func unescapes(_ field: String, _ expected: String) {
        #expect(MountInfo.unescape(Substring(field)) == expected)
    }
}

@Suite("Timestamp")
struct TimestampTests {
    @Test(arguments: [
        (0.0, "1970-01-01T00:00:00Z"), (951_782_400, "2000-02-29T00:00:00Z"),
        (1_795_440_753, "2026-11-23T13:32:33Z"), (4_102_444_799, "2099-12-31T23:59:59Z"),
    ])
    func formatsAndParses(_ seconds: Double, _ text: String) {
        #expect(Timestamp.string(Date(timeIntervalSince1970: seconds)) == text)
        #expect(Timestamp.parse(text) == Date(timeIntervalSince1970: seconds))
        // The same text Foundation's ISO 8601 style writes (what older state files hold).
        #expect(Date.ISO8601FormatStyle().format(Date(timeIntervalSince1970: seconds)) == text)
    }

    @Test func fractionsAreDroppedOnWriteAndAcceptedOnRead() {
        #expect(Timestamp.string(Date(timeIntervalSince1970: 1.75)) == "1970-01-01T00:00:01Z")
        #expect(Timestamp.parse("2026-11-23T13:32:33.250Z") == Date(timeIntervalSince1970: 1_795_440_753))
    }

    @Test(arguments: ["", "2026-11-23 13:32:33Z", "2026-11-23T13:32:33", "2026-11-23T13:32:33+01:00",
                      "2026-13-01T00:00:00Z", "2026-02-31T00:00:00Z", "2026-11-23T24:00:00Z", "2026-11-23T13:32:33.Z",
                      "20x6-11-23T13:32:33Z", "2026-11-23T13:32:33ZZ"])
    func rejects(_ text: String) {
        #expect(Timestamp.parse(text) == nil)
    }

    @Test func aSetRoundTripsThroughTheStoreFormat() throws {
        let e = JSONEncoder()
        e.dateEncodingStrategy = Timestamp.encoding
        let d = JSONDecoder()
        d.dateDecodingStrategy = Timestamp.decoding
        struct Stamp: Codable, Equatable { var created: Date }
        let data = try e.encode(Stamp(created: Date(timeIntervalSince1970: 1_795_440_753)))
        #expect(String(decoding: data, as: UTF8.self) == #"{"created":"2026-11-23T13:32:33Z"}"#)
        #expect(try d.decode(Stamp.self, from: data) == Stamp(created: Date(timeIntervalSince1970: 1_795_440_753)))
        #expect(throws: DecodingError.self) { try d.decode(Stamp.self, from: Data(#"{"created":"yesterday"}"#.utf8)) }
    }
}
