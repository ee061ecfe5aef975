/// The blockc command-line driver.
public enum Driver {
    /// Runs the command line and exits.
    public static func main() {}
}
