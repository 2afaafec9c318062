import ExtentFS
#if canImport(Glibc)
import Glibc
#endif

/// The threads space operations (fallocate, copy_file_range and the extentfs ioctls that change
/// data) run on, instead of libfuse's loop threads.
///
/// Those operations wait on the kernel: invalidating its cache launders pages dirtied through
/// mmap, which the kernel sends back to us as WRITE requests and waits for, and telling it a new
/// size waits for a page lock that a WRITE in flight holds. A WRITE needs a free loop thread. On
/// the loop's own threads, as many waiting operations as there are loop threads (16) left none,
/// and the mount hung for good (seen: 32 threads each inserting into a file it had dirtied
/// through mmap). Here an operation waits without holding a loop thread, and the request is
/// answered from this thread (libfuse allows replies from any thread).
///
/// Jobs must copy what they need of the request first: the loop thread reuses its buffer, and
/// `fi`, once the handler returns.
final class SpaceWorkers: @unchecked Sendable {
    private let mutex = Mutex()
    private let condition: Condition
    private var jobs: [() -> Void] = []
    private var nextJob = 0
    private var stopping = false
    /// Jobs taken and not yet finished.
    private var running = 0
    private var threads: [pthread_t] = []

    init(threadCount: Int) {
        condition = Condition(mutex)
        for _ in 0..<max(1, threadCount) {
            let unmanaged = Unmanaged.passRetained(self)
            var handle = pthread_t()
            pthread_create(&handle, nil, { argument in
                Unmanaged<SpaceWorkers>.fromOpaque(argument!).takeRetainedValue().run()
                return nil
            }, unmanaged.toOpaque())
            threads.append(handle)
        }
    }

    func submit(_ job: @escaping () -> Void) {
        mutex.withLock {
            jobs.append(job)
            condition.signal()
        }
    }

    /// Runs every job already submitted to the end, then stops the threads. Call once the
    /// session loop has ended and before the session goes away: jobs reply through it. A job
    /// can be waiting on the kernel for a WRITE that no loop thread will serve any more; if the
    /// jobs are not done within `patience` seconds, `onStall` runs (it should sever the kernel
    /// connection, which fails those waits) and the wait goes on.
    func finish(patience: Double = 5, onStall: () -> Void) {
        let done = mutex.withLock { () -> Bool in
            stopping = true
            condition.broadcast()
            var deadline = patience
            while running > 0 || nextJob < jobs.count, deadline > 0 {
                _ = condition.wait(seconds: 0.1)
                deadline -= 0.1
            }
            return running == 0 && nextJob == jobs.count
        }
        if !done { onStall() }
        for thread in threads { pthread_join(thread, nil) }
        threads = []
    }

    private func run() {
        while let job = take() {
            job()
            mutex.withLock {
                running -= 1
                condition.broadcast()
            }
        }
    }

    /// The next job, or nil once stopping and nothing is left.
    private func take() -> (() -> Void)? {
        mutex.withLock {
            while nextJob == jobs.count {
                if stopping { return nil }
                condition.wait()
            }
            let job = jobs[nextJob]
            nextJob += 1
            running += 1
            if nextJob == jobs.count {
                jobs.removeAll(keepingCapacity: true)
                nextJob = 0
            }
            return job
        }
    }
}
