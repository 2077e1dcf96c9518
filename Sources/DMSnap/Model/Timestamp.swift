import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// UTC timestamps in the ISO 8601 form dmsnap writes (`2026-11-23T13:32:33Z`, whole seconds), for
/// the state files and `--json`. Plain libc (`gmtime_r` / `timegm`): Foundation's ISO 8601 style
/// costs 30–40 ms of cold start per process in the test kernel (BENCHMARKS.md), this costs nothing.
public enum Timestamp {
    public static func string(_ date: Date) -> String {
        var t = time_t(date.timeIntervalSince1970.rounded(.down))
        var tm = tm()
        gmtime_r(&t, &tm)
        func pad(_ v: Int32, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(tm.tm_year + 1900, 4))-\(pad(tm.tm_mon + 1, 2))-\(pad(tm.tm_mday, 2))T"
            + "\(pad(tm.tm_hour, 2)):\(pad(tm.tm_min, 2)):\(pad(tm.tm_sec, 2))Z"
    }

    /// Parses `YYYY-MM-DDTHH:MM:SSZ` (an optional `.fraction` is accepted and dropped).
    public static func parse(_ text: String) -> Date? {
        let u = Array(text.utf8)
        guard u.count >= 20, u.last == UInt8(ascii: "Z") else { return nil }
        func num(_ from: Int, _ len: Int) -> Int32? {
            guard from + len <= u.count else { return nil }
            var v: Int32 = 0
            for c in u[from..<from + len] {
                guard c >= 48, c <= 57 else { return nil }
                v = v * 10 + Int32(c - 48)
            }
            return v
        }
        let seps: [(Int, Character)] = [(4, "-"), (7, "-"), (10, "T"), (13, ":"), (16, ":")]
        guard seps.allSatisfy({ u[$0.0] == $0.1.asciiValue! }) else { return nil }
        if u.count > 20 {
            guard u[19] == UInt8(ascii: "."), u.count > 21, num(20, u.count - 21) != nil else { return nil }
        }
        guard let year = num(0, 4), let month = num(5, 2), let day = num(8, 2), let hour = num(11, 2),
              let minute = num(14, 2), let second = num(17, 2),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else { return nil }
        var tm = tm()
        tm.tm_year = year - 1900
        tm.tm_mon = month - 1
        tm.tm_mday = day
        tm.tm_hour = hour
        tm.tm_min = minute
        tm.tm_sec = second
        let t = timegm(&tm)
        guard tm.tm_mday == day, tm.tm_mon == month - 1 else { return nil } // 31 Feb and the like
        return Date(timeIntervalSince1970: Double(t))
    }

    public static let encoding: JSONEncoder.DateEncodingStrategy = .custom { date, encoder in
        var c = encoder.singleValueContainer()
        try c.encode(string(date))
    }

    public static let decoding: JSONDecoder.DateDecodingStrategy = .custom { decoder in
        let c = try decoder.singleValueContainer()
        let text = try c.decode(String.self)
        guard let date = parse(text) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "expected a UTC time like 2026-11-23T13:32:33Z, got '\(text)'")
        }
        return date
    }
}
