// AddressMap: a hash map from addresses to indices, for the heap conversion's hottest lookups
// (is this pointer the start of a block being converted? is this page known to be mapped?).
// std::unordered_map allocates a node per entry and misses the cache on every lookup; an update
// that converts a million objects asks a few million times. Open addressing with linear probing
// keeps each lookup to one or two cache lines. Address 0 marks an empty slot (never a key).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace molt::transform {

class AddressMap {
public:
    static constexpr std::size_t absent = ~std::size_t{0};

    // The value stored for `address`, or `absent`.
    std::size_t find(std::uintptr_t address) const
    {
        if (m_slots.empty())
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
        if ((m_size + 1) * 2 > m_slots.size())
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
        m_slots.clear();
        m_mask = 0;
        m_size = 0;
    }

private:
    struct Slot {
        std::uintptr_t key = 0;
        std::size_t value = 0;
    };

    std::size_t slot_of(std::uintptr_t address) const
    {
        // Fibonacci hashing: heap addresses differ mostly in their middle bits.
        return static_cast<std::size_t>((address * 0x9e3779b97f4a7c15u) >> 32) & m_mask;
    }

    void grow()
    {
        std::vector<Slot> old = std::move(m_slots);
        m_slots.assign(old.empty() ? 1024 : old.size() * 2, Slot{});
        m_mask = m_slots.size() - 1;
        m_size = 0;
        for (const Slot &slot : old)
            if (slot.key)
                insert(slot.key, slot.value);
    }

    std::vector<Slot> m_slots;
    std::size_t m_mask = 0;
    std::size_t m_size = 0;
};

}  // namespace molt::transform
