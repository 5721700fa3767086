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
#include <new>
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
// the cache miss on the table. Addresses that are not 16-byte aligned (objects Molt did not
// allocate) go to an AddressMap. Lookups may run on several threads once inserts have ended.
class BlockStarts {
public:
    static constexpr std::size_t absent = AddressMap::absent;

    BlockStarts() = default;
    BlockStarts(const BlockStarts &) = delete;
    BlockStarts &operator=(const BlockStarts &) = delete;
    ~BlockStarts() { clear(); }

    std::size_t find(std::uintptr_t address) const
    {
        if (address % 16)
            return m_unaligned.find(address);
        std::size_t chunk = m_chunks_by_region.find((address >> region_bits) + 1);
        if (chunk == absent)
            return absent;
        std::size_t slot = (address % region_size) / 16;
        if (!is_set(m_chunks[chunk], slot))
            return absent;
        return entries(m_chunks[chunk])[slot] - 1;
    }

    bool contains(std::uintptr_t address) const { return find(address) != absent; }

    // The last aligned block start at or below `address` and at most `reach` bytes below it:
    // (start, value), or (0, absent) when there is none, or (0, unknown) when the search would
    // leave the megabyte of `address` (the caller then asks another way). Only 16-byte aligned
    // starts are seen. Reads the bitmap next to the bit of `address`, and the table only for a
    // start it finds.
    static constexpr std::size_t unknown = absent - 1;
    std::pair<std::uintptr_t, std::size_t> find_at_or_below(std::uintptr_t address, std::uintptr_t reach) const
    {
        std::uintptr_t aligned = address & ~std::uintptr_t{15};
        std::size_t chunk = m_chunks_by_region.find((aligned >> region_bits) + 1);
        if (chunk == absent)
            return {0, aligned % region_size < reach ? unknown : absent};
        const std::uint64_t *memory = m_chunks[chunk];
        std::size_t at = (aligned % region_size) / 16;
        for (std::uintptr_t back = 0; back <= reach; back += 16, --at) {
            if (is_set(memory, at))
                return {aligned - back, entries(memory)[at] - 1};
            if (at == 0)
                return {0, back + 16 <= reach ? unknown : absent};
        }
        return {0, absent};
    }

    bool has_unaligned() const { return m_unaligned.size() != 0; }

    // Stores `value` for `address` unless it has one already; true when it was stored.
    bool insert(std::uintptr_t address, std::size_t value)
    {
        if (address % 16 || value >= UINT32_MAX - 1)
            return m_unaligned.insert(address, value);
        std::uintptr_t key = (address >> region_bits) + 1;
        std::size_t chunk = m_chunks_by_region.find(key);
        if (chunk == absent) {
            void *memory = mmap(nullptr, chunk_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (memory == MAP_FAILED)
                throw std::bad_alloc();  // the transaction turns it into a failed update
            chunk = m_chunks.size();
            m_chunks.push_back(static_cast<std::uint64_t *>(memory));
            m_chunks_by_region.insert(key, chunk);
        }
        std::uint64_t *memory = m_chunks[chunk];
        std::size_t slot = (address % region_size) / 16;
        if (is_set(memory, slot))
            return false;
        memory[slot / 64] |= std::uint64_t{1} << (slot % 64);
        entries(memory)[slot] = static_cast<std::uint32_t>(value + 1);
        return true;
    }

    void clear()
    {
        for (std::uint64_t *chunk : m_chunks)
            munmap(chunk, chunk_bytes);
        m_chunks.clear();
        m_chunks_by_region.clear();
        m_unaligned.clear();
    }

private:
    static constexpr unsigned region_bits = 20;
    static constexpr std::uintptr_t region_size = std::uintptr_t{1} << region_bits;
    static constexpr std::size_t slots = region_size / 16;
    static constexpr std::size_t bitmap_bytes = slots / 8;  // 8 KiB
    static constexpr std::size_t chunk_bytes = bitmap_bytes + slots * sizeof(std::uint32_t);  // + 256 KiB

    // A chunk: the bitmap, then the table (entries hold value + 1).
    static bool is_set(const std::uint64_t *chunk, std::size_t slot) { return chunk[slot / 64] >> (slot % 64) & 1; }
    static std::uint32_t *entries(std::uint64_t *chunk) { return reinterpret_cast<std::uint32_t *>(chunk + bitmap_bytes / 8); }
    static const std::uint32_t *entries(const std::uint64_t *chunk)
    {
        return reinterpret_cast<const std::uint32_t *>(chunk + bitmap_bytes / 8);
    }

    std::vector<std::uint64_t *> m_chunks;  // zeroed by mmap: no bit set
    AddressMap m_chunks_by_region;          // region number + 1 -> index in m_chunks
    AddressMap m_unaligned;
};

}  // namespace molt::transform
