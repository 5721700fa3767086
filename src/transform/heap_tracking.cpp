// The malloc family, interposed: each block carries a header with its requested size and a check
// word, in front of what the program sees. glibc's allocator (through its __libc_* entry points,
// or AddressSanitizer's in a sanitizer build) does the work; the cost is the header and a few instructions.
#include "heap_tracking.h"

#include <dlfcn.h>
#include <malloc.h>
#include <sys/mman.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <vector>


extern "C" {
#if defined(MOLT_ALLOCATE_THROUGH_SANITIZER)
// In a sanitizer build the blocks come from AddressSanitizer's allocator (through the entry points
// it exports for interposers), so that it still checks the program's heap: the header lies inside
// its block. (This file itself is built without instrumentation: see src/runtime/CMakeLists.txt.)
void *__interceptor_malloc(size_t);
void *__interceptor_calloc(size_t, size_t);
void *__interceptor_realloc(void *, size_t);
void __interceptor_free(void *);
void *__interceptor_memalign(size_t, size_t);
size_t __sanitizer_get_current_allocated_bytes(void);  // sanitizer/allocator_interface.h, not in gcc's headers
#define MOLT_NEXT(name) __interceptor_##name
#else
void *__libc_malloc(size_t);
void *__libc_calloc(size_t, size_t);
void *__libc_realloc(void *, size_t);
void __libc_free(void *);
void *__libc_memalign(size_t, size_t);
#define MOLT_NEXT(name) __libc_##name
#endif
}

namespace molt::transform {
namespace {

// Header, just below the pointer the program gets. `offset` is how far the allocation starts
// below that pointer (16, or the alignment for aligned blocks); its low bit, never part of the
// distance, marks a block a transformer allocated during an update not yet committed.
struct Header {
    std::uint64_t size;
    std::uint32_t offset;
    std::uint32_t check;
};
static_assert(sizeof(Header) == 16, "the header keeps malloc's 16-byte alignment");

constexpr std::uint32_t seed = 0x6d6f6c74;  // "molt"
// Below a block glibc allocated before the runtime was loaded lies glibc's own chunk header: the
// check word's place holds the high half of its size (0), and the size's place, when the chunk
// below is free, that chunk's size, a multiple of 16. The word free's short path computes for it
// (its size a multiple of 16, the offset 16, the address 16-byte aligned) has the seed's low four
// bits: with those not 0, such a block never passes for one of ours, when free's short path reads
// it. (When the chunk below is in use, its last bytes stand there: a chance match, once in 2^32,
// as anywhere else. A general path reads the offset from memory too, where a chunk of another
// arena than the main one has its flag 4, the seed's low bits: once in 2^28.)
static_assert((seed & 15) != 0, "the seed's low bits tell a check word from glibc's header");
constexpr std::uint32_t transformer_mark = 1;
constexpr std::uint32_t arena_mark = 2;  // a block a CopyArena cut from one of its segments

// The low half of the block's address and its offset (so that the check word of a block tells its
// offset too: free's short path compares the check word alone): memory that is not a header
// matches by chance once in 2^32. Every instruction here runs in each malloc and free, so the word
// is what a load and a compare can test: the high half of the address is left out (the low half
// already differs per block), and so is the size (hashing it cost a multiply and a load in each
// call; Molt trusts its headers' sizes as glibc trusts its chunks').
std::uint32_t check_word(const void *user, std::uint32_t offset)
{
    offset &= ~transformer_mark;  // marking or unmarking a block leaves its check word valid
    return static_cast<std::uint32_t>(reinterpret_cast<std::uintptr_t>(user)) ^ offset ^ seed;
}

std::uint32_t distance(const Header *header) { return header->offset & ~(transformer_mark | arena_mark); }

bool in_arena(const Header *header) { return header->offset & arena_mark; }

void unmark(Header *header) { header->offset &= ~transformer_mark; }

// Transformer allocations (heap_tracking.h): while a thread runs a transformer, each block it
// allocates is marked and listed, in a list of that thread's own (the conversion may run on two).
// Whether this thread records is told by its short-path limit, so that malloc and calloc test the
// size and the recording with one comparison: sizes below the limit take the short path; it is 0
// (no size is below it) while the thread records. initial-exec: libmolt is loaded with the
// program, and malloc and free read it on every call. (A thread whose thread-locals were never
// set up would read 0 and record: its blocks listed as a transformer's, which the next update's
// list drops. glibc sets them up before any code of the thread runs.)
constexpr std::size_t largest_size = SIZE_MAX - 64;  // leaves room for the header and an alignment
__attribute__((tls_model("initial-exec"))) thread_local std::size_t t_short_path_limit = largest_size + 1;

bool recording() { return t_short_path_limit == 0; }

void set_recording(bool on) { t_short_path_limit = on ? 0 : largest_size + 1; }

__attribute__((tls_model("initial-exec"))) thread_local bool t_in_allocator = false;
std::atomic<bool> g_allocator_possibly_locked{false};
thread_local std::vector<void *> *t_recorded = nullptr;
thread_local unsigned t_recorded_session = 0;
std::mutex g_recorded_mutex;
std::vector<std::unique_ptr<std::vector<void *>>> g_recorded;  // under g_recorded_mutex
std::atomic<unsigned> g_session{0};  // changed under g_recorded_mutex, when no transformer runs
std::atomic<bool> g_transformers_called{false};  // in this session

// Lists a block a transformer allocated (its header is marked already). Inside the transformer's
// malloc: it must not throw, and a crash in it is a crash inside the allocator. When the list
// cannot grow, the block is unmarked: a rollback then leaves it allocated, nothing worse.
[[gnu::noinline, gnu::cold]] void record(void *user, Header *header) noexcept
{
    set_recording(false);  // the list's own allocations are Molt's, not the transformer's
    t_in_allocator = true;
    try {
        if (!t_recorded || t_recorded_session != g_session.load()) {
            auto list = std::make_unique<std::vector<void *>>();
            list->reserve(64);
            std::lock_guard lock(g_recorded_mutex);
            g_recorded.push_back(std::move(list));
            t_recorded = g_recorded.back().get();
            t_recorded_session = g_session.load();
        }
        t_recorded->push_back(user);
    } catch (...) {
        unmark(header);
    }
    t_in_allocator = false;
    set_recording(true);
}

// Calls into glibc's allocator (or the sanitizer's). On a transformer's thread, the call is
// marked as inside it; everywhere else this is one thread-local read more than the call itself.
template <typename Function, typename... Arguments>
auto call_allocator(Function function, Arguments... arguments)
{
    if (__builtin_expect(!recording(), 1))
        return function(arguments...);
    t_in_allocator = true;
    struct Leave {
        ~Leave() { t_in_allocator = false; }
    } leave;
    return function(arguments...);
}

void *next_malloc(std::size_t size) { return call_allocator(MOLT_NEXT(malloc), size); }
void *next_calloc(std::size_t count, std::size_t size) { return call_allocator(MOLT_NEXT(calloc), count, size); }
void *next_realloc(void *block, std::size_t size) { return call_allocator(MOLT_NEXT(realloc), block, size); }
void *next_memalign(std::size_t alignment, std::size_t size) { return call_allocator(MOLT_NEXT(memalign), alignment, size); }
void next_free(void *block) { call_allocator(MOLT_NEXT(free), block); }

Header *header_of(const void *user) { return reinterpret_cast<Header *>(const_cast<char *>(static_cast<const char *>(user)) - sizeof(Header)); }

// Writes the header of the block at `user`: its size, its offset (and marks), its check word.
inline Header *write_header(void *user, std::size_t size, std::uint32_t offset)
{
    Header *header = header_of(user);
    header->size = size;
    header->offset = offset;
    header->check = check_word(user, offset);
    return header;
}

void *finish(void *base, std::size_t size, std::size_t offset)
{
    if (!base)
        return nullptr;
    char *user = static_cast<char *>(base) + offset;
    Header *header = write_header(user, size, static_cast<std::uint32_t>(offset) | (recording() ? transformer_mark : 0));
    if (recording())
        record(user, header);
    return user;
}

// Whether the page holding `address` is mapped (mincore fails with ENOMEM on a hole).
bool page_is_mapped(std::uintptr_t address)
{
    unsigned char resident;
    std::uintptr_t page = address & ~static_cast<std::uintptr_t>(4095);
    return mincore(reinterpret_cast<void *>(page), 4096, &resident) == 0;
}

// The header of a block the malloc family handed out (free's, realloc's argument), or null for one
// that did not come through here. The 16 bytes below such a block are always mapped: a block of
// ours holds its header, and below one glibc allocated before the runtime was loaded lies glibc's
// own chunk header.
Header *allocated_header(const void *user)
{
    if (reinterpret_cast<std::uintptr_t>(user) % 16 != 0)
        return nullptr;
    Header *header = header_of(user);
    return header->check == check_word(user, header->offset) ? header : nullptr;
}

// The same for any pointer (molt_block_size's): one at the start of a page may be the start of a
// mapping, and is not read below blindly.
Header *tracked_header(const void *user)
{
    if (!user)
        return nullptr;
    if ((reinterpret_cast<std::uintptr_t>(user) & 4095) < sizeof(Header) &&
        !page_is_mapped(reinterpret_cast<std::uintptr_t>(user) - sizeof(Header)))
        return nullptr;
    return allocated_header(user);
}

// The header of a block allocated outside a transformer, 16 bytes below what the program gets:
// malloc's, calloc's and free's common path, kept short (they run for every block the program
// allocates: kvd's requests ran 4 to 5% more instructions with the general path).
inline void *stamp(void *base, std::size_t size)
{
    char *user = static_cast<char *>(base) + sizeof(Header);
    write_header(user, size, sizeof(Header));
    return user;
}

// The general path: a transformer's block (marked and listed), or a size too big.
[[gnu::noinline]] void *allocate(std::size_t size)
{
    if (size > largest_size) {
        errno = ENOMEM;
        return nullptr;
    }
    return finish(next_malloc(size + sizeof(Header)), size, sizeof(Header));
}

// calloc's general path: a size too big (or whose product overflows), or a transformer's block.
[[gnu::noinline]] void *allocate_zeroed(std::size_t count, std::size_t size)
{
    std::size_t total;
    if (__builtin_mul_overflow(count, size, &total) || total > largest_size) {
        errno = ENOMEM;
        return nullptr;
    }
    return finish(next_calloc(1, total + sizeof(Header)), total, sizeof(Header));
}

void *allocate_aligned(std::size_t alignment, std::size_t size)
{
    if (alignment <= sizeof(Header))
        return allocate(size);
    if (size > largest_size - alignment) {
        errno = ENOMEM;
        return nullptr;
    }
    // The header sits in the alignment's worth of bytes below the aligned pointer.
    return finish(next_memalign(alignment, size + alignment), size, alignment);
}

// ---- CopyArena's segments ---------------------------------------------------------------------
// A segment: 2 MB aligned to 2 MB, its first 64 bytes counting the blocks in it not yet freed (and
// the arena still cutting from it, as one), the blocks after. Found from a block by its address.
constexpr std::size_t segment_bytes = SegmentReserve::segment_size;
constexpr std::size_t segment_header_bytes = 64;
constexpr std::size_t largest_arena_block = std::size_t{64} << 10;

struct SegmentHeader {
    std::atomic<std::uint64_t> live;
};

std::atomic<std::size_t> g_segment_bytes{0};  // mapped for segments: counted in heap_use()

}  // namespace
}  // namespace molt::transform

// LeakSanitizer (in a sanitizer build) looks for pointers in the memory it knows of; segments hold
// the converted objects' pointers to the program's other blocks, so they are shown to it.
extern "C" {
__attribute__((weak)) void __lsan_register_root_region(const void *, size_t);
__attribute__((weak)) void __lsan_unregister_root_region(const void *, size_t);
}

namespace molt::transform {
namespace {

char *map_segment()
{
    // Aligned: mapped twice as big, and the ends beyond the alignment given back.
    void *memory = mmap(nullptr, 2 * segment_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED)
        return nullptr;
    auto start = reinterpret_cast<std::uintptr_t>(memory);
    std::uintptr_t aligned = (start + segment_bytes - 1) & ~(segment_bytes - 1);
    if (aligned > start)
        munmap(memory, aligned - start);
    if (std::uintptr_t end = start + 2 * segment_bytes; end > aligned + segment_bytes)
        munmap(reinterpret_cast<void *>(aligned + segment_bytes), end - (aligned + segment_bytes));
    auto *segment = reinterpret_cast<char *>(aligned);
    new (segment) SegmentHeader{};
    if (__lsan_register_root_region)
        __lsan_register_root_region(segment, segment_bytes);
    g_segment_bytes.fetch_add(segment_bytes, std::memory_order_relaxed);
    return segment;
}

void drop_segment_reference(char *segment)
{
    auto *header = reinterpret_cast<SegmentHeader *>(segment);
    if (header->live.fetch_sub(1, std::memory_order_acq_rel) != 1)
        return;
    if (__lsan_unregister_root_region)
        __lsan_unregister_root_region(segment, segment_bytes);
    munmap(segment, segment_bytes);
    g_segment_bytes.fetch_sub(segment_bytes, std::memory_order_relaxed);
}

char *segment_of(void *user)
{
    return reinterpret_cast<char *>(reinterpret_cast<std::uintptr_t>(user) & ~(segment_bytes - 1));
}

void release(void *user)
{
    if (!user)
        return;
    if (Header *header = allocated_header(user)) {
        std::uint32_t offset = distance(header);
        bool arena = in_arena(header);
        header->check = 0;  // a second free of this pointer is no longer taken for ours
        if (arena)
            drop_segment_reference(segment_of(user));
        else
            next_free(static_cast<char *>(user) - offset);
        return;
    }
    next_free(user);  // allocated before the runtime was loaded
}

std::size_t usable_size_of_untracked(void *user)
{
    using Function = std::size_t (*)(void *);
    static Function glibc = reinterpret_cast<Function>(dlsym(RTLD_NEXT, "malloc_usable_size"));
    return glibc ? glibc(user) : 0;
}

bool is_power_of_two(std::size_t value) { return value && !(value & (value - 1)); }

}  // namespace

void CopyArena::finish()
{
    if (m_segment) {
        reinterpret_cast<SegmentHeader *>(m_segment)->live.fetch_add(m_uncounted, std::memory_order_relaxed);
        drop_segment_reference(m_segment);
    }
    m_segment = nullptr;
    m_uncounted = 0;
}

namespace {

// A fresh segment holding the arena's own reference, its pages touched when `touch` and the
// kernel agrees (MADV_POPULATE_WRITE, Linux 5.14: pages it does not give now come at first
// write); null when it could not be mapped, or could not be touched when `must_touch`.
char *fresh_segment(bool touch, bool must_touch = false)
{
    char *fresh = map_segment();
    if (!fresh)
        return nullptr;
    reinterpret_cast<SegmentHeader *>(fresh)->live.store(1, std::memory_order_relaxed);  // the arena's own
    if (touch && madvise(fresh, segment_bytes, MADV_POPULATE_WRITE) != 0 && must_touch) {
        drop_segment_reference(fresh);
        return nullptr;
    }
    return fresh;
}

}  // namespace

bool CopyArena::prepare() { return m_segment || next_segment(true); }

std::size_t SegmentReserve::prepare(std::size_t bytes)
{
    std::size_t wanted = (bytes + segment_bytes - 1) / segment_bytes;
    try {
        m_segments.reserve(m_segments.size() + wanted);
    } catch (const std::bad_alloc &) {
        return 0;
    }
    std::size_t made = 0;
    for (; made < wanted; ++made) {
        char *segment = fresh_segment(true, true);  // one the kernel would not touch now is no gain
        if (!segment)
            break;
        m_segments.push_back(segment);
    }
    return made * segment_bytes;
}

char *SegmentReserve::take()
{
    std::size_t index = m_taken.fetch_add(1, std::memory_order_relaxed);
    return index < m_segments.size() ? m_segments[index] : nullptr;
}

void SegmentReserve::release()
{
    for (std::size_t i = std::min(m_taken.load(), m_segments.size()); i < m_segments.size(); ++i)
        drop_segment_reference(m_segments[i]);
    m_segments.clear();
    m_segments.shrink_to_fit();
    m_taken.store(0);
}

// Its next segment, from the reserve while it has some, the last one let go of (it goes when its
// blocks have).
bool CopyArena::next_segment(bool touch)
{
    char *fresh = m_reserve ? m_reserve->take() : nullptr;
    if (!fresh && !(fresh = fresh_segment(touch)))
        return false;
    finish();
    m_segment = fresh;
    m_used = segment_header_bytes;
    return true;
}

void *CopyArena::allocate(std::size_t size)
{
    if (size > largest_arena_block)
        return calloc(1, size);  // tracked, from malloc
    std::size_t room = sizeof(Header) + ((size + 15) & ~std::size_t{15});
    if ((!m_segment || m_used + room > segment_bytes) && !next_segment(false))
        return nullptr;
    ++m_uncounted;
    char *user = m_segment + m_used + sizeof(Header);
    m_used += room;
    write_header(user, size, sizeof(Header) | arena_mark);
    return user;
}

bool readable(const void *pointer, std::size_t size)
{
    auto start = reinterpret_cast<std::uintptr_t>(pointer);
    for (std::uintptr_t page = start & ~static_cast<std::uintptr_t>(4095); page < start + size; page += 4096)
        if (!page_is_mapped(page))
            return false;
    return true;
}

std::optional<HeapBlock> tracked_block_in_mapped_memory(const void *pointer)
{
    Header *header = pointer ? allocated_header(pointer) : nullptr;
    if (!header)
        return std::nullopt;
    return HeapBlock{const_cast<void *>(pointer), header->size};
}

bool in_allocator_for_transformer() { return t_in_allocator; }

void mark_allocator_possibly_locked() { g_allocator_possibly_locked.store(true); }

bool allocator_may_be_locked() { return g_allocator_possibly_locked.load(); }

void begin_transformer_allocations()
{
    std::lock_guard lock(g_recorded_mutex);
    g_recorded.clear();
    ++g_session;
    g_transformers_called.store(false);
}

void record_transformer_allocations(bool on)
{
    if (on)
        g_transformers_called.store(true, std::memory_order_relaxed);
    set_recording(on);
    t_in_allocator = false;  // a crash may have left it set: call_transformer has read it by now
}

// The header of a tracked block that may have been freed, and its memory unmapped: probed first.
Header *probed_header(const void *pointer)
{
    auto address = reinterpret_cast<std::uintptr_t>(pointer);
    if (address < 16 || !readable(reinterpret_cast<const void *>(address - 16), 16))
        return nullptr;
    return allocated_header(pointer);
}

bool still_allocated(const void *block)
{
    return !g_transformers_called.load() || probed_header(block);
}

// Each listed block that is still a marked, live block, once (a block freed meanwhile has lost
// its header; its memory, reused, holds an unmarked block or a marked one listed again).
template <typename Each>
std::size_t for_each_transformer_allocation(Each &&each)
{
    std::vector<void *> all;
    {
        std::lock_guard lock(g_recorded_mutex);
        for (const auto &list : g_recorded)
            all.insert(all.end(), list->begin(), list->end());
        g_recorded.clear();
        ++g_session;
    }
    std::sort(all.begin(), all.end());
    all.erase(std::unique(all.begin(), all.end()), all.end());
    std::size_t count = 0;
    for (void *user : all)
        if (Header *header = probed_header(user); header && (header->offset & transformer_mark)) {
            each(user, header);
            ++count;
        }
    return count;
}

std::size_t free_transformer_allocations()
{
    return for_each_transformer_allocation([](void *user, Header *) { release(user); });
}

void keep_transformer_allocations()
{
    for_each_transformer_allocation([](void *, Header *header) { unmark(header); });
}

HeapUse heap_use()
{
#if defined(MOLT_ALLOCATE_THROUGH_SANITIZER)
    return {__sanitizer_get_current_allocated_bytes() + g_segment_bytes.load(std::memory_order_relaxed), "AddressSanitizer"};
#else
    struct mallinfo2 info = mallinfo2();
    return {info.uordblks + info.hblkhd + g_segment_bytes.load(std::memory_order_relaxed), "glibc"};  // arenas' blocks in use, mmapped blocks, CopyArena's segments
#endif
}

ResidentMemory resident_memory()
{
    ResidentMemory memory;
    FILE *status = fopen("/proc/self/status", "re");
    if (!status)
        return memory;
    char line[256];
    while (fgets(line, sizeof line, status)) {  // "VmRSS:	  123456 kB"
        if (strncmp(line, "VmRSS:", 6) == 0)
            memory.bytes = strtoull(line + 6, nullptr, 10) * 1024;
        else if (strncmp(line, "RssAnon:", 8) == 0)
            memory.anonymous_bytes = strtoull(line + 8, nullptr, 10) * 1024;
    }
    fclose(status);
    return memory;
}

}  // namespace molt::transform

using namespace molt::transform;

#define MOLT_EXPORT extern "C" __attribute__((visibility("default")))

MOLT_EXPORT void *malloc(size_t size)
{
    if (__builtin_expect(size >= t_short_path_limit, 0))  // too big, or a transformer's block
        return allocate(size);
    void *base = MOLT_NEXT(malloc)(size + sizeof(Header));
    return base ? stamp(base, size) : nullptr;
}

MOLT_EXPORT void free(void *pointer)
{
    // The common path: an ordinary tracked block, freed outside a transformer; its check word,
    // computed with the ordinary offset, tells it (a transformer's mark is left out of the word, and
    // glibc frees its block all the same). An aligned block, a CopyArena's, or any other: release()
    // tells. The header's place is mapped below any block the malloc family handed out (see
    // allocated_header). free(NULL) is common (kvd: one free in three), and costs two instructions.
    if (!pointer)
        return;
    if (__builtin_expect(!recording(), 1)) {
        Header *header = header_of(pointer);
        if (header->check == check_word(pointer, sizeof(Header))) {
            header->check = 0;  // a second free of this pointer is no longer taken for ours
            MOLT_NEXT(free)(static_cast<char *>(pointer) - sizeof(Header));
            return;
        }
    }
    release(pointer);
}

MOLT_EXPORT void *calloc(size_t count, size_t size)
{
    size_t total;
    if (__builtin_expect(__builtin_mul_overflow(count, size, &total) || total >= t_short_path_limit, 0))
        return allocate_zeroed(count, size);
    void *base = MOLT_NEXT(calloc)(1, total + sizeof(Header));
    return base ? stamp(base, total) : nullptr;
}

MOLT_EXPORT void *realloc(void *pointer, size_t size)
{
    if (!pointer)
        return allocate(size);
    if (size == 0) {
        release(pointer);
        return nullptr;
    }
    if (size > largest_size) {
        errno = ENOMEM;
        return nullptr;
    }
    if (Header *header = allocated_header(pointer)) {
        if (distance(header) == 16 && !in_arena(header)) {  // an ordinary block: glibc can grow it in place
            header->check = 0;
            void *moved = next_realloc(static_cast<char *>(pointer) - 16, size + 16);
            if (!moved) {
                header->check = check_word(pointer, 16);  // the old block stays valid
                return nullptr;
            }
            return finish(moved, size, 16);
        }
        void *fresh = allocate(size);  // an aligned block (realloc does not keep the alignment), or a CopyArena's
        if (fresh) {
            memcpy(fresh, pointer, header->size < size ? header->size : size);
            release(pointer);
        }
        return fresh;
    }
    // A block from before the runtime: moved into a tracked one.
    std::size_t old_size = usable_size_of_untracked(pointer);
    void *fresh = allocate(size);
    if (fresh) {
        memcpy(fresh, pointer, old_size < size ? old_size : size);
        next_free(pointer);
    }
    return fresh;
}

MOLT_EXPORT void *reallocarray(void *pointer, size_t count, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(count, size, &total)) {
        errno = ENOMEM;
        return nullptr;
    }
    return realloc(pointer, total);
}

MOLT_EXPORT int posix_memalign(void **result, size_t alignment, size_t size)
{
    if (!is_power_of_two(alignment) || alignment % sizeof(void *) != 0)
        return EINVAL;
    void *block = allocate_aligned(alignment, size);
    if (!block)
        return ENOMEM;
    *result = block;
    return 0;
}

MOLT_EXPORT void *aligned_alloc(size_t alignment, size_t size)
{
    if (!is_power_of_two(alignment)) {
        errno = EINVAL;
        return nullptr;
    }
    return allocate_aligned(alignment, size);
}

MOLT_EXPORT void *memalign(size_t alignment, size_t size) { return aligned_alloc(alignment, size); }

MOLT_EXPORT void *valloc(size_t size) { return allocate_aligned(4096, size); }

MOLT_EXPORT void *pvalloc(size_t size) { return allocate_aligned(4096, (size + 4095) & ~static_cast<size_t>(4095)); }

MOLT_EXPORT size_t malloc_usable_size(void *pointer)
{
    if (!pointer)
        return 0;
    if (Header *header = allocated_header(pointer))
        return header->size;  // the bytes the program may use: exactly what it asked for
    return usable_size_of_untracked(pointer);
}

#if defined(MOLT_ALLOCATE_THROUGH_SANITIZER)
// glibc's strdup allocates through malloc, so its blocks are tracked; AddressSanitizer's own
// strdup (which the program would reach in a sanitizer build) allocates behind malloc's back.
MOLT_EXPORT char *strdup(const char *text) { return strndup(text, SIZE_MAX); }

MOLT_EXPORT char *__strdup(const char *text) { return strndup(text, SIZE_MAX); }

MOLT_EXPORT char *strndup(const char *text, size_t most)
{
    size_t length = strnlen(text, most);
    char *copy = static_cast<char *>(allocate(length + 1));
    if (copy) {
        memcpy(copy, text, length);
        copy[length] = '\0';
    }
    return copy;
}
#endif

// The requested size of a block the runtime tracks, or 0 (see molt/molt.h).
MOLT_EXPORT size_t molt_block_size(const void *pointer)
{
    Header *header = tracked_header(pointer);
    return header ? header->size : 0;
}
