import Glibc

/// Thin wrappers over the Glibc file calls used by the module.
///
/// Every wrapper retries on `EINTR`, completes partial reads and writes, and reports
/// failures as ``StorageError`` carrying the path and `errno`.
enum FileSystem {
    /// Creates `directory` and its missing parents, then checks that it is a directory the process may write to.
    ///
    /// - Throws: ``StorageError`` with code `.notWritable` naming the directory.
    static func prepareWritableDirectory(_ directory: String) throws(StorageError) {
        var prefix = directory.hasPrefix("/") ? "/" : ""
        for component in directory.split(separator: "/") {
            prefix += component
            if mkdir(prefix, 0o755) != 0 && Glibc.errno != EEXIST {
                throw notWritable("cannot create directory \(prefix)", directory, Glibc.errno)
            }
            prefix += "/"
        }
        var info = stat()
        guard stat(directory, &info) == 0 else {
            throw notWritable("cannot stat directory", directory, Glibc.errno)
        }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw notWritable("path exists but is not a directory", directory, ENOTDIR)
        }
        guard access(directory, W_OK | X_OK) == 0 else {
            throw notWritable("directory is not writable", directory, Glibc.errno)
        }
    }

    /// Opens a file with `O_CLOEXEC` added to `flags`.
    ///
    /// - Returns: The file descriptor.
    /// - Throws: ``StorageError`` with code `.io`, or `.notWritable` when creating the file is not permitted.
    static func open(_ path: String, flags: Int32) throws(StorageError) -> Int32 {
        while true {
            let descriptor = Glibc.open(path, flags | O_CLOEXEC, 0o644)
            if descriptor >= 0 {
                return descriptor
            }
            let error = Glibc.errno
            if error != EINTR {
                let denied = flags & O_CREAT != 0 && [EACCES, EPERM, EROFS].contains(error)
                throw StorageError(code: denied ? .notWritable : .io, message: "cannot open file", path: path, errno: error)
            }
        }
    }

    /// Closes a file descriptor. Errors are ignored: on Linux the descriptor is released either way,
    /// and durability is established by the explicit syncs before it.
    static func close(_ descriptor: Int32) {
        _ = Glibc.close(descriptor)
    }

    /// Writes `first` followed by `second` at the current file offset, with a single `writev` when possible.
    ///
    /// - Throws: ``StorageError`` with code `.io`.
    static func writeAll(
        _ descriptor: Int32,
        _ first: UnsafeRawBufferPointer,
        _ second: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
        path: String
    ) throws(StorageError) {
        let total = first.count + second.count
        var written = 0
        while written < total {
            let result: Int
            if written < first.count {
                result = withUnsafeTemporaryAllocation(of: iovec.self, capacity: 2) { vectors in
                    vectors[0] = iovec(
                        iov_base: UnsafeMutableRawPointer(mutating: first.baseAddress.map { $0 + written }),
                        iov_len: first.count - written
                    )
                    vectors[1] = iovec(iov_base: UnsafeMutableRawPointer(mutating: second.baseAddress), iov_len: second.count)
                    return writev(descriptor, vectors.baseAddress, 2)
                }
            } else {
                result = write(descriptor, second.baseAddress.map { $0 + (written - first.count) }, total - written)
            }
            if result < 0 {
                if Glibc.errno == EINTR {
                    continue
                }
                throw StorageError(code: .io, message: "write failed", path: path, errno: Glibc.errno)
            }
            written += result
        }
    }

    /// Writes all of `bytes` at the current file offset.
    ///
    /// - Throws: ``StorageError`` with code `.io`.
    static func writeAll(_ descriptor: Int32, _ bytes: [UInt8], path: String) throws(StorageError) {
        try bytes.withUnsafeBytes { buffer in
            Result { () throws(StorageError) in try writeAll(descriptor, buffer, path: path) }
        }.get()
    }

    /// Reads a whole file.
    ///
    /// - Throws: ``StorageError`` with code `.io`.
    static func readFile(_ path: String) throws(StorageError) -> [UInt8] {
        let descriptor = try open(path, flags: O_RDONLY)
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            throw StorageError(code: .io, message: "fstat failed", path: path, errno: Glibc.errno)
        }
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
        var count = 0
        var failure: Int32?
        bytes.withUnsafeMutableBytes { buffer in
            guard let base = buffer.baseAddress else { return }
            while count < buffer.count {
                let result = pread(descriptor, base + count, buffer.count - count, off_t(count))
                if result > 0 {
                    count += result
                } else if result == 0 {
                    return
                } else if Glibc.errno != EINTR {
                    failure = Glibc.errno
                    return
                }
            }
        }
        if let failure {
            throw StorageError(code: .io, message: "read failed", path: path, errno: failure)
        }
        bytes.removeLast(bytes.count - count)
        return bytes
    }

    /// Flushes a file's data and size to stable storage with `fdatasync`.
    ///
    /// - Throws: ``StorageError`` with code `.io`.
    static func sync(_ descriptor: Int32, path: String) throws(StorageError) {
        while fdatasync(descriptor) != 0 {
            if Glibc.errno != EINTR {
                throw StorageError(code: .io, message: "fdatasync failed", path: path, errno: Glibc.errno)
            }
        }
    }

    /// Makes the directory's entries (created, renamed and deleted names) durable with `fsync`.
    ///
    /// - Throws: ``StorageError`` with code `.io`.
    static func syncDirectory(_ directory: String) throws(StorageError) {
        let descriptor = try open(directory, flags: O_RDONLY | O_DIRECTORY)
        defer { close(descriptor) }
        while fsync(descriptor) != 0 {
            if Glibc.errno != EINTR {
                throw StorageError(code: .io, message: "fsync of directory failed", path: directory, errno: Glibc.errno)
            }
        }
    }

    /// Shortens a file to `length` bytes and syncs it.
    ///
    /// - Throws: ``StorageError`` with code `.io`.
    static func truncate(_ path: String, length: UInt64) throws(StorageError) {
        let descriptor = try open(path, flags: O_WRONLY)
        defer { close(descriptor) }
        while ftruncate(descriptor, off_t(length)) != 0 {
            if Glibc.errno != EINTR {
                throw StorageError(code: .io, message: "ftruncate failed", path: path, errno: Glibc.errno)
            }
        }
        try sync(descriptor, path: path)
    }

    /// Returns the names of the entries of a directory, without `.` and `..`, in no particular order.
    ///
    /// - Throws: ``StorageError`` with code `.io`.
    static func listDirectory(_ directory: String) throws(StorageError) -> [String] {
        guard let stream = opendir(directory) else {
            throw StorageError(code: .io, message: "cannot open directory", path: directory, errno: Glibc.errno)
        }
        defer { closedir(stream) }
        var names: [String] = []
        Glibc.errno = 0
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." {
                names.append(name)
            }
        }
        if Glibc.errno != 0 {
            throw StorageError(code: .io, message: "cannot read directory", path: directory, errno: Glibc.errno)
        }
        return names
    }

    /// Deletes a file; a file that is already gone counts as deleted.
    ///
    /// - Throws: ``StorageError`` with code `.io`.
    static func remove(_ path: String) throws(StorageError) {
        if unlink(path) != 0 && Glibc.errno != ENOENT {
            throw StorageError(code: .io, message: "unlink failed", path: path, errno: Glibc.errno)
        }
    }

    /// Atomically renames a file, replacing any file at `destination`.
    ///
    /// - Throws: ``StorageError`` with code `.io`.
    static func rename(_ source: String, to destination: String) throws(StorageError) {
        if Glibc.rename(source, destination) != 0 {
            throw StorageError(code: .io, message: "rename to \(destination) failed", path: source, errno: Glibc.errno)
        }
    }

    /// Returns `prefix`, `number` zero-padded to 20 digits, and `suffix`, e.g. `00000000000000000003.wal`.
    static func fileName(prefix: String = "", number: UInt64, suffix: String) -> String {
        let digits = String(number)
        return prefix + String(repeating: "0", count: 20 - digits.count) + digits + suffix
    }

    /// Parses a name produced by ``fileName(prefix:number:suffix:)``; returns `nil` for any other name.
    static func number(inFileName name: String, prefix: String = "", suffix: String) -> UInt64? {
        guard name.hasPrefix(prefix), name.hasSuffix(suffix), name.count == prefix.count + 20 + suffix.count else {
            return nil
        }
        let digits = name.dropFirst(prefix.count).dropLast(suffix.count)
        guard digits.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            return nil
        }
        return UInt64(digits)
    }

    private static func notWritable(_ message: String, _ directory: String, _ error: Int32) -> StorageError {
        StorageError(code: .notWritable, message: message, path: directory, errno: error)
    }
}
