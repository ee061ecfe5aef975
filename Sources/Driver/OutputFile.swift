import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where a command writes one whole file: `-o`, `--output-dir`, `--bundle` and the files
/// beside them all go through here.
///
/// - `-` is standard output.
/// - A symbolic link is followed: the file it names is written, the link stays.
/// - A regular file (or a path that does not exist yet) is written to a temporary file in the
///   same folder and renamed over the target, so a failed run never leaves half a file; an
///   existing file keeps its permission bits (and owner, where allowed).
/// - Anything else (a character or block device, a FIFO, a socket) is opened and written in
///   place; a directory is an error.
///
/// Every write error (for example `ENOSPC` from a full device) is a `DriverError`.
struct OutputFile {
    /// The path as given (`-` for standard output).
    let path: String

    /// An output at `path`.
    init(_ path: String) { self.path = path }

    /// Whether this output is standard output.
    var isStandardOutput: Bool { path == "-" }

    /// Writes text to the output.
    func write(_ text: String, newFileMode: mode_t = 0o666) throws(DriverError) {
        try write(Array(text.utf8), newFileMode: newFileMode)
    }

    /// Writes bytes to the output. `newFileMode` (less the umask) is the mode of a file this
    /// call creates; an existing regular file keeps its own.
    func write(_ bytes: [UInt8], newFileMode: mode_t = 0o666) throws(DriverError) {
        if isStandardOutput {
            if let code = Self.writeAll(STDOUT_FILENO, bytes) {
                throw DriverError("cannot write to standard output: \(Self.describe(code))")
            }
            return
        }
        let target = try Self.followLinks(path)
        var info = stat()
        if lstat(target, &info) != 0 {
            let code = errno
            guard code == ENOENT else { throw failure(target, code) }
            try replaceAtomically(target, bytes: bytes, mode: newFileMode & ~Self.currentUmask(), owner: nil)
            return
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG:
            try replaceAtomically(
                target, bytes: bytes, mode: info.st_mode & 0o7777, owner: (info.st_uid, info.st_gid))
        case S_IFDIR:
            throw DriverError("cannot write '\(path)': it is a directory; give a file path")
        case S_IFSOCK:
            try writeToSocket(target, bytes: bytes)
        default:
            try writeInPlace(target, bytes: bytes)
        }
    }

    /// The path a symbolic-link chain ends at (which need not exist).
    static func followLinks(_ path: String) throws(DriverError) -> String {
        var current = path
        for _ in 0..<40 {
            var info = stat()
            guard lstat(current, &info) == 0, info.st_mode & S_IFMT == S_IFLNK else { return current }
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlink(current, &buffer, buffer.count - 1)
            guard n >= 0 else { return current }
            let link = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let folder = URL(fileURLWithPath: current).deletingLastPathComponent().path
            current = link.hasPrefix("/") ? link : folder + "/" + link
        }
        throw DriverError("cannot write '\(path)': too many levels of symbolic links")
    }

    // MARK: - Regular files

    private func replaceAtomically(
        _ target: String, bytes: [UInt8], mode: mode_t, owner: (uid_t, gid_t)?
    ) throws(DriverError) {
        let url = URL(fileURLWithPath: target)
        let folder = url.deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory) else {
            throw DriverError("cannot write '\(path)': the folder '\(folder)' does not exist; create it first")
        }
        guard isDirectory.boolValue else {
            throw DriverError("cannot write '\(path)': '\(folder)' is a file, not a folder")
        }
        var template = Array((folder + "/." + url.lastPathComponent + ".blockc-XXXXXX").utf8CString)
        let fd = mkstemp(&template)
        guard fd >= 0 else { throw failure(target, errno) }
        let temporary = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        TemporaryFiles.shared.add(temporary)
        defer { TemporaryFiles.shared.remove(temporary) }
        var code: Int32?
        if let owner { _ = fchown(fd, owner.0, owner.1) }
        if fchmod(fd, mode) != 0 { code = errno }
        if code == nil { code = Self.writeAll(fd, bytes) }
        if close(fd) != 0, code == nil { code = errno }
        if code == nil, rename(temporary, target) != 0 { code = errno }
        if let code {
            unlink(temporary)
            throw failure(target, code)
        }
    }

    // MARK: - Devices, FIFOs and sockets

    private func writeInPlace(_ target: String, bytes: [UInt8]) throws(DriverError) {
        let fd = open(target, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw failure(target, errno) }
        var code = Self.writeAll(fd, bytes)
        if close(fd) != 0, code == nil { code = errno }
        if let code { throw failure(target, code) }
    }

    private func writeToSocket(_ target: String, bytes: [UInt8]) throws(DriverError) {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw failure(target, errno) }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(target.utf8)
        guard pathBytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw DriverError("cannot write '\(path)': the socket's path is too long to connect to")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (k, b) in pathBytes.enumerated() { raw[k] = b }
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard connected == 0 else { throw failure(target, errno) }
        if let code = Self.writeAll(fd, bytes) { throw failure(target, code) }
    }

    // MARK: - Helpers

    /// Writes every byte, retrying after interruptions; returns `errno` on failure.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Int32? {
        bytes.withUnsafeBytes { raw -> Int32? in
            var offset = 0
            while offset < raw.count {
                #if canImport(Glibc)
                    let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                #else
                    let n = Darwin.write(fd, raw.baseAddress! + offset, raw.count - offset)
                #endif
                if n < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                offset += n
            }
            return nil
        }
    }

    private func failure(_ target: String, _ code: Int32) -> DriverError {
        let shown = target == path ? "'\(path)'" : "'\(path)' (→ '\(target)')"
        return DriverError("cannot write \(shown): \(Self.describe(code))")
    }

    /// `strerror` text with a hint for the common cases.
    static func describe(_ code: Int32) -> String {
        let text = String(cString: strerror(code))
        switch code {
        case ENOSPC: return text.lowercased() + "; free some space or choose another path"
        case EACCES, EPERM, EROFS: return text.lowercased() + "; choose a writable path"
        default: return text.lowercased()
        }
    }

    private static func currentUmask() -> mode_t {
        let mask = umask(0o022)
        umask(mask)
        return mask
    }
}
