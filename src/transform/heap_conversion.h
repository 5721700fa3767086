// Heap conversion: the objects that the old version's state reaches through typed pointers, and
// whose types changed, are converted into new allocations, and every pointer to them that the
// conversion writes is redirected. The old objects are not touched: a failure at any point frees
// the new allocations and leaves the old version's state exactly as it was.
#pragma once

#include <cstddef>
#include <cstdint>
#include <atomic>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <stdexcept>
#include <unordered_map>
#include <set>
#include <unordered_set>
#include <memory>
#include <string>
#include <vector>

#include <sys/mman.h>

#include "result.h"
#include "schema.h"
#include "address_map.h"
#include "heap_tracking.h"
#include "memory_map.h"
#include "value_conversion.h"

namespace molt::transform {

// The face a standard container wants, over one kind of memory: `Memory::take(bytes)` and
// `Memory::give_back(memory, bytes)`.
template <typename T, typename Memory>
struct AllocatorOver {
    using value_type = T;
    AllocatorOver() = default;
    template <typename U>
    AllocatorOver(const AllocatorOver<U, Memory> &) {}
    T *allocate(std::size_t count) { return static_cast<T *>(Memory::take(count * sizeof(T))); }
    void deallocate(T *memory, std::size_t count) { Memory::give_back(memory, count * sizeof(T)); }
    template <typename U>
    bool operator==(const AllocatorOver<U, Memory> &) const { return true; }
};

// For the converter's own containers of old addresses: memory they get is zeroed (it may hold
// what the program left in it), and memory they give back is zeroed first, so that when malloc
// hands it out again no old address lingers in it for --verify to take for a pointer the
// program still holds.
struct ScrubbedHeap {
    static void *take(std::size_t bytes) { return std::memset(::operator new(bytes), 0, bytes); }
    static void give_back(void *memory, std::size_t bytes)
    {
        std::memset(memory, 0, bytes);
        ::operator delete(memory, bytes);
    }
};
template <typename T>
using ScrubbingAllocator = AllocatorOver<T, ScrubbedHeap>;

// For a container of old addresses that --verify's scan may meet while another thread fills it
// (the sorted list of blocks): memory of its own mapping, outside every heap block, so that the
// scan never reads it, and gone with its old addresses when given back.
struct OwnMapping {
    static void *take(std::size_t bytes)
    {
        void *memory = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (memory == MAP_FAILED)
            throw std::bad_alloc();
        return memory;
    }
    static void give_back(void *memory, std::size_t bytes) { munmap(memory, bytes); }
};
template <typename T>
using MappedAllocator = AllocatorOver<T, OwnMapping>;

// Memory for discovery's queues, mapped and its pages touched before the pause: the roots of a
// hash table queue tens of thousands of pointers at once, and each fresh page of a queue's nodes
// was a page fault in the pause (a microsecond or two each on a virtual machine). The queues'
// first nodes are cut from it, one after the other (a node let go is not cut again); when it is
// used up, they come from malloc. Unmapped when discovery ends (the old addresses go with it).
class QueueMemory {
public:
    QueueMemory() = default;
    QueueMemory(const QueueMemory &) = delete;
    QueueMemory &operator=(const QueueMemory &) = delete;
    ~QueueMemory() { release(); }
    void reserve(std::size_t bytes)
    {
        release();
        void *memory = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (memory == MAP_FAILED)
            return;  // the queues take their nodes from malloc
        m_start = static_cast<char *>(memory);
        m_bytes = bytes;
        m_used.store(0, std::memory_order_relaxed);
    }
    // `bytes` of it (two walkers may ask at once), or null when it is used up.
    void *take(std::size_t bytes)
    {
        std::size_t at = m_used.fetch_add(bytes, std::memory_order_relaxed);
        return at + bytes <= m_bytes ? m_start + at : nullptr;
    }
    bool holds(const void *pointer) const
    {
        auto *byte = static_cast<const char *>(pointer);
        return byte >= m_start && byte < m_start + m_bytes;
    }
    void release()
    {
        if (m_start)
            munmap(m_start, m_bytes);
        m_start = nullptr;
        m_bytes = 0;
    }

private:
    char *m_start = nullptr;
    std::size_t m_bytes = 0;
    std::atomic<std::size_t> m_used{0};
};

// A queue's nodes: from its QueueMemory while that lasts, else scrubbed malloc'd ones.
template <typename T>
struct QueueAllocator {
    using value_type = T;
    // A queue swapped with one that has no QueueMemory gets that one's allocator (and malloc'd
    // nodes): the memory can then go while the queue lives on.
    using propagate_on_container_swap = std::true_type;
    using propagate_on_container_move_assignment = std::true_type;
    QueueMemory *memory = nullptr;
    QueueAllocator() = default;
    explicit QueueAllocator(QueueMemory *to) : memory(to) {}
    template <typename U>
    QueueAllocator(const QueueAllocator<U> &other) : memory(other.memory) {}
    T *allocate(std::size_t count)
    {
        if (memory)
            if (void *taken = memory->take(count * sizeof(T)))
                return static_cast<T *>(taken);
        return ScrubbingAllocator<T>().allocate(count);
    }
    void deallocate(T *pointer, std::size_t count)
    {
        if (!memory || !memory->holds(pointer))
            ScrubbingAllocator<T>().deallocate(pointer, count);
    }
    template <typename U>
    bool operator==(const QueueAllocator<U> &other) const { return memory == other.memory; }
};

// Where a version's writable data lies at run time, to redirect pointers into old globals.
struct Image {
    const schema::Schema *schema = nullptr;
    std::uintptr_t bias = 0;
};

class HeapConverter final : public PointerTranslator {
public:
    HeapConverter(Image old_image, Image new_image, ValueConverter &converter);
    ~HeapConverter();

    // A root of the discovery: a value of `old_type` at `old_address` (a variable, a local),
    // whose pointers whose pointee type changed lead to heap blocks to convert. Call for each root.
    void discover(schema::TypeId old_type, schema::TypeId new_type, const void *old_address, const std::string &where);
    // The same for a value whose program is given (a void * variable that an annotation types).
    void discover(const ConversionProgram &program, const void *old_address, const std::string &where);
    // What discovery checks pointers against, readable memory: questions to the kernel about the
    // mappings met when it answers them (set up before the pause, by prefault), else a snapshot of
    // every mapping, taken now (in the pause, the program's threads parked) if it was not yet: on
    // the second core while the first queues the roots' pointers. Discovery takes it at its
    // first question otherwise.
    void take_readable_memory();
    // Whether that is done (the snapshot taken, or questions ready): nothing left to overlap.
    bool readable_memory_ready() const { return m_readable.taken(); }
    // How many pointers a value of this program may queue at most, each slot of its arrays of
    // pointers counted (summed over the roots: whether discovery will have much to do).
    static std::size_t pointer_slots(const ConversionProgram &program);
    // Then, once for all roots: finds every heap block they reach (on two threads when there are
    // many). Fails on a pointer that cannot be followed (a dangling one, a block too small).
    Result<bool> find_blocks();

    // Allocates the new copies and converts every discovered block into its copy (pointers
    // redirected). Call after find_blocks and before the roots themselves are converted.
    Result<bool> convert_blocks();

    // Runs two pieces of work at once and returns when both have ended (the runtime makes the
    // thread, one the program does not see). Without it, discovery, allocation and conversion run
    // on one thread.
    using Parallel = ValueConverter::Parallel;
    void set_parallel(Parallel parallel) { m_parallel = std::move(parallel); }

    // Fault injection (MOLT_FAULT=transform.allocation:N): the `nth` new object cannot be
    // allocated, as if memory had run out. 0: none.
    void fail_allocation(std::size_t nth) { m_failing_allocation = nth; }
    // MOLT_FAULT=transform.discovery_out_of_memory: discovery throws std::bad_alloc once it has
    // followed its first pointers, as its own bookkeeping would when memory runs out.
    void fail_discovery(bool fail) { m_failing_discovery = fail; }

    // The ValueConverter's translator while this exists (set by the constructor).
    Result<std::uintptr_t> translate(std::uintptr_t address, schema::TypeId old_pointee, const Place &where) override;
    Result<std::uintptr_t> translate_next(std::uintptr_t address, schema::TypeId old_pointee, const Place &where,
                                          std::size_t &hint) override;
    void prefetch(std::uintptr_t address) const override { m_block_starts.prefetch(address); }

    // Where an untyped pointer (a thread's argument) goes: into the new version's global of the
    // same name, or to the new copy of a converted block it points at; nullopt: unchanged.
    std::optional<std::uintptr_t> redirect_untyped(std::uintptr_t address);

    // Whether a pointer still leads into this old variable (one the new version drops): its
    // memory must not be released after the commit.
    bool keeps(const schema::Variable *variable) const;

    // After a failure: frees the new copies, and what transformers allocated and kept. After
    // the commit: keeps them (they are the state). Nothing is freed when a transformer crashed
    // inside the allocator: its lock may be held, and freeing would wait for ever.
    void release_new_blocks();
    void keep_new_blocks();

    // Before the pause: touches the memory the conversion needs, as much as the heap's size
    // suggests (its list of blocks, the tables of block starts, the arenas' segments for the new
    // copies), and readies the questions about readable memory.
    // Returns the bytes it made ready for the new copies.
    std::size_t prefault(std::size_t root_pointers);

    // After the commit: the old blocks that were converted are garbage (every pointer the
    // conversion knew of now leads to their copies), and are freed, those Molt allocated (a block
    // of unknown origin is left alone). Not before: until the commit they are the old state.
    struct Reclaimed {
        std::size_t blocks = 0, bytes = 0;  // freed
        std::size_t kept = 0;               // not allocated through Molt: left alone
    };
    Reclaimed free_old_blocks();

    // For --verify (stale_pointers.h), once the blocks are converted: the old object `word`
    // points into ("a heap struct node at 0x..."), or an empty string; whether `block` is the old
    // copy of a converted object (not scanned; the converter's own bookkeeping that holds old
    // addresses is mapped memory, in no heap block).
    std::string replaced_object_at(std::uintptr_t word) const;
    bool not_to_scan(std::uintptr_t block) const;
    // Every old object lies in [first, second): most words are told apart by two comparisons.
    std::pair<std::uintptr_t, std::uintptr_t> replaced_span() const;

    std::size_t objects_converted() const { return m_objects; }
    // What the report says of the blocks in glibc's heap with room for more objects than one but
    // no trailer, converted as one object each; empty when there were none.
    std::string untracked_blocks_warning() const;
    std::size_t bytes_converted() const { return m_bytes; }

private:
    // Kept small: a million of them are made and looked up in an update.
    struct Block {
        std::uintptr_t old_start = 0;
        std::uintptr_t new_start = 0;
        const ConversionProgram *program = nullptr;  // of one element: its types and sizes
        std::uint32_t count = 0;         // elements converted
        std::uint32_t capacity : 30 = 0;  // elements the block holds (more than count: MOLT_LENGTH_IN)
        std::uint32_t view : 1 = 0;       // lies inside another block: new_start is inside that one's copy
        std::uint32_t tracked : 1 = 0;    // allocated through Molt (its trailer read): freed after the commit
        std::uint64_t old_size() const { return program->old_size; }
        std::uint64_t new_size() const { return program->new_size; }
        schema::TypeId old_type() const { return program->old_type; }  // behind typedefs and qualifiers
    };
    static_assert(sizeof(Block) == 32, "a million blocks: keep them small");

    // A pointer to follow. Where is only spelled out when something fails: a path string per
    // object would cost more than converting it. `root` names the variable or local the object
    // was reached from.
    struct Candidate {
        std::uintptr_t address;
        const ReachStep *reach;
        const std::string *root;
        std::uint64_t length;  // elements, from a MOLT_LENGTH_IN member; no_length: as many as the block holds
    };
    static constexpr std::uint64_t no_length = ~std::uint64_t{0};

    // One thread's share of the discovery: the pointers it has yet to follow, and what it found.
    struct Walker {
        explicit Walker(QueueMemory *memory) : candidates(QueueAllocator<Candidate>(memory)) {}
        std::deque<Candidate, QueueAllocator<Candidate>> candidates;
        std::size_t objects = 0, bytes = 0, untracked = 0;
        std::size_t roomy_untracked = 0;  // untracked blocks with room for more objects than one
        std::uintptr_t first_roomy = 0;
        const std::string *first_roomy_root = nullptr;
        std::size_t serial = 0;  // blocks whose conversion must run on one thread (a transformer's rule)
        std::uint64_t largest_block = 0;
        std::size_t next_index = 0, end_index = 0;  // its batch of block indices, [next, end) unused
        std::size_t readable_hint = ~std::size_t{0};  // ReadableMemory::holds's, for this walker
        ReadableMemory::Range readable{};  // the readable range its last question found: tried first
        // On two threads: not started yet, running, waiting for work (its queue ran out), given
        // work by the other walker, or done (final: both ran out, or one failed). A line of its
        // own: the other walker reads it at each step, and this one's queue is written at each.
        enum State : int { idle, running, hungry, fed, done };
        alignas(64) std::atomic<int> state{idle};
    };
    static constexpr std::size_t index_batch = 64;
    std::size_t take_index(Walker &walker);
    void fill_unused_indices(const std::vector<std::pair<std::size_t, std::size_t>> &unused);
    static constexpr std::size_t no_block = ~std::size_t{0};
    void walk(const ConversionProgram &program, const unsigned char *bytes, const std::string *root, Walker &walker);
    Result<bool> follow(Walker &walker, std::size_t limit, Walker *sharing = nullptr);
    Result<bool> follow_sharing(Walker &mine, Walker &theirs);
    static void move_newer_half(Walker &from, Walker &to);
    void give_half(Walker &giver, Walker &taker);
    bool wait_for_work(Walker &mine, Walker &theirs);
    static void end_walker(Walker &walker);
    Result<bool> walk_pointer(const Candidate &candidate, Walker &walker, std::size_t &added);
    void let_go_of_queues();
    bool link_pointees(const Walker &walker);
    void count(const Walker &walker);
    [[gnu::always_inline]] inline const Block *block_holding(std::uintptr_t address) const;
    const Block *block_holding_inside(std::uintptr_t address) const;  // the same, when no block starts at `address`
    const Block *sorted_block_holding(std::uintptr_t address) const;
    // Whether `address` lies in a converted block, from the bitmap of block starts alone: the
    // nearest start at or below it, if any lies within the biggest block's size, is the only
    // block that can hold it (malloc's blocks never overlap). A string beside the entry that
    // points to it is told apart without reading the string's header (a cache miss per pointer).
    // nullopt: this cannot tell (blocks so big that the bitmap below would be long to read,
    // blocks at odd addresses, blocks Molt did not allocate). Inline: once per pointer converted.
    [[gnu::always_inline]] std::optional<const Block *> nearby_block(std::uintptr_t address) const
    {
        if (!m_bitmap_tells)
            return std::nullopt;
        if (m_largest_block == 0)
            return nullptr;  // no block at all
        auto [start, index] = m_block_starts.find_at_or_below(address, m_largest_block - 1);
        if (index == BlockStarts::unknown)
            return std::nullopt;
        if (index == BlockStarts::absent)
            return nullptr;
        const Block &block = m_blocks[index];
        return address < start + block.capacity * block.old_size() ? &block : nullptr;
    }
    void set_discovered(bool discovered);
    [[gnu::noinline]] Result<std::uintptr_t> translate_into_block(const Block &block, std::uintptr_t address, schema::TypeId old_pointee,
                                                                  const Place &where) const;
    bool mapped(std::uintptr_t address, std::uint64_t size, Walker &walker);
    struct GlobalRange;
    const GlobalRange *global_holding(std::uintptr_t address) const;
    std::optional<std::uintptr_t> redirect_into_new_global(std::uintptr_t address,
                                                           std::optional<schema::TypeId> old_pointee = {}) const;
    Result<std::uintptr_t> translate_into_global(const GlobalRange &global, std::uintptr_t address,
                                                 schema::TypeId old_pointee, const Place &where);

    struct GlobalRange {
        std::uintptr_t start, end;
        const schema::Variable *variable;
        const schema::Variable *counterpart;  // in the new version; null when it has none
    };

    Image m_old, m_new;
    std::vector<std::unique_ptr<std::string>> m_roots;  // the names Candidate::root points to
    ValueConverter &m_converter;
    // The blocks, in chunks of a fixed size: growing never copies them (nor doubles the memory
    // for a moment), and they are mapped memory, not heap blocks that --verify would scan. Two
    // discovery threads may add blocks at once: each reserves its index, and a chunk is made by
    // whichever needs it first.
    class BlockList {
    public:
        static constexpr std::size_t chunk = 1 << 15;  // blocks: 1 MiB
        static constexpr std::size_t max_chunks = (std::size_t{1} << 32) / chunk;  // BlockStarts holds 32-bit indices
        BlockList()
        {
            // 1 MiB of address space for the chunks' pointers, pages given when touched; null
            // pointers in zeroed memory, as atomics are on this ABI.
            void *memory = mmap(nullptr, max_chunks * sizeof *m_chunks, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (memory == MAP_FAILED)
                throw std::bad_alloc();
            m_chunks = static_cast<std::atomic<Block *> *>(memory);
        }
        BlockList(const BlockList &) = delete;
        BlockList &operator=(const BlockList &) = delete;
        ~BlockList()
        {
            clear();
            munmap(m_chunks, max_chunks * sizeof *m_chunks);
        }
        std::size_t size() const { return m_size.load(std::memory_order_relaxed); }
        Block &operator[](std::size_t index) { return m_chunks[index / chunk].load(std::memory_order_acquire)[index % chunk]; }
        const Block &operator[](std::size_t index) const { return m_chunks[index / chunk].load(std::memory_order_acquire)[index % chunk]; }
        // The first index of `count` new blocks, whose slots the caller then fills (several
        // threads at once: each takes a batch, so that they do not share a counter per block).
        std::size_t reserve(std::size_t count)
        {
            std::size_t first = m_size.fetch_add(count, std::memory_order_relaxed);
            if ((first + count - 1) / chunk >= max_chunks)
                throw std::length_error("more than four billion heap blocks");  // a failed update
            for (std::size_t c = first / chunk; c <= (first + count - 1) / chunk; ++c)
                make_chunk(c);
            return first;
        }
        // After the batches: the blocks at indices `size` and above are gone (moved or unused).
        void shrink(std::size_t size) { m_size.store(size, std::memory_order_relaxed); }
        void clear()
        {
            for (std::size_t i = 0; i < max_chunks; ++i) {
                Block *blocks = m_chunks[i].load(std::memory_order_relaxed);
                if (!blocks)
                    break;  // made in order (a reservation whose chunk could not be made is the last)
                munmap(blocks, chunk_bytes);  // (its old addresses go with it: nothing to scrub)
                m_chunks[i].store(nullptr, std::memory_order_relaxed);
            }
            m_size.store(0, std::memory_order_relaxed);
        }
        // Makes the chunks for `blocks` blocks (the first one at least) now, before the pause,
        // their pages touched; as many as it can (the rest are made in the pause, as needed).
        void prefault(std::size_t blocks) noexcept
        {
            try {
                for (std::size_t i = 0; i == 0 || i * chunk < std::min(blocks, max_chunks * chunk); ++i)
                    make_chunk(i, true);
            } catch (const std::bad_alloc &) {
            }
        }
        // Every block whose chunk exists (after a failure to make one, the blocks counted in it
        // are not there); never allocates, so that a release after running out of memory cannot
        // run out again.
        template <typename Each>
        void for_each(Each &&each)
        {
            for (std::size_t i = 0; i < size(); ++i) {
                Block *blocks = m_chunks[i / chunk].load(std::memory_order_acquire);
                if (!blocks)
                    return;
                each(blocks[i % chunk]);
            }
        }

    private:
        // The chunk, made by whichever thread needs it first (chunks are made in order, so only
        // the last may be missing). Mapped, not allocated: scratch memory that goes back to the
        // system when the update ends (malloc kept a megabyte of it, once the blocks outnumbered
        // prepare's guess). Its zeroed pages are empty blocks (Block{} is all zeros), touched
        // now when `touch`, else as the blocks are claimed.
        static constexpr std::size_t chunk_bytes = chunk * sizeof(Block);
        Block *make_chunk(std::size_t index, bool touch = false)
        {
            if (Block *present = m_chunks[index].load(std::memory_order_acquire))
                return present;
            void *memory = mmap(nullptr, chunk_bytes, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS | (touch ? MAP_POPULATE : 0), -1, 0);
            if (memory == MAP_FAILED)
                throw std::bad_alloc();  // the transaction turns it into a failed update
            auto *fresh = static_cast<Block *>(memory);
            Block *expected = nullptr;
            if (m_chunks[index].compare_exchange_strong(expected, fresh, std::memory_order_acq_rel))
                return fresh;
            munmap(memory, chunk_bytes);  // another thread made it first
            return expected;
        }

        std::atomic<Block *> *m_chunks = nullptr;  // max_chunks of them; the first made before the pause
        std::atomic<std::size_t> m_size{0};
    };
    BlockList m_blocks;
    SegmentReserve m_copy_reserve;  // touched before the pause, drawn by both arenas
    CopyArena m_arenas[2];  // where the new copies are cut from, one per allocating thread
    BlockStarts m_block_starts;  // old start -> index in m_blocks
    // The memory prefault mapped for the pause and the pause no longer needs: the one discovery's
    // queues took their first nodes from, and the segments for copies the conversion did not
    // take. Unmapped by free_old_blocks and release_new_blocks, outside the pause.
    void release_scratch_memory();
    std::size_t prepare_copy_segments(std::size_t heap_bytes, std::size_t headroom);
    void prepare_lookup_tables(std::size_t heap_bytes, std::size_t headroom, bool roots_reach_heap);
    Result<bool> allocate_new_blocks();
    Result<bool> merge_inner_blocks();
    // "a heap struct node": how a conversion's failure names a block's type, spelled when
    // conversion first meets a run of blocks of the type (not in a pass over every block first:
    // a millisecond at a million blocks); the two conversion threads may ask at once.
    class WhereNames {
    public:
        explicit WhereNames(const schema::Schema &schema) : m_schema(schema) {}
        const std::string &of(schema::TypeId type);

    private:
        const schema::Schema &m_schema;
        std::mutex m_mutex;
        std::unordered_map<schema::TypeId, std::string> m_names;  // nodes: references stay valid
    };
    Result<bool> convert_shared(WhereNames &wheres) const;
    enum class Share { all, parallel_only, serial_only };  // which blocks of a range (their program's parallel_safe)
    Result<bool> convert_range(std::size_t first, std::size_t end, Share share,
                               WhereNames &wheres) const;
    // (old start, index) of every block, sorted when first needed (pointers into a block's middle
    // are rare): after discovery, from any thread. In mapped memory: --verify's two scanners may
    // build it while the other reads the heap, which must not find it there.
    using Sorted = std::vector<std::pair<std::uintptr_t, std::size_t>, MappedAllocator<std::pair<std::uintptr_t, std::size_t>>>;
    const Sorted &sorted_blocks() const;
    mutable Sorted m_sorted;
    mutable std::once_flag m_sorted_once;
    bool m_discovered = false;  // every block is known: lookups may go past exact starts
    bool m_bitmap_tells = false;  // ...and the bitmap of block starts alone tells which holds an address (nearby_block)
    // Blocks Molt did not allocate (only they can lie inside others): only whether there are any
    // matters (one claimed by both walkers may be counted twice).
    std::size_t m_untracked = 0;
    std::size_t m_roomy_untracked = 0;
    std::uintptr_t m_first_roomy = 0;
    const std::string *m_first_roomy_root = nullptr;
    std::size_t m_serial_blocks = 0;  // blocks whose program is not parallel_safe (counted as they are claimed)
    std::uint64_t m_largest_block = 0;  // bytes of the old version's biggest converted block
    Parallel m_parallel;
    std::size_t m_failing_allocation = 0;
    bool m_failing_discovery = false;
    std::vector<GlobalRange> m_globals;  // the old version's writable variables, by address
    std::uintptr_t m_globals_start = 0, m_globals_end = 0;  // all of them lie in between
    mutable std::mutex m_kept_mutex;  // conversion runs on two threads
    std::set<const schema::Variable *> m_kept_globals;
    QueueMemory m_queue_memory;        // before m_first: its queue's first nodes
    Walker m_first{&m_queue_memory};   // the walker of the roots, and the only one for a small heap
    Walker m_second_walker{&m_queue_memory};  // the second, when there are many pointers to follow
    bool m_seeding_halves = false;     // a big root's array is being queued in two halves
    std::atomic<bool> m_stop{false};   // a walker failed: the other stops too
    ReadableMemory m_readable;     // the readable mappings, asked about or read when discovery first asks
    bool m_readable_unknown = false;  // /proc/self/maps could not be read: then...
    AddressMap m_mapped_pages;     // ...page numbers known to be mapped (mincore)
    std::uintptr_t m_last_mapped_page = ~std::uintptr_t{0};  // the last one found mapped (discovery only)
    std::size_t m_objects = 0, m_bytes = 0;
    bool m_keep = false;
};

}  // namespace molt::transform
