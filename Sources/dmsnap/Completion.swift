import ArgumentParser
import DMSnap
import FoundationEssentials

/// Dynamic shell completion (swift-argument-parser calls these when the user presses TAB):
/// recorded set names, device-mapper devices, `DEVICE=COW` pairs and `status -o` fields.
extension CompletionKind {
    /// The sets in the state directory (readable by root only: nothing for other users).
    static var setNames: CompletionKind {
        .custom { _, _, prefix in Completions.setNames().filter { $0.hasPrefix(prefix) } }
    }

    /// The device-mapper devices (`/dev/mapper`), without dmsnap's hidden ones.
    static var deviceNames: CompletionKind {
        .custom { _, _, prefix in Completions.deviceNames().filter { $0.hasPrefix(prefix) } }
    }

    /// `DEVICE=COW`: a device name and `=`, then a path for the COW.
    static var devicePairs: CompletionKind {
        .custom { _, _, prefix in Completions.pairs(prefix) }
    }

    /// A comma-separated list of `status` fields: completes the last one.
    static var statusFields: CompletionKind {
        .custom { _, _, prefix in Completions.list(prefix, of: StatusField.allCases.map(\.rawValue)) }
    }
}

enum Completions {
    static func entries(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted()
    }

    static func setNames(in dir: String = FileSetStore.defaultDirectory) -> [String] {
        ((try? FileSetStore(directory: dir).names()) ?? []).map(\.value)
    }

    static func deviceNames() -> [String] {
        entries("/dev/mapper").filter {
            $0 != "control" && !$0.hasSuffix(DMSnapNaming.baseSuffix) && !$0.hasSuffix(DMSnapNaming.viewSuffix)
        }
    }

    static func pairs(_ prefix: String) -> [String] {
        guard let eq = prefix.firstIndex(of: "=") else {
            return deviceNames().filter { $0.hasPrefix(prefix) }.map { $0 + "=" }
        }
        let device = prefix[...eq]
        let path = String(prefix[prefix.index(after: eq)...])
        guard let slash = path.lastIndex(of: "/") else {
            return ["/dev/"].filter { $0.hasPrefix(path) }.map { device + $0 }
        }
        let dir = String(path[...slash])
        let name = path[path.index(after: slash)...]
        return entries(dir).filter { $0.hasPrefix(name) && !$0.hasPrefix(".") }.map { device + dir + $0 }
    }

    static func list(_ prefix: String, of words: [String]) -> [String] {
        let done = prefix.lastIndex(of: ",").map { String(prefix[...$0]) } ?? ""
        let last = prefix.dropFirst(done.count)
        return words.filter { $0.hasPrefix(last) }.map { done + $0 }
    }
}
