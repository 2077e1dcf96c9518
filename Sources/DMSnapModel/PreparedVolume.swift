import FoundationEssentials

/// How a block device is found again after a reboot, whatever its name then (`/dev/sdb2` may be
/// `/dev/sdc2` next time): its partition's UUID, its disk's WWN, or the UUID of the filesystem
/// or LUKS container on it — in that order of preference.
public struct VolumeIdentity: Codable, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: String, Codable, Hashable, Sendable {
        case partUUID = "PARTUUID", wwn = "WWN", uuid = "UUID"
    }

    public var kind: Kind
    public var value: String

    public init(_ kind: Kind, _ value: String) {
        self.kind = kind
        self.value = value
    }

    public var description: String { "\(kind.rawValue)=\(value)" }
}

/// A plain device (a partition, disk, md or loop device) made snapshot-ready by `dmsnap prepare`:
/// a dm linear device `name` over all of it, which the filesystem or LUKS container is then used
/// through. Re-created at boot by `dmsnap activate --all`, from the device's identity.
public struct PreparedVolume: Codable, Hashable, Sendable {
    public var name: DeviceName
    public var uuid: String
    public var identity: VolumeIdentity
    public var sectors: Sectors
    /// The path it had when prepared (for messages; never used to find it).
    public var preparedFrom: String
    public var created: Date

    public init(name: DeviceName, identity: VolumeIdentity, sectors: Sectors, preparedFrom: String, created: Date) {
        self.name = name
        uuid = DMSnapNaming.volumeUUID(for: name)
        self.identity = identity
        self.sectors = sectors
        self.preparedFrom = preparedFrom
        self.created = created
    }

    /// The wrapper's table over the device `number`.
    public func table(over number: DeviceNumber) -> Table {
        Table.single(size: sectors, .linear(LinearParams(device: .number(number), offset: 0)))
    }
}

extension DMSnapNaming {
    /// dm uuids of prepared volumes: `DMSNAP-vol-NAME`.
    public static let volumePrefix = "\(uuidPrefix)vol-"

    public static func volumeUUID(for name: DeviceName) -> String { volumePrefix + name.value }

    /// True for the uuid of a device dmsnap made that is not a prepared volume (a base, a view;
    /// `DMSNAP-SET-baseN` from an older version too).
    public static func isHidden(uuid: String) -> Bool {
        uuid.hasPrefix(hiddenPrefix) || (uuid.hasPrefix(uuidPrefix) && !uuid.hasPrefix(volumePrefix))
    }
}
