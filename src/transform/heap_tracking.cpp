// The malloc family, interposed: each block carries a header with its requested size and a check
// word, in front of what the program sees. glibc's allocator (through its __libc_* entry points)
// does the work; the cost is the header and a few instructions.
#include "heap_tracking.h"

#include <dlfcn.h>
#include <sys/mman.h>
#include <errno.h>
#include <string.h>


extern "C" {
void *__libc_malloc(size_t);
void *__libc_calloc(size_t, size_t);
void *__libc_realloc(void *, size_t);
void __libc_free(void *);
void *__libc_memalign(size_t, size_t);
}

namespace molt::transform {
namespace {

// Header, just below the pointer the program gets. `offset` is how far the allocation starts
// below that pointer (16, or the alignment for aligned blocks).
struct Header {
    std::uint64_t size;
    std::uint32_t offset;
    std::uint32_t check;
};
static_assert(sizeof(Header) == 16, "the header keeps malloc's 16-byte alignment");

constexpr std::uint32_t seed = 0x6d6f6c74;  // "molt"

std::uint32_t check_word(const void *user, std::uint64_t size, std::uint32_t offset)
{
    auto value = reinterpret_cast<std::uintptr_t>(user) ^ (size * 0x9e3779b97f4a7c15ull) ^ offset;
    return static_cast<std::uint32_t>(value ^ (value >> 32)) ^ seed;
}

Header *header_of(const void *user) { return reinterpret_cast<Header *>(const_cast<char *>(static_cast<const char *>(user)) - sizeof(Header)); }

void *finish(void *base, std::size_t size, std::size_t offset)
{
    if (!base)
        return nullptr;
    char *user = static_cast<char *>(base) + offset;
    Header *header = header_of(user);
    header->size = size;
    header->offset = static_cast<std::uint32_t>(offset);
    header->check = check_word(user, size, header->offset);
    return user;
}

// Whether the page holding `address` is mapped (mincore fails with ENOMEM on a hole).
bool page_is_mapped(std::uintptr_t address)
{
    unsigned char resident;
    std::uintptr_t page = address & ~static_cast<std::uintptr_t>(4095);
    return mincore(reinterpret_cast<void *>(page), 4096, &resident) == 0;
}

// The header of a tracked block, or null for a block that did not come through here.
Header *tracked_header(const void *user)
{
    if (!user || reinterpret_cast<std::uintptr_t>(user) % 16 != 0)
        return nullptr;
    // A pointer at the start of a page may be the start of a mapping (not a block of ours: ours
    // always have their header in the same allocation): do not read below it blindly.
    if ((reinterpret_cast<std::uintptr_t>(user) & 4095) < sizeof(Header) &&
        !page_is_mapped(reinterpret_cast<std::uintptr_t>(user) - sizeof(Header)))
        return nullptr;
    Header *header = header_of(user);
    if (header->check != check_word(user, header->size, header->offset))
        return nullptr;
    return header;
}

void *allocate(std::size_t size)
{
    if (size > SIZE_MAX - 64) {
        errno = ENOMEM;
        return nullptr;
    }
    return finish(__libc_malloc(size + sizeof(Header)), size, sizeof(Header));
}

void *allocate_aligned(std::size_t alignment, std::size_t size)
{
    if (alignment <= sizeof(Header))
        return allocate(size);
    if (size > SIZE_MAX - alignment - 64) {
        errno = ENOMEM;
        return nullptr;
    }
    // The header sits in the alignment's worth of bytes below the aligned pointer.
    return finish(__libc_memalign(alignment, size + alignment), size, alignment);
}

void release(void *user)
{
    if (!user)
        return;
    if (Header *header = tracked_header(user)) {
        std::uint32_t offset = header->offset;
        header->check = 0;  // a second free of this pointer is no longer taken for ours
        __libc_free(static_cast<char *>(user) - offset);
        return;
    }
    __libc_free(user);  // allocated before the runtime was loaded
}

std::size_t usable_size_of_untracked(void *user)
{
    using Function = std::size_t (*)(void *);
    static Function glibc = reinterpret_cast<Function>(dlsym(RTLD_NEXT, "malloc_usable_size"));
    return glibc ? glibc(user) : 0;
}

bool is_power_of_two(std::size_t value) { return value && !(value & (value - 1)); }

}  // namespace

bool readable(const void *pointer, std::size_t size)
{
    auto start = reinterpret_cast<std::uintptr_t>(pointer);
    for (std::uintptr_t page = start & ~static_cast<std::uintptr_t>(4095); page < start + size; page += 4096)
        if (!page_is_mapped(page))
            return false;
    return true;
}

std::optional<HeapBlock> tracked_block_in_mapped_memory(const void *pointer)
{
    if (!pointer || reinterpret_cast<std::uintptr_t>(pointer) % 16 != 0)
        return std::nullopt;
    Header *header = header_of(pointer);
    if (header->check != check_word(pointer, header->size, header->offset))
        return std::nullopt;
    return HeapBlock{const_cast<void *>(pointer), header->size};
}

std::optional<HeapBlock> tracked_block(const void *pointer)
{
    Header *header = tracked_header(pointer);
    if (!header)
        return std::nullopt;
    return HeapBlock{const_cast<void *>(pointer), header->size};
}

}  // namespace molt::transform

using namespace molt::transform;

#define MOLT_EXPORT extern "C" __attribute__((visibility("default")))

MOLT_EXPORT void *malloc(size_t size) { return allocate(size); }

MOLT_EXPORT void free(void *pointer) { release(pointer); }

MOLT_EXPORT void *calloc(size_t count, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(count, size, &total)) {
        errno = ENOMEM;
        return nullptr;
    }
    if (total > SIZE_MAX - 64) {
        errno = ENOMEM;
        return nullptr;
    }
    return finish(__libc_calloc(1, total + 16), total, 16);
}

MOLT_EXPORT void *realloc(void *pointer, size_t size)
{
    if (!pointer)
        return allocate(size);
    if (size == 0) {
        release(pointer);
        return nullptr;
    }
    if (size > SIZE_MAX - 64) {
        errno = ENOMEM;
        return nullptr;
    }
    if (Header *header = tracked_header(pointer)) {
        if (header->offset == 16) {  // an ordinary block: glibc can grow it in place
            std::uint64_t old_size = header->size;
            header->check = 0;
            void *moved = __libc_realloc(static_cast<char *>(pointer) - 16, size + 16);
            if (!moved) {
                header->check = check_word(pointer, old_size, 16);  // the old block stays valid
                return nullptr;
            }
            return finish(moved, size, 16);
        }
        void *fresh = allocate(size);  // an aligned block: realloc does not keep the alignment
        if (fresh) {
            memcpy(fresh, pointer, header->size < size ? header->size : size);
            release(pointer);
        }
        return fresh;
    }
    // A block from before the runtime: moved into a tracked one.
    std::size_t old_size = usable_size_of_untracked(pointer);
    void *fresh = allocate(size);
    if (fresh) {
        memcpy(fresh, pointer, old_size < size ? old_size : size);
        __libc_free(pointer);
    }
    return fresh;
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
    if (Header *header = tracked_header(pointer))
        return header->size;  // the bytes the program may use: exactly what it asked for
    return usable_size_of_untracked(pointer);
}

// The requested size of a block the runtime tracks, or 0 (see molt/molt.h).
MOLT_EXPORT size_t molt_block_size(const void *pointer)
{
    Header *header = tracked_header(pointer);
    return header ? header->size : 0;
}
