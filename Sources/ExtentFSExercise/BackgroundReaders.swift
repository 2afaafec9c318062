import ExtentFS
#if canImport(Glibc)
import ExtentFSCore
import Glibc
#endif

/// Threads that read random ranges of the files while the exercise runs, as the kernel's
/// readahead does through a mount (READ requests in parallel with the writes on other daemon
/// threads). What they read is not checked, it changes all the time; they are there to race
/// page creation, fill and reclaim against the checked operations. Runs with them are not
/// deterministic, so a failure may need several replays to show again.
final class BackgroundReaders: @unchecked Sendable {
    private let fileSystem: FileSystem
    private let inodes: [InodeNumber]
    private let maxOffset: UInt64
    private var threads: [pthread_t] = []
    private var mutex = pthread_mutex_t()
    private var stopping = false

    init(fileSystem: FileSystem, inodes: [InodeNumber], maxOffset: UInt64) {
        self.fileSystem = fileSystem
        self.inodes = inodes
        self.maxOffset = maxOffset
        pthread_mutex_init(&mutex, nil)
    }

    deinit {
        stop()
        pthread_mutex_destroy(&mutex)
    }

    private var shouldStop: Bool {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return stopping
    }

    func start(count: Int, seed: UInt64) {
        for index in 0..<count {
            let context = Unmanaged.passRetained(Context(readers: self, seed: seed &+ UInt64(index)))
            var thread = pthread_t()
            pthread_create(&thread, nil, { argument in
                let context = Unmanaged<Context>.fromOpaque(argument!).takeRetainedValue()
                context.readers.loop(seed: context.seed)
                return nil
            }, context.toOpaque())
            threads.append(thread)
        }
    }

    /// Stops and joins every thread; the file system may be unmounted after this.
    func stop() {
        guard !threads.isEmpty else { return }
        pthread_mutex_lock(&mutex)
        stopping = true
        pthread_mutex_unlock(&mutex)
        for thread in threads { pthread_join(thread, nil) }
        threads = []
        pthread_mutex_lock(&mutex)
        stopping = false
        pthread_mutex_unlock(&mutex)
    }

    private final class Context {
        let readers: BackgroundReaders
        let seed: UInt64
        init(readers: BackgroundReaders, seed: UInt64) {
            self.readers = readers
            self.seed = seed
        }
    }

    private func loop(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        while !shouldStop {
            let ino = inodes[random.below(inodes.count)]
            let offset = UInt64.random(in: 0..<maxOffset, using: &random) / 4096 * 4096
            let count = (1 + random.below(32)) * 4096
            try? fileSystem.read(ino, offset: offset, count: count) { _ in }
        }
    }
}
