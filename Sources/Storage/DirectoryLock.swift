import Glibc

/// An exclusive lock on a data directory, held while the object lives: `flock` on `<directory>/LOCK`, which also
/// holds the holder's process id.
///
/// Two processes on one directory would overwrite each other's checkpoints and delete each other's live log
/// segments. The kernel releases a `flock` when its holder dies, so a crash (kill -9) never leaves a stale lock.
public final class DirectoryLock: Sendable {
    /// The directory locked.
    public let directory: String
    private let descriptor: Int32

    /// Takes the lock without waiting.
    ///
    /// - Throws: ``StorageError`` `.locked` naming the directory and the holder's process id if another process holds
    ///   it; `.notWritable` or `.io` if the lock file cannot be created.
    public init(directory: String) throws(StorageError) {
        try FileSystem.prepareWritableDirectory(directory)
        let path = directory + "/LOCK"
        let descriptor = try FileSystem.open(path, flags: O_RDWR | O_CREAT)
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let error = Glibc.errno
            let holder = (try? FileSystem.readFile(path)).map { String(decoding: $0, as: UTF8.self) } ?? ""
            FileSystem.close(descriptor)
            guard error == EWOULDBLOCK else {
                throw StorageError(code: .io, message: "cannot lock the directory", path: path, errno: error)
            }
            let pid = holder.filter(\.isNumber)
            throw StorageError(code: .locked, message: "another process (pid \(pid.isEmpty ? "unknown" : pid)) uses this directory", path: directory)
        }
        _ = ftruncate(descriptor, 0)
        try FileSystem.writeAll(descriptor, Array("\(getpid())\n".utf8), path: path)
        self.directory = directory
        self.descriptor = descriptor
    }

    deinit {
        FileSystem.close(descriptor)
    }
}
