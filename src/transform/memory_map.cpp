// The process's mappings (memory_map.h).
#include "memory_map.h"

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

bool ReadableMemory::take()
{
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

bool ReadableMemory::holds(std::uintptr_t start, std::uint64_t size, std::size_t &hint) const
{
    if (start + size < start)
        return false;
    if (hint < m_ranges.size() && m_ranges[hint].first <= start && start + size <= m_ranges[hint].second)
        return true;  // the range the last question found: a heap's blocks lie in few of them
    auto after = std::upper_bound(m_ranges.begin(), m_ranges.end(), start,
                                  [](std::uintptr_t value, const std::pair<std::uintptr_t, std::uintptr_t> &range) {
                                      return value < range.first;
                                  });
    if (after == m_ranges.begin() || start + size > std::prev(after)->second)
        return false;
    hint = static_cast<std::size_t>(std::prev(after) - m_ranges.begin());
    return true;
}

}  // namespace molt::transform
