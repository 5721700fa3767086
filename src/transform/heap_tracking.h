// Heap tracking: the runtime interposes the malloc family and keeps the exact requested size
// of every block in an 8-byte trailer, the last of its usable bytes (found through the allocator's
// chunk header below the block), so that a typed pointer to a block tells how many elements it
// holds. Blocks that did not come through here (allocated before the runtime was loaded, or by
// another allocator) have no trailer and count as one element.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace molt::transform {

struct HeapBlock {
    void *start = nullptr;  // what malloc returned to the program
    std::size_t size = 0;   // what the program asked for
};

// Whether [pointer, pointer + size) lies in mapped memory (a probe, for pointers Molt did not
// allocate: a dangling one must fail an update, not crash the process).
bool readable(const void *pointer, std::size_t size);

// The tracked block that starts at `pointer`, if it is one. The 16 bytes below `pointer` must
// be known to be mapped (the heap converter probes each page once; a scan reads mapped regions);
// the 8 bytes of its trailer, which the chunk header below tells, are asked of `readable(address,
// size)` (a pointer that is not a block's start reads a made-up place).
// [first, last), when given, is memory known readable (the heap conversion's: the mapping the
// object lies in), so that most looks are one call, with no question asked.
struct BlockLook {
    enum Kind : unsigned char { untracked, tracked, elsewhere } kind = untracked;
    std::size_t size = 0;         // tracked: the requested size
    bool marked = false;          // tracked: a transformer's block, not yet committed
    std::uintptr_t trailer = 0;   // elsewhere: where the trailer would lie, outside [first, last)
};
BlockLook look_at_block(const void *pointer, std::uintptr_t first, std::uintptr_t last);
// The look, asking `readable` of a trailer outside [first, last), and then reading it.
template <typename Readable>
BlockLook look_at_block_or_ask(const void *pointer, Readable &&readable, std::uintptr_t first = 0, std::uintptr_t last = 0)
{
    BlockLook look = look_at_block(pointer, first, last);
    if (look.kind == BlockLook::elsewhere)
        return readable(look.trailer, std::size_t{8}) ? look_at_block(pointer, look.trailer, look.trailer + 8) : BlockLook{};
    return look;
}
template <typename Readable>
std::optional<HeapBlock> tracked_block(const void *pointer, Readable &&readable, std::uintptr_t first = 0,
                                       std::uintptr_t last = 0)
{
    BlockLook look = look_at_block_or_ask(pointer, readable, first, last);
    return look.kind == BlockLook::tracked ? std::optional(HeapBlock{const_cast<void *>(pointer), look.size}) : std::nullopt;
}

// For a block without a trailer: the bytes glibc's chunk at `pointer` holds, when the 16 bytes
// below it look like an in-use chunk's header and the next chunk's header, which `readable`
// must allow reading, says so too (its "previous in use" flag); 0 otherwise. A block with room
// for more objects than one, but no trailer, was allocated before the runtime was loaded, or a
// write past its end overwrote its trailer: Molt converts one object of it, and says so.
std::uintptr_t next_chunk_size_word(const void *pointer);  // 0: no glibc chunk in an arena
std::size_t room_if_next_says_in_use(const void *pointer, std::uintptr_t next_size_word);
template <typename Readable>
std::size_t untracked_chunk_room(const void *pointer, Readable &&readable)
{
    std::uintptr_t next = next_chunk_size_word(pointer);
    return next && readable(next, std::size_t{8}) ? room_if_next_says_in_use(pointer, next) : 0;
}

// Segments for CopyArenas, mapped and touched before the pause, so that the copies are cut from
// memory without a page fault in the pause (a fault costs a microsecond or two on a virtual
// machine: 25 ms of a million copies' pause on two threads). One reserve for the arenas of an
// update: they draw from it as they need segments (one thread may need more than half).
class SegmentReserve {
public:
    static constexpr std::size_t segment_size = std::size_t{2} << 20;

    SegmentReserve() = default;
    SegmentReserve(const SegmentReserve &) = delete;
    SegmentReserve &operator=(const SegmentReserve &) = delete;
    ~SegmentReserve() { release(); }

    // Maps and touches segments for `bytes` (rounded up): stops at the first that cannot be
    // mapped or touched (a hint: the copies then fault their pages in, as without a reserve).
    // Returns the bytes made ready.
    std::size_t prepare(std::size_t bytes);
    // A touched segment holding the taker's reference, or null when none is left. Any thread.
    char *take();
    // Unmaps the segments not taken (each a few dozen microseconds: after the pause).
    void release();

private:
    std::vector<char *> m_segments;
    std::atomic<std::size_t> m_taken{0};  // m_segments[0, m_taken) are the arenas'
};

// Where an update cuts the new copies of converted objects from: segments of 2 MB that Molt maps
// itself, each block after the last with its tracking trailer, as a bump allocator does. An update
// makes a million copies at once: through malloc each was a call into the allocator (at a million
// blocks on two threads, 52 ms against 24 here, most of which were page faults: a SegmentReserve
// now takes them before the pause), and the
// copies now lie in the order the conversion writes them. The segments are not offered for huge
// pages: one fault per 2 MB would be cheaper, but the kernel may compact memory to find a huge
// page, a stall in the pause (on this project's virtual machine, huge-page faults cost 3 to 15
// times less or 2 to 4 times more, run to run). They are ordinary blocks to the program: free()
// and realloc() take them. A freed block's room is not reused: a segment goes back to the system when its last
// block is freed (an update frees the old copies it replaced, so a streak of updates recycles
// its segments). Blocks over 64 KiB come from malloc. One arena per thread; blocks may be freed on
// any thread.
class CopyArena {
public:
    CopyArena() = default;
    CopyArena(const CopyArena &) = delete;
    CopyArena &operator=(const CopyArena &) = delete;
    ~CopyArena() { finish(); }

    // Before the pause: maps its first segment and touches its pages, so that an update that
    // converts a few thousand objects cuts them from memory without a page fault in the pause
    // (2 MB for nothing, when the update converts none). False when it could not be mapped
    // (allocate() will try again).
    bool prepare();
    // Where its next segments come from while the reserve has some (it must outlive the arena's
    // allocations), before it maps its own.
    void draw_from(SegmentReserve *reserve) { m_reserve = reserve; }
    // A zeroed block of `size` bytes, or null when no memory could be had.
    void *allocate(std::size_t size);
    // Done: lets go of its segment, which goes when its blocks have (at once when it has none).
    void finish();

private:
    bool next_segment(bool touch);
    char *m_segment = nullptr;  // holds a reference of its own while blocks are cut from it
    std::size_t m_used = 0;     // bytes of it given
    SegmentReserve *m_reserve = nullptr;
    // Blocks cut from it and not yet in its live count: counted once, when the arena lets go of
    // it (an atomic add per block was a fifth of the allocation). Nothing frees them before:
    // the conversion, and any free of a copy, comes after the allocation's finish().
    std::size_t m_uncounted = 0;
};

// Blocks that transformers (the new version's code, run during an update's conversion) allocate
// and keep: a rollback frees them with everything else the update made; a commit hands them to
// the new version. The transaction begins a list before the conversion; call_transformer records
// around each call, on its thread; after the conversion threads are done, one of the last two.
void begin_transformer_allocations();
void record_transformer_allocations(bool on);
std::size_t free_transformer_allocations();  // how many were still live
void keep_transformer_allocations();
// Whether a block Molt allocated since begin_transformer_allocations is still allocated: a
// transformer may have freed it or moved it (realloc). Probes memory only when a transformer ran.
bool still_allocated(const void *block);

// Whether this thread is inside the allocator on a transformer's behalf (marked only while it
// runs one): a crash there may leave glibc's lock held and its heap corrupt. The crash path then
// marks the allocator as possibly locked for good: a rollback frees nothing more.
bool in_allocator_for_transformer();
void mark_allocator_possibly_locked();
bool allocator_may_be_locked();

// The bytes the program's allocator has handed out and not taken back, and which allocator that
// is. glibc's count (mallinfo2) includes the free blocks its per-thread caches hold, so it is
// exact only to a few kilobytes per thread; AddressSanitizer counts exactly.
struct HeapUse {
    std::size_t bytes_in_use = 0;
    const char *allocator = "";
};
// Costly with glibc: mallinfo2 walks every free chunk of each arena, holding that arena's lock,
// so that the program's allocations wait meanwhile (0.17 s for kvd after an update at a million
// keys). Leak checks ask for it; what runs often asks resident_memory().
HeapUse heap_use();

// The process's resident memory, as the kernel counts it (/proc/self/status: VmRSS and RssAnon,
// the anonymous part: heaps, stacks, Molt's segments). Cheap: no allocator lock is taken.
// Both 0 when the kernel does not say.
struct ResidentMemory {
    std::size_t bytes = 0;
    std::size_t anonymous_bytes = 0;
};
ResidentMemory resident_memory();

}  // namespace molt::transform
