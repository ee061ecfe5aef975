import Foundation

/// A fresh private folder under the temporary directory (`$TMPDIR`), named `blockc-TAG-XXXXXX`,
/// for files a command needs only while it runs. It is registered with `TemporaryFiles`, so an
/// interrupted run removes it too; call `remove()` on every other exit path (a `defer`).
struct ScratchDirectory {
    /// The folder's path.
    let path: String

    /// Creates the folder.
    init(tag: String) throws(DriverError) {
        let safeTag = String(tag.map { $0.isLetter || $0.isNumber || $0 == "_" ? $0 : "_" }.prefix(40))
        let base = FileManager.default.temporaryDirectory.path
        var template = Array((base + "/blockc-\(safeTag)-XXXXXX").utf8CString)
        guard mkdtemp(&template) != nil else {
            throw DriverError(
                "cannot create a scratch folder in '\(base)': \(OutputFile.describe(errno)); set TMPDIR to a writable folder"
            )
        }
        path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        TemporaryFiles.shared.add(path)
    }

    /// Removes the folder and everything in it.
    func remove() {
        try? FileManager.default.removeItem(atPath: path)
        TemporaryFiles.shared.remove(path)
    }
}
