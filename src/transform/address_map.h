// AddressMap: a hash map from addresses to indices, for the heap conversion's hottest lookups
// (is this pointer the start of a block being converted? is this page known to be mapped?).
// std::unordered_map allocates a node per entry and misses the cache on every lookup; an update
// that converts a million objects asks a few million times. Open addressing with linear probing
// keeps each lookup to one or two cache lines. Address 0 marks an empty slot (never a key).
// The slots come from mmap, with huge pages asked for: lookups are random, and over 4 KiB pages
// nearly every one of a big table would also miss the TLB.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <array>
#include <atomic>
#include <mutex>
#include <new>
#include <stdexcept>
#include <utility>
#include <vector>

namespace molt::transform {

class AddressMap {
public:
    static constexpr std::size_t absent = ~std::size_t{0};

    AddressMap() = default;
    AddressMap(const AddressMap &) = delete;
    AddressMap &operator=(const AddressMap &) = delete;
    ~AddressMap() { release(m_slots, m_capacity); }

    // The value stored for `address`, or `absent`.
    std::size_t find(std::uintptr_t address) const
    {
        if (!m_capacity)
            return absent;
        for (std::size_t i = slot_of(address);; i = (i + 1) & m_mask) {
            if (m_slots[i].key == address)
                return m_slots[i].value;
            if (m_slots[i].key == 0)
                return absent;
        }
    }

    bool contains(std::uintptr_t address) const { return find(address) != absent; }

    // Stores `value` for `address` unless it has one already; true when it was stored.
    bool insert(std::uintptr_t address, std::size_t value)
    {
        if ((m_size + 1) * 2 > m_capacity)
            grow();
        for (std::size_t i = slot_of(address);; i = (i + 1) & m_mask) {
            if (m_slots[i].key == address)
                return false;
            if (m_slots[i].key == 0) {
                m_slots[i] = {address, value};
                ++m_size;
                return true;
            }
        }
    }

    // Changes the value stored for `address`, which must be there.
    void replace(std::uintptr_t address, std::size_t value)
    {
        for (std::size_t i = slot_of(address);; i = (i + 1) & m_mask)
            if (m_slots[i].key == address) {
                m_slots[i].value = value;
                return;
            }
    }

    std::size_t size() const { return m_size; }

    void clear()
    {
        release(m_slots, m_capacity);
        m_slots = nullptr;
        m_capacity = m_mask = m_size = 0;
    }

private:
    struct Slot {
        std::uintptr_t key;
        std::size_t value;
    };

    std::size_t slot_of(std::uintptr_t address) const
    {
        // Fibonacci hashing: heap addresses differ mostly in their middle bits.
        return static_cast<std::size_t>((address * 0x9e3779b97f4a7c15u) >> 32) & m_mask;
    }

    // Zeroed slots (mmap gives zeroed pages: empty slots).
    static Slot *allocate(std::size_t capacity)
    {
        std::size_t bytes = capacity * sizeof(Slot);
        void *memory = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (memory == MAP_FAILED)
            throw std::bad_alloc();  // the transaction turns it into a failed update
        madvise(memory, bytes, MADV_HUGEPAGE);  // a hint: the kernel may say no
        return static_cast<Slot *>(memory);
    }

    static void release(Slot *slots, std::size_t capacity)
    {
        if (slots)
            munmap(slots, capacity * sizeof(Slot));
    }

    void grow()
    {
        Slot *old = m_slots;
        std::size_t old_capacity = m_capacity;
        m_capacity = old_capacity ? old_capacity * 2 : 1024;
        m_slots = allocate(m_capacity);
        m_mask = m_capacity - 1;
        m_size = 0;
        for (std::size_t i = 0; i < old_capacity; ++i)
            if (old[i].key)
                insert(old[i].key, old[i].value);
        release(old, old_capacity);
    }

    Slot *m_slots = nullptr;
    std::size_t m_capacity = 0;
    std::size_t m_mask = 0;
    std::size_t m_size = 0;
};

}  // namespace molt::transform

namespace molt::transform {

// BlockStarts: the same map for the starts of converted heap blocks, laid over the address space
// instead of hashed. Each megabyte of addresses gets, on first use, a table of one 32-bit entry
// per 16 bytes (malloc's alignment), so that a lookup is one read with no probing, and blocks
// that lie side by side in the heap lie side by side here: walking a heap allocated in order
// reads this table in order too. In front of each table, a bitmap says which entries are set: a
// thirty-second of the table's size (a megabyte for a heap of 128 MB), it stays in the cache,
// where the table (a quarter of the heap's size) does not. Most lookups find no block (a pointer
// to a string, or discovery meeting a block for the first time) and end in the bitmap, without
// the cache miss on the table. The megabytes' tables are found through a two-level directory
// indexed by the address itself. Addresses that are not 16-byte aligned (objects Molt did not
// allocate), or beyond the 47-bit user address space, go to an AddressMap.
//
// Two discovery threads may insert at once (insert_new): a start is claimed by setting its bit
// atomically, so that exactly one of them gets each block; lookups of a start's bit may run
// meanwhile, lookups of its value once the inserts have ended.
class BlockStarts {
public:
    static constexpr std::size_t absent = AddressMap::absent;

    BlockStarts() = default;
    BlockStarts(const BlockStarts &) = delete;
    BlockStarts &operator=(const BlockStarts &) = delete;
    ~BlockStarts() { clear(); }

    std::size_t find(std::uintptr_t address) const
    {
        if (hashed(address))
            return find_hashed(address);
        const std::uint64_t *chunk = chunk_of(address);
        if (!chunk)
            return absent;
        std::size_t slot = slot_of(address);
        if (!is_set(chunk, slot))
            return absent;
        std::uint32_t value = entries(chunk)[slot];
        return value ? value - 1 : absent;  // 0: claimed, but the update failed before its value
    }

    bool contains(std::uintptr_t address) const
    {
        if (hashed(address))
            return find_hashed(address) != absent;
        const std::uint64_t *chunk = chunk_of(address);
        return chunk && is_set(chunk, slot_of(address));
    }

    // Asks for the table entry find(address) will read, when the bitmap says there is one.
    void prefetch(std::uintptr_t address) const
    {
        if (hashed(address))
            return;
        if (const std::uint64_t *chunk = chunk_of(address); chunk && is_set(chunk, slot_of(address)))
            __builtin_prefetch(&entries(chunk)[slot_of(address)]);
    }

    // Asks for the table entry an insert of `address` would write.
    void prefetch_for_insert(std::uintptr_t address) const
    {
        if (hashed(address))
            return;
        if (const std::uint64_t *chunk = chunk_of(address))
            __builtin_prefetch(&entries(chunk)[slot_of(address)], 1);
    }

    // The last aligned block start at or below `address` and at most `reach` bytes below it:
    // (start, value), or (0, absent) when there is none, or (0, unknown) when the address lies
    // past the 47-bit user address space (the caller then asks another way). Only 16-byte
    // aligned starts are seen. Reads the bitmap downwards a word (a kilobyte of addresses) at a
    // time, into the megabytes below when the reach goes there, and the table only for the start
    // it finds: the work grows with `reach`, which the caller keeps small.
    static constexpr std::size_t unknown = absent - 1;
    std::pair<std::uintptr_t, std::size_t> find_at_or_below(std::uintptr_t address, std::uintptr_t reach) const
    {
        // Inline, the common case: a start in the bitmap's word that holds the address's own
        // slot (a kilobyte of addresses). The conversion asks once per pointer it converts.
        std::uintptr_t aligned = address & ~std::uintptr_t{15};
        if (aligned < address_limit)
            if (const std::uint64_t *chunk = chunk_of(aligned)) {
                std::size_t slot = slot_of(aligned);
                std::uint64_t bits = load(chunk[slot / 64]) & (~std::uint64_t{0} >> (63 - slot % 64));  // slots <= slot
                if (bits) {
                    std::size_t found = (slot & ~std::size_t{63}) + 63 - static_cast<std::size_t>(__builtin_clzll(bits));
                    std::uintptr_t start = (aligned & ~(region_size - 1)) + found * 16;
                    if (aligned - start > reach)
                        return {0, absent};
                    std::uint32_t value = entries(chunk)[found];
                    return value ? std::pair{start, std::size_t{value - 1}} : std::pair{std::uintptr_t{0}, absent};
                }
            }
        return find_below_word(address, reach);
    }

private:
    // find_at_or_below when the address's own word has no start at or below it: the words, and
    // the megabytes, below.
    [[gnu::noinline]] std::pair<std::uintptr_t, std::size_t> find_below_word(std::uintptr_t address, std::uintptr_t reach) const
    {
        std::uintptr_t aligned = address & ~std::uintptr_t{15};
        if (aligned >= address_limit)
            return {0, unknown};
        std::uintptr_t lowest = reach >= aligned ? 0 : aligned - reach;  // no start below this counts
        for (std::uintptr_t at = aligned;;) {
            std::uintptr_t region_start = at & ~(region_size - 1);
            if (const std::uint64_t *chunk = chunk_of(at)) {
                std::size_t slot = slot_of(at), word = slot / 64;
                std::uint64_t bits = load(chunk[word]) & (~std::uint64_t{0} >> (63 - slot % 64));  // slots <= slot
                for (;;) {
                    if (bits) {
                        std::size_t found = word * 64 + 63 - static_cast<std::size_t>(__builtin_clzll(bits));
                        std::uintptr_t start = region_start + found * 16;
                        if (start < lowest)
                            return {0, absent};
                        std::uint32_t value = entries(chunk)[found];
                        return value ? std::pair{start, std::size_t{value - 1}} : std::pair{std::uintptr_t{0}, absent};
                    }
                    if (word == 0 || region_start + word * 64 * 16 <= lowest)
                        break;  // this megabyte's first word done, or the words below are out of reach
                    bits = load(chunk[--word]);
                }
            }
            if (region_start <= lowest || region_start == 0)
                return {0, absent};
            at = region_start - 16;  // the last slot of the megabyte below
        }
    }

public:

    // Whether any start went to the hash: one not 16-byte aligned, or past the user address space.
    bool has_unaligned() const { return m_has_hashed.load(std::memory_order_relaxed); }

    // Stores `value` for `address` unless it has one already; true when it was stored.
    bool insert(std::uintptr_t address, std::size_t value)
    {
        return insert_new(address, [value] { return value; });
    }

    // Claims `address` and stores the value `reserve()` then gives, unless the address has one
    // already (another thread may have claimed it a moment before): true when this call stored.
    // `reserve` is called only by the one that claims. May run on several threads at once.
    template <typename Reserve>
    bool insert_new(std::uintptr_t address, Reserve &&reserve)
    {
        if (hashed(address)) {
            std::lock_guard lock(m_hashed_mutex);
            if (m_hashed.contains(address))
                return false;
            std::size_t value = reserve();
            m_hashed.insert(address, value);
            m_has_hashed.store(true, std::memory_order_relaxed);
            return true;
        }
        std::uint64_t *chunk = chunk_for_insert(address);
        std::size_t slot = slot_of(address);
        std::uint64_t bit = std::uint64_t{1} << (slot % 64);
        if (std::atomic_ref<std::uint64_t>(chunk[slot / 64]).fetch_or(bit, std::memory_order_relaxed) & bit)
            return false;
        std::size_t value = reserve();
        if (value >= UINT32_MAX - 1)
            throw std::length_error("more than four billion heap blocks");  // a failed update
        entries(chunk)[slot] = static_cast<std::uint32_t>(value + 1);
        return true;
    }

    // Changes the value of a start stored before (the block moved in its list). One thread.
    void replace(std::uintptr_t address, std::size_t value)
    {
        if (hashed(address)) {
            std::lock_guard lock(m_hashed_mutex);
            m_hashed.replace(address, value);
            return;
        }
        entries(chunk_for_insert(address))[slot_of(address)] = static_cast<std::uint32_t>(value + 1);
    }

    void clear()
    {
        for (auto &directory : m_top) {
            std::atomic<std::uint64_t *> *second = directory.load(std::memory_order_relaxed);
            if (!second)
                continue;
            for (std::size_t i = 0; i < second_entries; ++i)
                if (std::uint64_t *chunk = second[i].load(std::memory_order_relaxed); chunk && !pooled(chunk))
                    munmap(chunk, chunk_bytes);
            munmap(second, second_bytes);
            directory.store(nullptr, std::memory_order_relaxed);
        }
        if (m_pool)
            munmap(m_pool, m_pool_chunks * chunk_bytes);
        m_pool = nullptr;
        m_pool_chunks = 0;
        m_pool_used.store(0, std::memory_order_relaxed);
        m_hashed.clear();
        m_has_hashed.store(false, std::memory_order_relaxed);
    }

    // Before the pause: maps the tables of the first `chunks` megabytes that inserts will use
    // (whichever they are) and touches their pages. A table is 66 pages, each a page fault when
    // first written (a microsecond or two on a virtual machine): a hundred of them were a tenth
    // of the pause of an update that converts 10,000 objects. Nothing is reserved when the
    // memory cannot be had (the tables are then mapped as they are needed).
    static constexpr std::size_t table_bytes = (std::size_t{1} << 20) / 16 / 8 + (std::size_t{1} << 20) / 16 * sizeof(std::uint32_t);
    void reserve(std::size_t chunks)
    {
        if (m_pool || chunks == 0)
            return;
        void *memory = mmap(nullptr, chunks * chunk_bytes, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (memory == MAP_FAILED)
            return;
        m_pool = static_cast<std::uint64_t *>(memory);
        m_pool_chunks = chunks;
    }

private:
    static constexpr unsigned region_bits = 20;
    static constexpr std::uintptr_t region_size = std::uintptr_t{1} << region_bits;
    static constexpr std::size_t slots = region_size / 16;
    static constexpr std::size_t bitmap_bytes = slots / 8;  // 8 KiB
    static constexpr std::size_t chunk_bytes = bitmap_bytes + slots * sizeof(std::uint32_t);  // + 256 KiB
    static_assert(chunk_bytes == table_bytes);
    // The directory: 2^13 entries at the top, each leading to 2^14 megabytes (16 GiB).
    static constexpr std::uintptr_t address_limit = std::uintptr_t{1} << 47;
    static constexpr unsigned second_bits = 14;
    static constexpr std::size_t second_entries = std::size_t{1} << second_bits;
    static constexpr std::size_t second_bytes = second_entries * sizeof(std::atomic<std::uint64_t *>);
    static constexpr std::size_t top_entries = (address_limit >> region_bits) >> second_bits;

    static bool hashed(std::uintptr_t address) { return address % 16 || address >= address_limit; }
    static std::size_t slot_of(std::uintptr_t address) { return (address % region_size) / 16; }

    // A chunk: the bitmap, then the table (entries hold value + 1).
    // Atomic: the other walker may set a bit of the same word meanwhile.
    static std::uint64_t load(const std::uint64_t &word)
    {
        return std::atomic_ref<std::uint64_t>(const_cast<std::uint64_t &>(word)).load(std::memory_order_relaxed);
    }
    static bool is_set(const std::uint64_t *chunk, std::size_t slot) { return load(chunk[slot / 64]) >> (slot % 64) & 1; }
    static std::uint32_t *entries(std::uint64_t *chunk) { return reinterpret_cast<std::uint32_t *>(chunk + bitmap_bytes / 8); }
    static const std::uint32_t *entries(const std::uint64_t *chunk)
    {
        return reinterpret_cast<const std::uint32_t *>(chunk + bitmap_bytes / 8);
    }

    const std::uint64_t *chunk_of(std::uintptr_t address) const
    {
        std::uintptr_t region = address >> region_bits;
        const std::atomic<std::uint64_t *> *second = m_top[region >> second_bits].load(std::memory_order_acquire);
        return second ? second[region % second_entries].load(std::memory_order_acquire) : nullptr;
    }

    // Made on first use; two threads making the same one at once: one wins, the other's goes.
    template <typename T>
    static T *publish(std::atomic<T *> &slot, std::size_t bytes)
    {
        if (T *present = slot.load(std::memory_order_acquire))
            return present;
        void *memory = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (memory == MAP_FAILED)
            throw std::bad_alloc();  // the transaction turns it into a failed update
        T *expected = nullptr;
        if (slot.compare_exchange_strong(expected, static_cast<T *>(memory), std::memory_order_acq_rel))
            return static_cast<T *>(memory);
        munmap(memory, bytes);
        return expected;
    }

    std::uint64_t *chunk_for_insert(std::uintptr_t address)
    {
        std::uintptr_t region = address >> region_bits;
        std::atomic<std::uint64_t *> *second = publish(m_top[region >> second_bits], second_bytes);
        std::atomic<std::uint64_t *> &slot = second[region % second_entries];
        if (std::uint64_t *present = slot.load(std::memory_order_acquire))
            return present;
        if (std::uint64_t *fresh = from_pool()) {  // two threads at once: each takes its own
            std::uint64_t *expected = nullptr;
            if (slot.compare_exchange_strong(expected, fresh, std::memory_order_acq_rel))
                return fresh;
            return expected;  // the other's won; this one stays unused in the pool
        }
        return publish(slot, chunk_bytes);
    }

    // A table from the reserve, or null when it is used up.
    std::uint64_t *from_pool()
    {
        if (!m_pool)
            return nullptr;
        std::size_t taken = m_pool_used.fetch_add(1, std::memory_order_relaxed);
        return taken < m_pool_chunks ? m_pool + taken * (chunk_bytes / sizeof(std::uint64_t)) : nullptr;
    }
    bool pooled(const std::uint64_t *chunk) const
    {
        return m_pool && chunk >= m_pool && chunk < m_pool + m_pool_chunks * (chunk_bytes / sizeof(std::uint64_t));
    }

    std::size_t find_hashed(std::uintptr_t address) const
    {
        if (!m_has_hashed.load(std::memory_order_relaxed))
            return absent;
        std::lock_guard lock(m_hashed_mutex);
        return m_hashed.find(address);
    }

    std::array<std::atomic<std::atomic<std::uint64_t *> *>, top_entries> m_top{};  // null: no megabyte of it used
    std::uint64_t *m_pool = nullptr;  // tables mapped and touched before the pause (reserve)
    std::size_t m_pool_chunks = 0;
    std::atomic<std::size_t> m_pool_used{0};
    AddressMap m_hashed;
    mutable std::mutex m_hashed_mutex;
    std::atomic<bool> m_has_hashed{false};
};

}  // namespace molt::transform
