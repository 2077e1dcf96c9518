/// A value that does not parse or validate. Always describes what and why on one line.
public enum ModelError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidDeviceName(String, String)
    case invalidSetName(String, String)
    case invalidNumber(String)
    case invalidTargetLine(String, String)
    case invalidTable(String)
    case invalidStatus(String)
    case invalidSize(String, String)
    case invalidCommand(String, String)

    public var description: String {
        switch self {
        case let .invalidDeviceName(name, why): "invalid device name '\(name)': \(why)"
        case let .invalidSetName(name, why): "invalid set name '\(name)': \(why)"
        case let .invalidNumber(text): "invalid device number '\(text)' (expected MAJOR:MINOR)"
        case let .invalidTargetLine(line, why): "invalid table line '\(line)': \(why)"
        case let .invalidTable(why): "invalid table: \(why)"
        case let .invalidStatus(text): "unrecognised snapshot status '\(text)'"
        case let .invalidSize(text, why): "invalid size '\(text)': \(why)"
        case let .invalidCommand(text, why): "invalid command '\(text)': \(why)"
        }
    }
}
