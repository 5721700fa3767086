// Stacks for threads restarted in a new version: mapped here, with a guard page below.
#pragma once

#include <atomic>
#include <cstddef>

namespace molt::runtime {

struct Stack {
    void *base = nullptr;  // lowest usable address (above the guard page)
    std::size_t size = 0;  // usable bytes
    explicit operator bool() const { return base != nullptr; }
};

// Maps a stack of `size` bytes (rounded to pages, lazily committed) or returns an empty Stack.
Stack allocate_stack(std::size_t size);
void release_stack(Stack &stack);

// Forgets AddressSanitizer's marks on stack memory whose frames were left without returning (a
// thread switched away from them for good): memory mapped again at that address, or a later
// frame there, would otherwise be taken for a red zone. Nothing in a normal build.
void forget_stack_frames(const void *low, std::size_t size);

// How many stacks Molt has mapped and not released (molt status: restarted threads hold one each).
std::atomic<long> &live_stacks();

}  // namespace molt::runtime
