// Heap tracking: the runtime interposes the malloc family and keeps the exact requested size
// of every block in a 16-byte header before it, so that a typed pointer to a block tells how
// many elements it holds. Blocks that did not come through here (allocated before the runtime
// was loaded, or by another allocator) have no header and count as one element.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

namespace molt::transform {

struct HeapBlock {
    void *start = nullptr;  // what malloc returned to the program
    std::size_t size = 0;   // what the program asked for
};

// Whether [pointer, pointer + size) lies in mapped memory (a probe, for pointers Molt did not
// allocate: a dangling one must fail an update, not crash the process).
bool readable(const void *pointer, std::size_t size);

// The tracked block that starts at `pointer`, if it is one.
std::optional<HeapBlock> tracked_block(const void *pointer);

// The same, for a pointer whose 16 bytes below are known to be mapped (a scan of a mapped
// region): no probe of the page.
std::optional<HeapBlock> tracked_block_in_mapped_memory(const void *pointer);

}  // namespace molt::transform
