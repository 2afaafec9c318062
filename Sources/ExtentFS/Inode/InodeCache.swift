import ExtentFSCore
import Logging
import SystemPackage
import Synchronization

/// The inode table as a cache over the newest durable checkpoint (issue 9, step 4 in
/// docs/TREES.md): `Metadata.inodes` holds the inodes in use and every inode changed since that
/// checkpoint; a clean one is let go when the table passes its budget, and read again from the
/// checkpoint's tree (CommittedTree) when asked for.
///
/// Invariants (all under Metadata.lock held exclusively, or shared with Metadata.tableLock: in a
/// shared hold an inode joins, read back from the tree or made with a name, under tableLock, a
/// dead one is freed (Metadata.remove), a FORGET drops a kept lookup count, and nothing is let
/// go; `evictAfterSharedLoads` lets go afterwards, exclusively):
/// - An inode changed since the newest durable checkpoint (in the running transaction, in
///   `sinceCheckpoint`, or in a checkpoint still being written: `checkpointInFlight`) is never
///   let go; so an inode number in one of those sets that the table does not hold is gone, and
///   is not read from the tree (which would bring back what was deleted).
/// - An inode is let go only when the table holds the only reference to it: no request is
///   working on it, so no change can reach an object the table no longer holds.
/// - Kept in memory whatever the budget: the root, open files and unlinked ones, files with
///   pages in the page cache or copy-on-write reservations. The kernel's lookup count of an inode
///   let go is kept apart (`evictedLookups`), a few bytes each, as FUSE requires it to be exact.
/// - What a let-go inode takes in a checkpoint stays counted in MetadataSpace (its image is
///   still in the tree); reading it back does not count it again.
struct InodeCacheState {
    /// Bytes of memory the table may hold for inodes (estimated per inode).
    var budgetBytes: Int {
        get { account.budgetBytes }
        nonmutating set { account.budgetBytes = newValue }
    }
    /// What the members take, kept current as they change (Inode.recount), and the budget.
    let account: InodeCacheAccount
    var chargedBytes: Int { account.bytes }
    /// Table members in the order they joined: the hand of a second-chance sweep.
    private var order: [InodeNumber] = []
    private var orderHead = 0
    /// Kernel lookup counts of inodes let go, with when each was let go (a running number).
    private var evictedLookups: [InodeNumber: (count: UInt64, sequence: UInt64)] = [:]
    /// The same inodes in the order they were let go, oldest at `evictedHead`; an entry whose
    /// sequence is not its inode's in `evictedLookups` (forgotten, read back, or let go again
    /// since) is passed over. Prune asks about the oldest. Not the dictionary's own order: taking
    /// its first keys again and again removed entries from its low buckets only, until its high
    /// ones were one long probe run (linear probing) that every lookup scanned: a walk of
    /// 1,000,000 files spent 45% of the daemon's CPU there.
    private var evictedOrder: [(ino: InodeNumber, sequence: UInt64)] = []
    private var evictedHead = 0
    private var evictedSequence: UInt64 = 0

    /// The lookup count kept for an inode let go, if any.
    func keptLookups(of ino: InodeNumber) -> UInt64? { evictedLookups[ino]?.count }
    /// Inodes let go whose lookup counts are kept.
    var keptLookupRecords: Int { evictedLookups.count }
    private(set) var loads = 0
    private(set) var evictions = 0

    static let defaultBudgetBytes = 64 << 20
    /// What an inode object, its table entry and its page-cache space take before its variable
    /// parts (measured: about 1.1 KB per small file with everything in memory).
    static let inodeOverheadBytes = 1024

    init(budgetBytes: Int, account: InodeCacheAccount = InodeCacheAccount()) {
        self.account = account
        account.budgetBytes = budgetBytes
    }

    static func charge(of inode: Inode) -> Int { inode.memoryChargeEstimate }

    mutating func admit(_ inode: Inode) {
        inode.cacheCharge = Self.charge(of: inode)
        inode.cacheAccount = account
        account.add(inode.cacheCharge)
        order.append(inode.ino)
    }

    mutating func noteLoaded() { loads += 1 }

    mutating func release(_ inode: Inode) {
        account.add(-inode.cacheCharge)
        inode.cacheCharge = 0
        inode.cacheAccount = nil
    }

    mutating func noteEvicted() { evictions += 1 }


    var isOverBudget: Bool { account.isOverBudget }
    /// Entries in the sweep's order (members, and numbers of inodes deleted since, passed over).
    var memberCount: Int { order.count - orderHead }

    /// The next member to consider, or nil when there is none.
    mutating func nextCandidate() -> InodeNumber? {
        guard orderHead < order.count else { return nil }
        let ino = order[orderHead]
        orderHead += 1
        if orderHead >= 4096, orderHead * 2 >= order.count {
            order.removeFirst(orderHead)
            orderHead = 0
        }
        return ino
    }

    /// The kernel dropped `count` lookups of an inode let go.
    mutating func forget(_ ino: InodeNumber, count: UInt64) {
        guard let held = evictedLookups[ino] else { return }
        if held.count > count {
            evictedLookups[ino] = (held.count - count, held.sequence)
        } else {
            evictedLookups[ino] = nil
            compactEvictedOrder()
        }
        // The kernel let go of what it was asked about: the next ask comes at the limit again.
        if evictedLookups.count < lookupRecordLimit * 3 / 4 { pruneThreshold = nil }
    }

    // MARK: bounding the kernel's lookup counts (KernelInodePruning.swift)

    /// The lookup counts of inodes let go are bounded too: past this many, the kernel is asked
    /// to let go of the inodes it no longer uses, and their FORGETs remove the counts. About
    /// 60 bytes each (the count, and its place in the order prune asks in): a tenth of the
    /// table's budget at most while the kernel lets them go.
    var lookupRecordLimit: Int { max(1024, budgetBytes / 640) }
    /// The count past which the next ask is made: raised after each, so that inodes the kernel
    /// keeps (open, a working directory) are not asked about over and over.
    private var pruneThreshold: Int?
    private var pruneWanted = false

    /// A count was kept for an inode let go; true when an ask is now wanted (once per ask).
    mutating func noteLookupRecordKept() -> Bool {
        guard !pruneWanted, evictedLookups.count > (pruneThreshold ?? lookupRecordLimit) else { return false }
        pruneWanted = true
        return true
    }

    /// The inodes to ask the kernel to let go of, down to half the limit; none unless wanted.
    mutating func takePruneCandidates() -> [InodeNumber] {
        guard pruneWanted else { return [] }
        pruneWanted = false
        let excess = evictedLookups.count - lookupRecordLimit / 2
        guard excess > 0 else { return [] }
        pruneThreshold = evictedLookups.count + lookupRecordLimit / 4
        var candidates: [InodeNumber] = []
        var index = evictedHead
        while candidates.count < excess, index < evictedOrder.count {
            let entry = evictedOrder[index]
            index += 1
            if isCurrent(entry) { candidates.append(entry.ino) }
        }
        return candidates
    }

    /// The kernel holds `count` lookups of `ino`, which the table lets go.
    mutating func keepLookups(_ count: UInt64, of ino: InodeNumber) {
        evictedSequence += 1
        evictedLookups[ino] = (count, evictedSequence)
        evictedOrder.append((ino, evictedSequence))
    }

    /// The lookup count kept for `ino` (0 if none), no longer kept apart: it is read back.
    mutating func takeLookups(of ino: InodeNumber) -> UInt64 {
        guard let kept = evictedLookups.removeValue(forKey: ino) else { return 0 }
        compactEvictedOrder()
        return kept.count
    }

    private func isCurrent(_ entry: (ino: InodeNumber, sequence: UInt64)) -> Bool {
        evictedLookups[entry.ino]?.sequence == entry.sequence
    }

    /// Drops stale entries at the head, and rebuilds the order when most of it is stale, so that
    /// it stays within about twice the counts kept.
    private mutating func compactEvictedOrder() {
        while evictedHead < evictedOrder.count, !isCurrent(evictedOrder[evictedHead]) { evictedHead += 1 }
        guard evictedOrder.count - evictedHead > 2 * evictedLookups.count + 4096
            || (evictedHead >= 4096 && evictedHead * 2 >= evictedOrder.count) else { return }
        evictedOrder = evictedOrder[evictedHead...].filter(isCurrent)
        evictedHead = 0
    }

    /// A member that stays gets another turn later.
    mutating func requeue(_ ino: InodeNumber) { order.append(ino) }
}

/// The inode table's running charge, shared with its members so that a change of an inode's
/// size changes it in O(1) (as MetadataSpace is), and its budget. Atomic: members recount
/// themselves in shared transactions too, several at once (Metadata.sharedTransaction), and a
/// request that read inodes back asks whether the table is past its budget with no lock held
/// (`evictAfterSharedLoads`).
final class InodeCacheAccount: Sendable {
    private let counted = Atomic<Int>(0)
    private let budget = Atomic<Int>(0)
    var bytes: Int { counted.load(ordering: .relaxed) }
    func add(_ delta: Int) { counted.wrappingAdd(delta, ordering: .relaxed) }
    var budgetBytes: Int {
        get { budget.load(ordering: .relaxed) }
        set { budget.store(newValue, ordering: .relaxed) }
    }
    var isOverBudget: Bool { bytes > budgetBytes }
}

extension Metadata {
    /// Inode `ino`, read from the newest durable checkpoint if the table does not hold it.
    /// Throws ENOENT when there is no such inode, EIO when the tree cannot be read. Caller holds
    /// `lock` exclusively (the read is done under it; a load lets other inodes go to keep the
    /// table within its budget).
    func inode(_ ino: InodeNumber) throws -> Inode {
        if let inode = inodes[ino] { return inode }
        guard let inode = try loadFromCheckpoint(ino) else { throw Errno.noSuchFileOrDirectory }
        evictToBudget()
        return inode
    }

    /// `inode(_:)` for a caller holding `lock` shared (or exclusively) and `tableLock`, which
    /// serializes loads: two requests for one inode read back make one member. Nothing is let
    /// go in a shared hold (a member another holder found stays, InodeTable.swift); the caller
    /// calls `evictAfterSharedLoads` once it holds neither lock.
    func inodeUnderTableLock(_ ino: InodeNumber) throws -> Inode {
        if let inode = inodes[ino] { return inode }
        guard let inode = try loadFromCheckpoint(ino) else { throw Errno.noSuchFileOrDirectory }
        return inode
    }

    /// Inode `ino` or nil (no such inode, or it cannot be read: logged), for a caller holding
    /// `lock` shared (or exclusively) and `tableLock`, as `inodeUnderTableLock`.
    func inodeIfPresentUnderTableLock(_ ino: InodeNumber) -> Inode? {
        if let inode = inodes[ino] { return inode }
        return try? loadFromCheckpoint(ino)
    }

    /// Reads `ino` back into the table. Caller holds `lock` exclusively, or shared with
    /// `tableLock`: shared transactions may note other inodes meanwhile (ChangeSet's lock), but
    /// nothing else it reads changes in a shared hold (`sinceCheckpoint` and `checkpointInFlight`
    /// change in the log's commit and checkpoint, exclusively).
    private func loadFromCheckpoint(_ ino: InodeNumber) throws -> Inode? {
        guard let committed, !sinceCheckpoint.everything, ino >= FileSystem.rootInode, ino < nextInode,
              !changes.hasNoted(ino), !sinceCheckpoint.inodes.contains(ino), !checkpointInFlight.contains(ino) else {
            return nil
        }
        let inode: Inode
        do {
            guard let loaded = try committed.loadInode(ino, nextInode: nextInode, pageCache: pageCache) else { return nil }
            inode = loaded
        } catch let deferred as TreeReadDeferred {
            throw deferred
        } catch {
            logger.error("reading inode \(ino) from the metadata tree failed: \(error)")
            throw Errno.ioError
        }
        inode.joinCounted(space)
        inode.changes = changes
        inode.lookupCount = cacheState.takeLookups(of: ino)
        inodes[ino] = inode
        cacheState.noteLoaded()
        cacheState.admit(inode)
        return inode
    }

    /// After loads in shared holds, which let nothing go: when the table is past its budget, lets
    /// clean inodes go under `lock` held exclusively, down to a little below the budget, so that
    /// a walk past it takes the lock exclusively once in many loads rather than once a load.
    /// Caller holds no lock.
    func evictAfterSharedLoads() {
        guard cacheAccount.isOverBudget else { return }
        withLock { evictToBudget(limit: 1024, slackBytes: cacheState.budgetBytes / 64) }
    }

    /// Lets clean inodes go until the table is `slackBytes` within its budget, considering at
    /// most `limit` members (pinned ones are passed over, not searched past; each member once at
    /// most). After a checkpoint, what it made clean may all go: the caller passes no limit.
    /// Caller holds `lock` exclusively.
    func evictToBudget(limit: Int = 64, slackBytes: Int = 0) {
        guard committed != nil, !sinceCheckpoint.everything, cacheState.isOverBudget else { return }
        var considered = 0
        let members = cacheState.memberCount
        let target = cacheState.budgetBytes - slackBytes
        while cacheState.chargedBytes > target, considered < min(limit, members), let ino = cacheState.nextCandidate() {
            considered += 1
            guard var inode = inodes.removeValue(forKey: ino) else { continue }  // deleted since
            if isEvictable(inode), isKnownUniquelyReferenced(&inode) {
                if inode.lookupCount > 0 {
                    cacheState.keepLookups(inode.lookupCount, of: ino)
                    if cacheState.noteLookupRecordKept() { wakeForKernelPrune?() }
                }
                cacheState.release(inode)
                inode.leaveCounted()
                inode.changes = nil
                cacheState.noteEvicted()
            } else {
                inodes[ino] = inode
                cacheState.requeue(ino)
                if inode.type == .directory, isClean(inode), committed?.hasNameIndex == true { inode.forgetHeldEntries() }
            }
        }
    }

    private func isEvictable(_ inode: Inode) -> Bool {
        inode.ino != FileSystem.rootInode && inode.nlink > 0 && inode.openCount == 0 && !inode.writebackFailed
            && inode.cowReserved.isEmpty && (inode.pages?.pageCount ?? 0) == 0 && isClean(inode)
    }

    /// Unchanged since the newest durable checkpoint: that checkpoint's tree holds it as it is.
    private func isClean(_ inode: Inode) -> Bool {
        !changes.hasNoted(inode.ino) && !sinceCheckpoint.inodes.contains(inode.ino) && !checkpointInFlight.contains(inode.ino)
    }
}
