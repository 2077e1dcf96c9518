/// A program run around a take: before the freeze (`--pre-freeze`, e.g. a database's "flush and
/// lock") or after the thaw (`--post-thaw`, "unlock"), or a drop-in of `/etc/dmsnap/hooks.d`.
/// Never inside the freeze window: a hook that writes to a frozen filesystem would hang.
public struct Hook: Codable, Hashable, Sendable {
    public enum Phase: String, Codable, Hashable, Sendable {
        case preFreeze = "pre-freeze", postThaw = "post-thaw"
    }

    public var phase: Phase
    /// The program and its arguments (no shell: `sh -c '...'` when one is wanted).
    public var argv: [String]
    /// As given (`--pre-freeze "psql -c 'select 1'"`), or the drop-in's path.
    public var text: String

    public init(phase: Phase, argv: [String], text: String) {
        self.phase = phase
        self.argv = argv
        self.text = text
    }
}

/// Splits a command line into words the way a shell would, without running one: blanks
/// separate words; single quotes keep everything; double quotes keep all but `\\"` and `\\\\`;
/// a backslash outside quotes keeps the next character.
public enum ShellWords {
    public static func split(_ text: String) throws(ModelError) -> [String] {
        var words: [String] = []
        var current = ""
        var inWord = false
        var quote: Character?
        var escape = false
        for c in text {
            if escape {
                current.append(c)
                escape = false
                continue
            }
            switch quote {
            case "'":
                if c == "'" { quote = nil } else { current.append(c) }
            case "\"":
                if c == "\"" { quote = nil } else if c == "\\" { escape = true } else { current.append(c) }
            default:
                if c == "'" || c == "\"" {
                    quote = c
                    inWord = true
                } else if c == "\\" {
                    escape = true
                    inWord = true
                } else if c == " " || c == "\t" || c == "\n" {
                    if inWord { words.append(current) }
                    current = ""
                    inWord = false
                } else {
                    current.append(c)
                    inWord = true
                }
            }
        }
        if quote != nil { throw .invalidCommand(text, "unterminated quote") }
        if escape { throw .invalidCommand(text, "ends with a backslash") }
        if inWord { words.append(current) }
        guard !words.isEmpty else { throw .invalidCommand(text, "empty command") }
        return words
    }
}
