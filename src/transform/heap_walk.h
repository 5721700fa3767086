// The walk of a heap's blocks by the 16 bytes below each (the allocator's chunk header, which
// tells where Molt's trailer lies), for the --verify scan (stale_pointers.cpp): which pages the
// process ever touched, and the blocks whose chunk header lies in a region, or in a piece of one
// when the scan is cut in two.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include <fcntl.h>
#include <unistd.h>

namespace molt::transform {

inline std::uintptr_t page_size()
{
    static const auto size = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
    return size;
}

inline std::uintptr_t page_of(std::uintptr_t address) { return address & ~(page_size() - 1); }

// Which pages the process ever touched (present, or swapped out), from /proc/self/pagemap. An
// anonymous page never touched reads as zeros (a file's, as the file's bytes, which hold no
// address of this run), so it holds no pointer, and reading it costs a page fault: the threads'
// 8 MB stacks, mostly never touched, were 52 ms of a 66 ms scan (kvd, 100,000 keys: 12 stacks,
// 2 µs a page). Read 512 pages' entries at a time. Without pagemap, every page counts.
class TouchedPages {
public:
    TouchedPages() : m_fd(open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC)) {}
    ~TouchedPages()
    {
        if (m_fd >= 0)
            close(m_fd);
    }
    TouchedPages(const TouchedPages &) = delete;
    TouchedPages &operator=(const TouchedPages &) = delete;

    bool touched(std::uintptr_t address)
    {
        if (m_fd < 0)
            return true;
        std::uintptr_t page = address / page_size();
        if (page < m_first || page >= m_first + m_count) {
            ssize_t got = pread(m_fd, m_entries, sizeof m_entries, static_cast<off_t>(page * sizeof m_entries[0]));
            if (got < static_cast<ssize_t>(sizeof m_entries[0])) {  // unreadable: every page counts, as without it
                close(m_fd);
                m_fd = -1;
                return true;
            }
            m_first = page;
            m_count = static_cast<std::uintptr_t>(got) / sizeof m_entries[0];
        }
        constexpr std::uint64_t present = std::uint64_t{1} << 63, swapped = std::uint64_t{1} << 62;
        return m_entries[page - m_first] & (present | swapped);
    }

private:
    int m_fd;
    std::uint64_t m_entries[512];
    std::uintptr_t m_first = 0, m_count = 0;  // pages
};

// Calls `visit(user, size)` for each block whose 16-byte header lies in [start, end), that
// `probe(user)` recognises (it gives the block's size, or nothing) and that ends by
// `region_end`, in address order, passing over pages never touched and each block's inside.
// The walk of a region, or of a piece of one: a block whose header lies before `end` is visited
// whole, and the next piece, starting inside it, looks for blocks in its bytes (a made-up trailer
// matches there by chance once in 2^57 a look, as anywhere else the walk looks).
template <typename Probe, typename Visit>
void walk_blocks(TouchedPages &pages, std::uintptr_t start, std::uintptr_t end, std::uintptr_t region_end,
                 Probe &&probe, Visit &&visit)
{
    for (std::uintptr_t user = (start + 16 + 15) & ~std::uintptr_t{15}; user - 16 < end; user += 16) {
        if (!pages.touched(user - 16)) {  // a header lies on one page: on to the next page's first
            user = page_of(user - 16) + page_size();
            continue;
        }
        std::optional<std::size_t> size = probe(user);
        if (!size || *size > region_end - user)  // (a block may end past a piece of its region)
            continue;
        visit(user, *size);
        user += (*size + 15) / 16 * 16;  // and the loop's 16: the next block's header
    }
}

}  // namespace molt::transform
