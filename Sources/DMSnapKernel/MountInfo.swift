import DMSnapModel

/// Parses /proc/self/mountinfo.
public enum MountInfo {
    public static func parse(_ text: String) -> [MountEntry] {
        var out: [MountEntry] = []
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count >= 10, let dash = f.firstIndex(of: "-"), dash + 2 < f.count,
                  let number = try? DeviceNumber(f[2]) else { continue }
            let options = { (field: Substring) in field.split(separator: ",").map(String.init) }
            out.append(MountEntry(number: number, mountPoint: unescape(f[4]), fsType: String(f[dash + 1]),
                                  source: unescape(f[dash + 2]), root: unescape(f[3]), options: options(f[5]),
                                  superOptions: dash + 3 < f.count ? options(f[dash + 3]) : []))
        }
        return out
    }

    /// mountinfo escapes space, tab, newline and backslash as `\ooo`.
    static func unescape(_ field: Substring) -> String {
        var bytes: [UInt8] = []
        var u = Array(field.utf8)[...]
        while let b = u.first {
            if b == UInt8(ascii: "\\"), u.count >= 4,
               let v = UInt8(String(decoding: u.dropFirst().prefix(3), as: UTF8.self), radix: 8) {
                bytes.append(v)
                u = u.dropFirst(4)
            } else {
                bytes.append(b)
                u = u.dropFirst()
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
