/// The version `dmsnap --version` prints.
public enum DMSnapVersion {
    public static let string = "0.1.0"
}
