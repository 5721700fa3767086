// Stack mappings for restarted threads.
#include "stacks.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

namespace molt::runtime {

std::atomic<long> &live_stacks()
{
    static std::atomic<long> count{0};
    return count;
}

void forget_stack_frames([[maybe_unused]] const void *low, [[maybe_unused]] std::size_t size)
{
#if defined(__SANITIZE_ADDRESS__)
    __asan_unpoison_memory_region(low, size);
#endif
}

Stack allocate_stack(std::size_t size)
{
    std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    size = (size + page - 1) / page * page;
    void *mapping = mmap(nullptr, size + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                         -1, 0);
    if (mapping == MAP_FAILED)
        return {};
    mprotect(mapping, page, PROT_NONE);  // guard: an overflow faults instead of corrupting
    live_stacks().fetch_add(1);
    return {static_cast<char *>(mapping) + page, size};
}

void release_stack(Stack &stack)
{
    if (!stack)
        return;
    std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    forget_stack_frames(stack.base, stack.size);
    munmap(static_cast<char *>(stack.base) - page, stack.size + page);
    live_stacks().fetch_sub(1);
    stack = {};
}

}  // namespace molt::runtime
