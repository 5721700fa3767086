// The --verify scan (stale_pointers.h).
#include "stale_pointers.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <tuple>

#include <link.h>
#include <unistd.h>

#include "heap_tracking.h"
#include "memory_map.h"

namespace molt::transform {
namespace {

using Region = MappedRegion;

std::string hex(std::uintptr_t value)
{
    char text[32];
    std::snprintf(text, sizeof text, "%#" PRIxPTR, value);
    return text;
}

// One word of memory the scan reads whatever it holds: the scan covers whole segments, red zones
// included in a sanitizer build, so the read is not instrumented.
__attribute__((no_sanitize("address"))) std::uintptr_t load_word(std::uintptr_t at)
{
    using Word __attribute__((may_alias)) = std::uintptr_t;
    return *reinterpret_cast<const Word *>(at);
}

class Scanner {
public:
    Scanner(const HeapConverter &heap, std::size_t max_examples) : m_heap(heap), m_max(max_examples)
    {
        std::tie(m_first, m_last) = heap.replaced_span();
    }

    // Every aligned word of [start, end); `where(offset)` names a hit.
    template <typename Where>
    void words(std::uintptr_t start, std::uintptr_t end, Where &&where)
    {
        start = (start + 7) & ~std::uintptr_t{7};
        for (std::uintptr_t at = start; at + 8 <= end; at += 8) {
            std::uintptr_t word = load_word(at);
            if (word < m_first || word >= m_last)
                continue;  // the common case: not near any old object
            std::string target = m_heap.replaced_object_at(word);
            if (target.empty())
                continue;
            ++m_scan.found;
            if (m_scan.examples.size() < m_max)
                m_scan.examples.push_back(where(at - start) + " points into " + target);
        }
        m_scan.bytes_scanned += end > start ? end - start : 0;
    }

    // An anonymous region (a heap): only the live blocks allocated through Molt, found by their
    // headers; the rest (free memory, other allocators' metadata) may hold anything.
    void heap_blocks(const Region &region)
    {
        for (std::uintptr_t user = (region.start + 16 + 15) & ~std::uintptr_t{15}; user < region.end; user += 16) {
            auto block = tracked_block_in_mapped_memory(reinterpret_cast<const void *>(user));
            if (!block || user + block->size > region.end)
                continue;
            if (!m_heap.not_to_scan(user))
                words(user, user + block->size, [&](std::uintptr_t offset) {
                    return "a heap block of " + std::to_string(block->size) + " bytes at " + hex(user) + " (+" +
                           std::to_string(offset) + ")";
                });
            user += (block->size + 15) / 16 * 16;  // and the loop's 16: the next block's header
        }
    }

    StaleScan result() { return std::move(m_scan); }

private:
    const HeapConverter &m_heap;
    std::size_t m_max;
    std::uintptr_t m_first = 0, m_last = 0;
    StaleScan m_scan;
};

// The writable segments of every loaded object (its .data and .bss), exactly: from the program
// headers, not guessed from the mappings.
struct Segment {
    std::uintptr_t start, end;
    std::string file;
};

std::vector<Segment> writable_segments()
{
    std::vector<Segment> segments;
    dl_iterate_phdr(
        [](dl_phdr_info *info, size_t, void *data) {
            auto &found = *static_cast<std::vector<Segment> *>(data);
            std::string file = info->dlpi_name && *info->dlpi_name ? info->dlpi_name : "";
            if (file.empty()) {  // the executable
                char path[4096];
                ssize_t length = readlink("/proc/self/exe", path, sizeof path - 1);
                file = length > 0 ? std::string(path, static_cast<std::size_t>(length)) : "the executable";
            }
            for (int i = 0; i < info->dlpi_phnum; ++i) {
                const ElfW(Phdr) &header = info->dlpi_phdr[i];
                if (header.p_type == PT_LOAD && (header.p_flags & PF_W))
                    found.push_back({info->dlpi_addr + header.p_vaddr, info->dlpi_addr + header.p_vaddr + header.p_memsz, file});
            }
            return 0;
        },
        &segments);
    return segments;
}

// In a sanitizer build, AddressSanitizer's shadow memory: terabytes of anonymous writable
// mapping, between the low and the high application memory of its x86-64 layout.
bool sanitizer_shadow([[maybe_unused]] const Region &region)
{
#if defined(__SANITIZE_ADDRESS__) && defined(__x86_64__)
    constexpr std::uintptr_t shadow_start = 0x00007fff8000, shadow_end = 0x10007fff8000;
    return region.start < shadow_end && region.end > shadow_start;
#else
    return false;
#endif
}

}  // namespace

StaleScan find_stale_pointers(const HeapConverter &heap, const Image &new_image,
                              const std::vector<std::string> &version_paths, std::size_t max_examples)
{
    Scanner scanner(heap, max_examples);
    // The new version's variables, by name.
    for (const schema::Variable &variable : new_image.schema->variables) {
        if (variable.read_only || variable.thread_local_storage || !variable.size)
            continue;
        std::uintptr_t start = new_image.bias + variable.address;
        scanner.words(start, start + variable.size,
                      [&](std::uintptr_t offset) { return "variable " + variable.qualified_name + " (+" + std::to_string(offset) + ")"; });
    }
    // The other libraries' data and bss, word by word (the versions' own: the old ones are dead,
    // the new one's was scanned by name).
    auto is_version = [&](const std::string &file) {
        return std::find(version_paths.begin(), version_paths.end(), file) != version_paths.end();
    };
    for (const Segment &segment : writable_segments())
        if (!is_version(segment.file))
            scanner.words(segment.start, segment.end,
                          [&](std::uintptr_t offset) { return "the data of " + segment.file + " at " + hex(segment.start + offset); });
    // The heaps: every anonymous writable region, through the live blocks allocated through Molt.
    for (const Region &region : mapped_regions()) {
        bool heap = region.path.empty() || region.path == "[heap]";
        if (region.writable && !region.shared && heap && !sanitizer_shadow(region))
            scanner.heap_blocks(region);
    }
    return scanner.result();
}

}  // namespace molt::transform
