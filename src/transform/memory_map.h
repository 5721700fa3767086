// What the process has mapped, read from /proc/self/maps: the regions themselves (the --verify
// scan walks them), and a snapshot of where memory can be read (heap discovery checks every
// pointer it follows against it, so that a dangling one fails the update instead of crashing).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace molt::transform {

struct MappedRegion {
    std::uintptr_t start = 0, end = 0;
    bool readable = false, writable = false, shared = false;
    std::string path;  // empty: anonymous; " (deleted)" taken off
};

// Every mapping of the process, in address order. Empty when /proc is not mounted.
std::vector<MappedRegion> mapped_regions();

// The readable address ranges at one moment. Take it while the program's threads are parked:
// they unmap nothing until they run again, so the snapshot stays true for their objects. (Not
// for memory the program had already freed: Molt's own frees meanwhile may make malloc give the
// top of a heap back to the kernel, and a dangling pointer into it would pass. The page-by-page
// probe it replaced had the same gap.) Lookups read only, and may run on several threads.
class ReadableMemory {
public:
    // False when /proc/self/maps cannot be read (the caller then asks the kernel page by page).
    bool take();
    bool taken() const { return m_taken; }
    // Whether every byte of [start, start + size) lies in readable memory.
    bool holds(std::uintptr_t start, std::uint64_t size) const
    {
        std::size_t none = ~std::size_t{0};
        return holds(start, size, none);
    }
    // The same, trying first the range the caller's last question found (`hint`, which it keeps,
    // one per thread): an update asks about a million pointers, most into the same heap.
    bool holds(std::uintptr_t start, std::uint64_t size, std::size_t &hint) const;

private:
    std::vector<std::pair<std::uintptr_t, std::uintptr_t>> m_ranges;  // [start, end), merged, sorted
    bool m_taken = false;
};

}  // namespace molt::transform
