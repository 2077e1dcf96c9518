public enum DMSnapVersion {
    public static let string = "0.1.0"
}
