// The malloc family, interposed: each block carries a trailer with its requested size, in its last
// 8 usable bytes. glibc's allocator (through its __libc_* entry points, or AddressSanitizer's in a
// sanitizer build) does the work; the cost is the trailer and a few instructions.
#include "heap_tracking.h"

#include <dlfcn.h>
#include <malloc.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <errno.h>
#include <unistd.h>
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
// it exports for interposers), so that it still checks the program's heap: the trailer lies inside
// its block. (This file itself is built without instrumentation: see src/runtime/CMakeLists.txt.)
void *__interceptor_malloc(size_t);
void *__interceptor_calloc(size_t, size_t);
void *__interceptor_realloc(void *, size_t);
void __interceptor_free(void *);
void *__interceptor_memalign(size_t, size_t);
size_t __sanitizer_get_current_allocated_bytes(void);  // sanitizer/allocator_interface.h, not in gcc's headers
int __sanitizer_get_ownership(const volatile void *);
size_t __sanitizer_get_allocated_size(const volatile void *);
void __asan_poison_memory_region(const volatile void *, size_t);
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

// ---- The block's trailer ------------------------------------------------------------------------
// The program gets the allocator's own pointer, so that free() hands it straight back. Below it
// lies the allocator's chunk header: glibc's size word 8 bytes below (the chunk's size, with its
// flags in the low three bits), or, for a block a CopyArena cut, a word of Molt's and a size word
// in the shape of glibc's for a block it mapped. The block's last 8 usable bytes are its trailer:
// the requested size and Molt's mark, xor a hash of the block's address. A header of 16 bytes in
// front of each block (Molt's design until the fifteenth session) made every block 16 bytes
// bigger: kvd's server spent 0.4 to 2.2% more CPU per request than without Molt (pipelining 16),
// against the trailer's -0.4 to -1.3% (side by side on one core). glibc rounds chunks to 16
// bytes, so the trailer takes the block's slack when it has 8 bytes of it, and grows the block by
// 16 only when not: sizes 17 to 24, and those 1 to 8 above a multiple of 16.
constexpr std::uint64_t transformer_mark = std::uint64_t{1} << 63;  // a transformer's block, not yet committed
constexpr std::uint64_t reserved_bits = std::uint64_t{0x7f} << 56;  // 0 in a trailer
constexpr std::uint64_t size_bits = (std::uint64_t{1} << 56) - 1;
constexpr std::size_t largest_size = size_bits;  // more fails with ENOMEM (no allocator has it)
constexpr std::uint64_t mmapped_flag = 2;        // glibc's IS_MMAPPED, in the size word
constexpr std::uint64_t arena_word = 0x4d4f4c5441524e41ull;  // "MOLTARNA", below a CopyArena's block's size word

// Any memory that is not a trailer (the program's data, a freed block's zeroed trailer) passes for
// one only if, xor the hash, its seven reserved bits are 0 and its size fits the block: once in
// 2^57 for a block of 100 bytes. The multiplier is odd, so that no two addresses hash alike.
std::uint64_t address_hash(const void *user) { return reinterpret_cast<std::uintptr_t>(user) * 0x9e3779b97f4a7c15ull; }

const std::uint64_t *words_below(const void *user) { return static_cast<const std::uint64_t *>(user); }

std::uint64_t size_word(const void *user) { return words_below(user)[-1]; }

// The bytes usable at a block whose size word is `word`: a glibc chunk in an arena lends its last
// 8 bytes from the next chunk's header; one glibc mapped (or a CopyArena's) has 16 of its own.
std::size_t usable_from(std::uint64_t word) { return (word & ~std::uint64_t{7}) - (word & mmapped_flag ? 16 : 8); }

bool in_arena(const void *user) { return (size_word(user) & mmapped_flag) && words_below(user)[-2] == arena_word; }

// The trailer's word. A sanitizer's blocks are exactly as big as asked, so that it need not be
// 8-byte aligned; and it is read as a plain word, not by memcpy, which the sanitizer would check
// (it poisons the trailer, so that the program's writes past its block are still reported).
typedef std::uint64_t unaligned_word __attribute__((aligned(1), may_alias));

std::uint64_t load_trailer(const void *user, std::size_t usable)
{
    return *reinterpret_cast<const unaligned_word *>(static_cast<const char *>(user) + usable - 8);
}

void store_trailer(void *user, std::size_t usable, std::uint64_t word)
{
    *reinterpret_cast<unaligned_word *>(static_cast<char *>(user) + usable - 8) = word;
}

// The usable bytes of a live block of the allocator's or of a CopyArena's (0: a block the
// sanitizer gave before it was ready, which it does not count as its own: left untracked).
std::size_t usable_size(const void *user)
{
#if defined(MOLT_ALLOCATE_THROUGH_SANITIZER)
    if (!in_arena(user))  // exactly what was asked: the trailer is its last 8
        return __sanitizer_get_ownership(user) ? __sanitizer_get_allocated_size(user) : 0;
#endif
    return usable_from(size_word(user));
}

// What to ask the allocator for, for a block of `size` bytes and its trailer. glibc's chunk for a
// request is the request and its size word rounded up to 16 bytes, 32 at least: when that leaves
// 8 bytes to spare, the request is the size; otherwise 8 more. (A bigger chunk than this, which
// glibc may give, has more room still: stamp() checks.)
std::size_t with_trailer(std::size_t size)
{
#if defined(MOLT_ALLOCATE_THROUGH_SANITIZER)
    return size + 8;
#else
    std::size_t chunk = std::max<std::size_t>(32, (size + 8 + 15) & ~std::size_t{15});
    return chunk - 8 - 8 >= size ? size : size + 8;
#endif
}

void write_trailer(void *user, std::size_t usable, std::uint64_t value) { store_trailer(user, usable, value ^ address_hash(user)); }

bool holds_trailer(std::uint64_t value, std::size_t usable) { return !(value & reserved_bits) && (value & size_bits) <= usable - 8; }

// What a block's trailer holds, when it holds one: its requested size and Molt's mark.
std::optional<std::uint64_t> trailer_value(const void *user, std::size_t usable)
{
    if (usable < 8)
        return std::nullopt;
    std::uint64_t value = load_trailer(user, usable) ^ address_hash(user);
    return holds_trailer(value, usable) ? std::optional(value) : std::nullopt;
}

// A freed block is no longer taken for a live one: by a scan, by a rollback's list, by a second
// free. (Its last 8 bytes: glibc keeps its free lists' links at a chunk's start.) Only a trailer
// is erased: free() of a pointer that is no block's start (which glibc then aborts on) must not
// write where its made-up chunk header leads.
void erase_trailer(void *user, std::size_t usable)
{
    if (trailer_value(user, usable))
        store_trailer(user, usable, 0);
}

// Whether the size word below `user` may be a chunk's: a 16-byte aligned pointer, a size of 32
// bytes or more, a multiple of 16, within the address space.
bool chunk_like(const void *user)
{
    std::uint64_t chunk = size_word(user) & ~std::uint64_t{7};
    return reinterpret_cast<std::uintptr_t>(user) % 16 == 0 && chunk >= 32 && chunk % 16 == 0 && chunk <= (std::uint64_t{1} << 56);
}

// Where a block's trailer would lie, read from the chunk header below it (which must be mapped),
// or nothing when that header is no chunk's: a pointer that is not to the start of a block.
std::optional<std::size_t> plausible_usable_size(const void *user)
{
    if (reinterpret_cast<std::uintptr_t>(user) % 16 != 0)
        return std::nullopt;
    bool chunk = chunk_like(user);
#if defined(MOLT_ALLOCATE_THROUGH_SANITIZER)
    if (!(chunk && in_arena(user)))  // else a live block's start, or nothing (a freed one waits in quarantine)
        return __sanitizer_get_ownership(user) ? std::optional(__sanitizer_get_allocated_size(user)) : std::nullopt;
#endif
    if (!chunk)
        return std::nullopt;
    return usable_from(size_word(user));
}

// Transformer allocations (heap_tracking.h): while a thread runs a transformer, each block it
// allocates is marked and listed, in a list of that thread's own (the conversion may run on two).
// Whether this thread records is told by its short-path limit, so that malloc and calloc test the
// size and the recording with one comparison: sizes below the limit take the short path; it is 0
// (no size is below it) while the thread records. initial-exec: libmolt is loaded with the
// program, and malloc and free read it on every call. (A thread whose thread-locals were never
// set up would read 0 and record: its blocks listed as a transformer's, which the next update's
// list drops. glibc sets them up before any code of the thread runs.)
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

// Lists a block a transformer allocated (its trailer is marked already). Inside the transformer's
// malloc: it must not throw, and a crash in it is a crash inside the allocator. When the list
// cannot grow, the block is unmarked: a rollback then leaves it allocated, nothing worse.
[[gnu::noinline, gnu::cold]] void record(void *user, std::size_t size) noexcept
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
        write_trailer(user, usable_size(user), size);
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

// A block the allocator gave with less room than with_trailer() counted on (an allocator that
// rounds otherwise): grown by 16 bytes until the trailer fits, or freed (null, ENOMEM).
[[gnu::noinline, gnu::cold]] void *make_room(void *user, std::size_t size)
{
    while (user && usable_size(user) < size + 8) {  // (not 0: stamp() leaves those)
        void *bigger = next_realloc(user, usable_size(user) + 16);
        if (!bigger) {
            next_free(user);
            errno = ENOMEM;
        }
        user = bigger;
    }
    return user;
}

// Writes the trailer of a fresh block of `size` bytes (the allocator's pointer): malloc's, calloc's
// and realloc's common path, kept short (they run for every block the program allocates).
inline void *stamp(void *user, std::size_t size, std::uint64_t mark = 0)
{
    std::size_t usable = usable_size(user);
    if (__builtin_expect(usable < size + 8, 0)) {
#if defined(MOLT_ALLOCATE_THROUGH_SANITIZER)
        if (usable == 0)
            return user;
#endif
        if (!(user = make_room(user, size)))
            return nullptr;
        usable = usable_size(user);
    }
    write_trailer(user, usable, size | mark);
#if defined(MOLT_ALLOCATE_THROUGH_SANITIZER)
    __asan_poison_memory_region(static_cast<char *>(user) + usable - 8, 8);
#endif
    return user;
}

// The same for any fresh block, a transformer's marked and listed.
void *finish(void *user, std::size_t size)
{
    if (!user)
        return nullptr;
    if (!recording())
        return stamp(user, size);
    if ((user = stamp(user, size, transformer_mark)))
        record(user, size);
    return user;
}

// Whether the page holding `address` is readable: the kernel reads a byte of it for this process
// (EFAULT on a hole or a PROT_NONE page alike). Where a sandbox forbids that, mincore, which
// fails with ENOMEM on a hole only.
bool page_is_readable(std::uintptr_t address)
{
    std::uintptr_t page = address & ~static_cast<std::uintptr_t>(4095);
    char byte;
    iovec local{&byte, 1}, remote{reinterpret_cast<void *>(page), 1};
    if (process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == 1)
        return true;
    if (errno == EFAULT)
        return false;
    unsigned char resident;
    return mincore(reinterpret_cast<void *>(page), 4096, &resident) == 0;
}

// The block at `user` (its look: tracked or not), for any pointer (molt_block_size's, a rollback's
// list's, which may have been freed and its memory unmapped since): its chunk header's and
// trailer's pages are probed unless they are the page of `user` (which must be mapped).
BlockLook probed_block(const void *user)
{
    auto address = reinterpret_cast<std::uintptr_t>(user);
    std::uintptr_t page = address & ~std::uintptr_t{4095};
    if (address < 16 || (address - 16 < page && !page_is_readable(address - 16)))
        return {};
    return look_at_block_or_ask(
        user, [](std::uintptr_t at, std::size_t size) { return readable(reinterpret_cast<const void *>(at), size); }, page,
        page + 4096);
}

// The general path: a transformer's block (marked and listed), or a size too big.
[[gnu::noinline]] void *allocate(std::size_t size)
{
    if (size > largest_size) {
        errno = ENOMEM;
        return nullptr;
    }
    return finish(next_malloc(with_trailer(size)), size);
}

// calloc's general path: a size too big (or whose product overflows), or a transformer's block.
[[gnu::noinline]] void *allocate_zeroed(std::size_t count, std::size_t size)
{
    std::size_t total;
    if (__builtin_mul_overflow(count, size, &total) || total > largest_size) {
        errno = ENOMEM;
        return nullptr;
    }
    return finish(next_calloc(1, with_trailer(total)), total);
}

void *allocate_aligned(std::size_t alignment, std::size_t size)
{
    if (alignment <= 16)
        return allocate(size);
    if (size > largest_size) {
        errno = ENOMEM;
        return nullptr;
    }
    return finish(next_memalign(alignment, with_trailer(size)), size);  // a chunk like any other
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

// free's general path: a CopyArena's block, one glibc mapped, or any block in a sanitizer build.
void release(void *user)
{
    if (!user)
        return;
    if (in_arena(user)) {
        erase_trailer(user, usable_size(user));
        const_cast<std::uint64_t *>(words_below(user))[-2] = 0;  // a second free goes to glibc, which aborts
        drop_segment_reference(segment_of(user));
        return;
    }
#if defined(MOLT_ALLOCATE_THROUGH_SANITIZER)
    if (__sanitizer_get_ownership(user))  // (a second free: the sanitizer reports it)
        erase_trailer(user, usable_size(user));
#else
    if (plausible_usable_size(user))  // (glibc aborts on a pointer that is not a block's start)
        erase_trailer(user, usable_size(user));
#endif
    next_free(user);
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
    // Below the block, the arena's word and a size word in the shape of glibc's for a block it
    // mapped (chunk size and flag: the usable bytes are the chunk less 16); the trailer at its end.
    std::size_t usable = (size + 8 + 15) & ~std::size_t{15};
    std::size_t room = 16 + usable;
    if ((!m_segment || m_used + room > segment_bytes) && !next_segment(false))
        return nullptr;
    ++m_uncounted;
    char *user = m_segment + m_used + 16;
    m_used += room;
    auto *below = reinterpret_cast<std::uint64_t *>(user);
    below[-2] = arena_word;
    below[-1] = room | mmapped_flag;
    write_trailer(user, usable, size);
    return user;
}

bool readable(const void *pointer, std::size_t size)
{
    auto start = reinterpret_cast<std::uintptr_t>(pointer);
    for (std::uintptr_t page = start & ~static_cast<std::uintptr_t>(4095); page < start + size; page += 4096)
        if (!page_is_readable(page))
            return false;
    return true;
}

BlockLook look_at_block(const void *pointer, std::uintptr_t first, std::uintptr_t last)
{
    auto usable = pointer ? plausible_usable_size(pointer) : std::nullopt;
    if (!usable || *usable < 8)
        return {};
    std::uintptr_t trailer = reinterpret_cast<std::uintptr_t>(pointer) + *usable - 8;
    if (trailer < first || trailer + 8 > last)
        return {BlockLook::elsewhere, 0, false, trailer};
    auto value = trailer_value(pointer, *usable);
    if (!value)
        return {};
    return {BlockLook::tracked, static_cast<std::size_t>(*value & size_bits), (*value & transformer_mark) != 0, trailer};
}

std::uintptr_t next_chunk_size_word(const void *pointer)
{
#if defined(MOLT_ALLOCATE_THROUGH_SANITIZER)
    (void)pointer;
    return 0;  // no glibc chunks: the sanitizer's allocator lays out its own
#else
    if (!chunk_like(pointer) || (size_word(pointer) & mmapped_flag))
        return 0;
    return reinterpret_cast<std::uintptr_t>(pointer) - 8 + (size_word(pointer) & ~std::uint64_t{7});
#endif
}

std::size_t room_if_next_says_in_use(const void *pointer, std::uintptr_t next_size_word)
{
    std::uint64_t next = *reinterpret_cast<const std::uint64_t *>(next_size_word);
    std::uint64_t next_chunk = next & ~std::uint64_t{7};
    bool in_use = (next & 1) && next_chunk >= 16 && next_chunk % 16 == 0;  // its "previous in use" flag
    return in_use ? usable_from(size_word(pointer)) : 0;
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

bool still_allocated(const void *block)
{
    return !g_transformers_called.load() || probed_block(block).kind == BlockLook::tracked;
}

// Each listed block that is still a marked, live block, once (a block freed meanwhile has lost
// its trailer; its memory, reused, holds an unmarked block or a marked one listed again).
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
        if (BlockLook block = probed_block(user); block.kind == BlockLook::tracked && block.marked) {
            each(user, block.size);
            ++count;
        }
    return count;
}

std::size_t free_transformer_allocations()
{
    return for_each_transformer_allocation([](void *user, std::size_t) { release(user); });
}

void keep_transformer_allocations()
{
    for_each_transformer_allocation([](void *user, std::size_t size) { write_trailer(user, usable_size(user), size); });
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
    void *user = MOLT_NEXT(malloc)(with_trailer(size));
    return user ? stamp(user, size) : nullptr;
}

MOLT_EXPORT void free(void *pointer)
{
    // The common path: a block in one of glibc's arenas, freed outside a transformer. A block glibc
    // mapped, a CopyArena's (whose size word says mapped too), a sanitizer's: release() tells.
    // free(NULL) is common (kvd: one free in three), and costs two instructions.
    if (!pointer)
        return;
#if !defined(MOLT_ALLOCATE_THROUGH_SANITIZER)
    std::uint64_t word = size_word(pointer);
    if (__builtin_expect(!(word & mmapped_flag) && word >= 32 && reinterpret_cast<std::uintptr_t>(pointer) % 16 == 0 &&
                             !recording(),
                         1)) {
        erase_trailer(pointer, usable_from(word));
        MOLT_NEXT(free)(pointer);
        return;
    }
#endif
    release(pointer);
}

MOLT_EXPORT void *calloc(size_t count, size_t size)
{
    size_t total;
    if (__builtin_expect(__builtin_mul_overflow(count, size, &total) || total >= t_short_path_limit, 0))
        return allocate_zeroed(count, size);
    void *user = MOLT_NEXT(calloc)(1, with_trailer(total));
    return user ? stamp(user, total) : nullptr;
}

MOLT_EXPORT void *realloc(void *pointer, size_t size)
{
    if (!pointer)
        return allocate(size);
    if (size == 0) {
        free(pointer);
        return nullptr;
    }
    if (size > largest_size) {
        errno = ENOMEM;
        return nullptr;
    }
    if (in_arena(pointer)) {  // not glibc's to grow: moved into a block of malloc's
        BlockLook old_block = look_at_block(pointer, std::uintptr_t{0}, UINTPTR_MAX);  // (a segment's memory is readable)
        std::size_t old_size = old_block.kind == BlockLook::tracked ? old_block.size : usable_size(pointer) - 8;  // (a trailer overwritten)
        void *fresh = allocate(size);
        if (fresh) {
            memcpy(fresh, pointer, old_size < size ? old_size : size);
            release(pointer);
        }
        return fresh;
    }
    // Any other block, one from before the runtime was loaded too: glibc grows it, in place when
    // it can. Its trailer is erased first (glibc frees the old chunk when it moves the block: its
    // trailer must not outlive it), and put back when glibc fails (the old block stays valid).
    auto usable = plausible_usable_size(pointer);
    auto old_value = usable ? trailer_value(pointer, *usable) : std::nullopt;
    if (old_value)
        store_trailer(pointer, *usable, 0);
    void *moved = next_realloc(pointer, with_trailer(size));
    if (!moved) {
        if (old_value)
            write_trailer(pointer, *usable, *old_value);
        return nullptr;
    }
    return finish(moved, size);
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
    // A live block (no probe: some programs ask for every block they free, as Redis does).
    if (auto value = trailer_value(pointer, usable_size(pointer)))
        return *value & size_bits;  // the bytes the program may use: exactly what it asked for
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
    BlockLook block = pointer ? probed_block(pointer) : BlockLook{};
    return block.kind == BlockLook::tracked ? block.size : 0;
}
