// The process's mappings (memory_map.h).
#include "memory_map.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string_view>

namespace molt::transform {

std::vector<MappedRegion> mapped_regions()
{
    std::vector<MappedRegion> regions;
    std::ifstream maps("/proc/self/maps");
    std::string line;
    while (std::getline(maps, line)) {
        MappedRegion region;
        char permissions[5] = {};
        unsigned long start = 0, end = 0;
        int path_at = 0;
        if (std::sscanf(line.c_str(), "%lx-%lx %4s %*s %*s %*s %n", &start, &end, permissions, &path_at) < 3)
            continue;
        region.start = start;
        region.end = end;
        region.readable = permissions[0] == 'r';
        region.writable = region.readable && permissions[1] == 'w';
        region.shared = permissions[3] == 's';
        if (path_at > 0 && static_cast<std::size_t>(path_at) < line.size())
            region.path = line.substr(static_cast<std::size_t>(path_at));
        constexpr std::string_view deleted = " (deleted)";  // a version's fresh copy, unlinked once mapped
        if (region.path.size() > deleted.size() && region.path.ends_with(deleted))
            region.path.resize(region.path.size() - deleted.size());
        regions.push_back(std::move(region));
    }
    return regions;
}

namespace {

// The kernel's struct procmap_query (linux/fs.h, Linux 6.11), spelled here: Debian 12's headers
// are older than it. Only the first six fields are used; the size says which the kernel fills.
struct MappingQuery {
    std::uint64_t size, query_flags, query_addr;
    std::uint64_t vma_start, vma_end, vma_flags;  // out: the mapping that holds query_addr
    std::uint64_t vma_page_size, vma_offset, inode;
    std::uint32_t dev_major, dev_minor, vma_name_size, build_id_size;
    std::uint64_t vma_name_addr, build_id_addr;
};
static_assert(sizeof(MappingQuery) == 104, "the kernel's layout");
constexpr unsigned long mapping_query_request = _IOWR('f', 17, MappingQuery);  // PROCMAP_QUERY
constexpr std::uint64_t mapping_readable = 1;  // PROCMAP_QUERY_VMA_READABLE

// The mapping that holds `address`, when there is one (the file is /proc/self/maps, open).
bool ask_about_mapping(int maps, std::uintptr_t address, MappingQuery &query)
{
    query = MappingQuery{};
    query.size = sizeof query;
    query.query_addr = address;  // flags 0: the mapping that holds it, none when it lies in a hole
    return ioctl(maps, mapping_query_request, &query) == 0;
}

}  // namespace

ReadableMemory::~ReadableMemory()
{
    if (m_maps >= 0)
        close(m_maps);
}

bool ReadableMemory::query()
{
    if (m_maps >= 0)
        return true;
    if (m_query_refused)
        return false;  // asked once already: not again (in the pause)
    m_query_refused = true;
    int maps = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (maps < 0)
        return false;
    static const int here = 0;  // in this library's data: mapped, whatever else is
    MappingQuery probe;
    if (!ask_about_mapping(maps, reinterpret_cast<std::uintptr_t>(&here), probe)) {
        close(maps);  // an older kernel (ENOTTY): a snapshot instead
        return false;
    }
    m_maps = maps;
    m_query_refused = false;
    m_ranges.clear();
    m_known_count.store(0, std::memory_order_relaxed);
    m_taken = true;
    return true;
}

bool ReadableMemory::take()
{
    if (m_maps >= 0) {  // back to a snapshot
        close(m_maps);
        m_maps = -1;
    }
    m_ranges.clear();
    for (const MappedRegion &region : mapped_regions()) {
        if (!region.readable)
            continue;  // PROT_NONE: a guard page, or an arena's reserve (mincore would call it mapped)
        if (!m_ranges.empty() && m_ranges.back().second == region.start)
            m_ranges.back().second = region.end;  // neighbours: a heap and the arena after it
        else
            m_ranges.emplace_back(region.start, region.end);
    }
    m_taken = !m_ranges.empty();
    return m_taken;
}

bool ReadableMemory::holds(std::uintptr_t start, std::uint64_t size, std::size_t &hint, Range *found) const
{
    std::uintptr_t end = start + std::max<std::uint64_t>(size, 1);
    if (end < start || !m_taken)
        return false;
    return m_maps >= 0 ? query_holds(start, end, hint, found) : snapshot_holds(start, end, hint, found);
}

bool ReadableMemory::snapshot_holds(std::uintptr_t start, std::uintptr_t end, std::size_t &hint, Range *found) const
{
    if (!(hint < m_ranges.size() && m_ranges[hint].first <= start && end <= m_ranges[hint].second)) {
        // Not the range the last question found (a heap's blocks lie in few of them).
        auto after = std::upper_bound(m_ranges.begin(), m_ranges.end(), start,
                                      [](std::uintptr_t value, const Range &range) { return value < range.first; });
        if (after == m_ranges.begin() || end > std::prev(after)->second)
            return false;
        hint = static_cast<std::size_t>(std::prev(after) - m_ranges.begin());
    }
    if (found)
        *found = m_ranges[hint];
    return true;
}

// Mapping by mapping from `start`: [start, end) may run over several neighbours.
bool ReadableMemory::query_holds(std::uintptr_t start, std::uintptr_t end, std::size_t &hint, Range *found) const
{
    if (hint < m_known_count.load(std::memory_order_acquire) && m_known[hint].first <= start && end <= m_known[hint].second) {
        if (found)
            *found = m_known[hint];
        return true;
    }
    Range first{};
    for (std::uintptr_t at = start; at < end;) {
        Range range;
        std::size_t index;
        if (!known_range(at, range, index) && !ask_kernel(at, range, index))
            return false;
        if (at == start) {
            first = range;
            if (index != known_capacity)
                hint = index;
        }
        at = range.second;
    }
    if (found)
        *found = first;
    return true;
}

// A readable mapping found before that holds `address`: its range and its index in m_known.
bool ReadableMemory::known_range(std::uintptr_t address, Range &range, std::size_t &index) const
{
    std::size_t known = m_known_count.load(std::memory_order_acquire);
    for (index = 0; index < known; ++index)
        if (m_known[index].first <= address && address < m_known[index].second) {
            range = m_known[index];
            return true;
        }
    return false;
}

// The kernel's answer, kept when the mapping is readable (index known_capacity: not kept, m_known
// is full). Under the lock: two threads asking about the same heap at once keep it once.
bool ReadableMemory::ask_kernel(std::uintptr_t address, Range &range, std::size_t &index) const
{
    std::lock_guard lock(m_asking);
    if (known_range(address, range, index))
        return true;  // the other thread asked first
    MappingQuery answer;
    if (!ask_about_mapping(m_maps, address, answer) || !(answer.vma_flags & mapping_readable))
        return false;  // a hole, or PROT_NONE (a guard page, an arena's reserve)
    range = {answer.vma_start, answer.vma_end};
    index = m_known_count.load(std::memory_order_relaxed);
    if (index == known_capacity)
        return true;
    m_known[index] = range;
    m_known_count.store(index + 1, std::memory_order_release);
    return true;
}

}  // namespace molt::transform
