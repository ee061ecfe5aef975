/// A user error the driver reports: already rendered text (with file, line and caret where
/// known); the process exits with status 1.
struct DriverError: Error {
    /// The full message, without the trailing newline.
    var text: String

    /// An error without a source position: printed as `error: message`.
    init(_ message: String) { self.text = "error: " + message }

    /// An error whose text is already rendered.
    init(rendered: String) { self.text = rendered }
}
