// The --verify scan (stale_pointers.h).
#include "stale_pointers.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include <link.h>
#include <unistd.h>

#include "heap_tracking.h"
#include "heap_walk.h"
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
    // `span`: HeapConverter::replaced_span(), a walk of every block, asked once for both scanners.
    Scanner(const HeapConverter &heap, std::pair<std::uintptr_t, std::uintptr_t> span, std::size_t max_examples)
        : m_heap(heap), m_max(max_examples), m_first(span.first), m_last(span.second)
    {
    }

    // Every aligned word of [start, end) on a page ever touched; `where(offset)` names a hit.
    template <typename Where>
    void words(std::uintptr_t start, std::uintptr_t end, Where &&where)
    {
        start = (start + 7) & ~std::uintptr_t{7};
        for (std::uintptr_t at = start; at + 8 <= end;) {
            std::uintptr_t page_end = std::min(page_of(at) + page_size(), end);
            if (!m_pages.touched(at)) {
                at = page_end;
                continue;
            }
            m_scan.bytes_scanned += page_end - at;
            for (; at + 8 <= page_end; at += 8) {
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
        }
    }

    // An anonymous region (a heap), or a piece of one: only the live blocks allocated through
    // Molt, found by their chunk headers and trailers (free erases a block's trailer); the rest
    // (free memory, other allocators' metadata, never touched pages) may hold anything. Blocks
    // whose chunk header lies in [start, end) and that end by `region_end` (a piece may end
    // inside a block, which is read whole).
    void heap_blocks(std::uintptr_t start, std::uintptr_t end, std::uintptr_t region_end)
    {
        auto probe = [this, region_end](std::uintptr_t user) -> std::optional<std::size_t> {
            // The trailer, in the region, and on a page the process touched: a made-up chunk
            // header may lead anywhere, and an untouched page holds no trailer (reading it would
            // fault it in).
            auto block = tracked_block(reinterpret_cast<const void *>(user), [&](std::uintptr_t at, std::size_t size) {
                return at >= user && at + size <= region_end && m_pages.touched(at) && m_pages.touched(at + size - 1);
            });
            return block ? std::optional<std::size_t>(block->size) : std::nullopt;
        };
        walk_blocks(m_pages, start, end, region_end, probe, [&](std::uintptr_t user, std::size_t size) {
            if (!m_heap.not_to_scan(user))
                words(user, user + size, [&](std::uintptr_t offset) {
                    return "a heap block of " + std::to_string(size) + " bytes at " + hex(user) + " (+" +
                           std::to_string(offset) + ")";
                });
        });
    }

    StaleScan result() { return std::move(m_scan); }

private:
    const HeapConverter &m_heap;
    std::size_t m_max;
    std::uintptr_t m_first = 0, m_last = 0;
    TouchedPages m_pages;
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

// The anonymous writable regions the heap walk reads: the heaps.
std::vector<Region> heap_regions()
{
    std::vector<Region> heaps;
    for (const Region &region : mapped_regions()) {
        bool heap = region.path.empty() || region.path == "[heap]";
        if (region.writable && !region.shared && heap && !sanitizer_shadow(region))
            heaps.push_back(region);
    }
    return heaps;
}

// Where the heaps are cut in two pieces of about the same address space, one for each thread
// (the pages never touched, which cost nothing, may lie more in one than in the other): the
// region holding the cut, and the cut (a page boundary). Kept out of the heap: an address inside the
// heap, in a block the scan reads, may be taken for a pointer into an old object.
struct Cut {
    std::size_t region = 0;
    std::uintptr_t at = 0;
};

Cut cut_in_two(const std::vector<Region> &heaps)
{
    std::uintptr_t total = 0;
    for (const Region &region : heaps)
        total += region.end - region.start;
    std::uintptr_t before = 0;
    for (std::size_t i = 0; i < heaps.size(); ++i) {
        std::uintptr_t size = heaps[i].end - heaps[i].start;
        if (before + size >= total / 2)
            return {i, std::max(heaps[i].start, page_of(heaps[i].start + (total / 2 - before)))};
        before += size;
    }
    return {heaps.size(), 0};
}

}  // namespace

StaleScan find_stale_pointers(const HeapConverter &heap, const Image &new_image,
                              const std::vector<std::string> &version_paths, const Parallel &parallel,
                              std::size_t max_examples)
{
    const auto span = heap.replaced_span();
    Scanner scanner(heap, span, max_examples), second(heap, span, max_examples);
    const std::vector<Region> heaps = heap_regions();
    const Cut cut = cut_in_two(heaps);
    auto globals_and_heaps = [&] {
        // The new version's variables, by name.
        for (const schema::Variable &variable : new_image.schema->variables) {
            if (variable.read_only || variable.thread_local_storage || !variable.size)
                continue;
            std::uintptr_t start = new_image.bias + variable.address;
            scanner.words(start, start + variable.size, [&](std::uintptr_t offset) {
                return "variable " + variable.qualified_name + " (+" + std::to_string(offset) + ")";
            });
        }
        // The other libraries' data and bss, word by word (the versions' own: the old ones are
        // dead, the new one's was scanned by name).
        auto is_version = [&](const std::string &file) {
            return std::find(version_paths.begin(), version_paths.end(), file) != version_paths.end();
        };
        for (const Segment &segment : writable_segments())
            if (!is_version(segment.file))
                scanner.words(segment.start, segment.end, [&](std::uintptr_t offset) {
                    return "the data of " + segment.file + " at " + hex(segment.start + offset);
                });
        // The heaps: every anonymous writable region, through the live blocks allocated through
        // Molt; the second half on the second thread. A block whose chunk header lies before the
        // cut is read whole by the first; the second, starting inside it, looks for blocks in its
        // bytes, where a made-up trailer matches by chance once in 2^57 a look, as anywhere else.
        for (std::size_t i = 0; i < cut.region; ++i)
            scanner.heap_blocks(heaps[i].start, heaps[i].end, heaps[i].end);
        if (cut.region < heaps.size())
            scanner.heap_blocks(heaps[cut.region].start, cut.at, heaps[cut.region].end);
    };
    auto other_half = [&] {
        if (cut.region < heaps.size())
            second.heap_blocks(cut.at, heaps[cut.region].end, heaps[cut.region].end);
        for (std::size_t i = cut.region + 1; i < heaps.size(); ++i)
            second.heap_blocks(heaps[i].start, heaps[i].end, heaps[i].end);
    };
    if (parallel)
        parallel(globals_and_heaps, other_half);
    else {
        globals_and_heaps();
        other_half();
    }
    StaleScan scan = scanner.result(), theirs = second.result();
    scan.bytes_scanned += theirs.bytes_scanned;
    scan.found += theirs.found;
    for (std::string &example : theirs.examples)
        if (scan.examples.size() < max_examples)
            scan.examples.push_back(std::move(example));
    return scan;
}

}  // namespace molt::transform
