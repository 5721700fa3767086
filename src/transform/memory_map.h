// What the process has mapped, read from /proc/self/maps: the regions themselves (the --verify
// scan walks them), and where memory can be read (heap discovery checks every pointer it follows
// against it, so that a dangling one fails the update instead of crashing).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
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

// Where memory can be read, in one of two ways. A snapshot (take) reads every mapping at once, 0.1
// to 0.3 ms with a few hundred of them. Questions (query), on Linux 6.11 and later, ask the kernel
// about the mapping that holds an address (PROCMAP_QUERY, about a microsecond) the first time an
// address in it comes up, and keep the answer: an update's pointers lie in a few mappings (the
// heaps), so that a pause asks a handful of questions instead of reading them all.
//
// Use it while the program's threads are parked: they unmap nothing until they run again, so
// the answers stay true for their objects. (Not for memory the program had already freed: Molt's
// own frees meanwhile may make malloc give the top of a heap back to the kernel, and a dangling
// pointer into it would pass. The page-by-page probe it replaced had the same gap.) Lookups may
// run on several threads at once.
class ReadableMemory {
public:
    using Range = std::pair<std::uintptr_t, std::uintptr_t>;  // [start, end)
    ReadableMemory() = default;
    ReadableMemory(const ReadableMemory &) = delete;
    ReadableMemory &operator=(const ReadableMemory &) = delete;
    ~ReadableMemory();
    // Questions from now on, when the kernel answers them (else false, and nothing changes). The
    // file it asks through is opened here: call it before the pause.
    bool query();
    // A snapshot of every mapping now. False when /proc/self/maps cannot be read (the caller
    // then asks the kernel page by page).
    bool take();
    // Whether either way is ready.
    bool taken() const { return m_taken; }
    // Whether every byte of [start, start + size) lies in readable memory.
    bool holds(std::uintptr_t start, std::uint64_t size) const
    {
        std::size_t none = ~std::size_t{0};
        return holds(start, size, none);
    }
    // The same, trying first the range the caller's last question found (`hint`, which it keeps,
    // one per thread): an update asks about a million pointers, most into the same heap. When
    // it holds, `found` (if given) is a readable range that holds `start`, for the caller to
    // try itself before it asks again.
    bool holds(std::uintptr_t start, std::uint64_t size, std::size_t &hint, Range *found = nullptr) const;

private:
    bool snapshot_holds(std::uintptr_t start, std::uintptr_t end, std::size_t &hint, Range *found) const;
    bool query_holds(std::uintptr_t start, std::uintptr_t end, std::size_t &hint, Range *found) const;
    bool known_range(std::uintptr_t address, Range &range, std::size_t &index) const;
    bool ask_kernel(std::uintptr_t address, Range &range, std::size_t &index) const;

    std::vector<Range> m_ranges;  // the snapshot: merged, sorted
    bool m_taken = false;
    int m_maps = -1;  // /proc/self/maps, open: questions are asked through it
    bool m_query_refused = false;  // the kernel did not answer: a snapshot it is
    // The readable mappings the questions found, in the order they were found; more than fit
    // are asked about again each time.
    static constexpr std::size_t known_capacity = 64;
    mutable std::array<Range, known_capacity> m_known{};
    mutable std::atomic<std::size_t> m_known_count{0};
    mutable std::mutex m_asking;  // one question at a time; m_known grows under it
};

}  // namespace molt::transform
