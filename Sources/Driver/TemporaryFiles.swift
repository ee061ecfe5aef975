import Dispatch
import Foundation

/// The temporary files and folders the process has made and not yet removed: scratch folders
/// of `verify` and `bench`, half-written outputs. On SIGINT or SIGTERM they are removed before
/// the process exits (status 130 or 143), so an interrupted run leaves nothing behind.
final class TemporaryFiles: @unchecked Sendable {
    /// The process's registry.
    static let shared = TemporaryFiles()

    private let lock = NSLock()
    private var paths: [String] = []
    private var sources: [DispatchSourceSignal] = []
    private var installed = false

    /// Registers a path to remove on interruption (and installs the signal handlers once).
    func add(_ path: String) {
        lock.lock()
        defer { lock.unlock() }
        paths.append(path)
        guard !installed else { return }
        installed = true
        for (signalNumber, status) in [(SIGINT, Int32(130)), (SIGTERM, Int32(143))] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { [unowned self] in
                self.removeAll()
                exit(status)
            }
            source.resume()
            sources.append(source)
        }
    }

    /// Forgets a path (the caller removed or renamed it).
    func remove(_ path: String) {
        lock.lock()
        defer { lock.unlock() }
        paths.removeAll { $0 == path }
    }

    /// Removes every registered path.
    func removeAll() {
        lock.lock()
        let all = paths
        paths.removeAll()
        lock.unlock()
        for path in all.reversed() { try? FileManager.default.removeItem(atPath: path) }
    }
}
