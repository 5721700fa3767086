// The --verify scan's walk of a heap (src/transform/heap_walk.h), over a mapping laid out by
// hand: blocks with a made-up header, free memory between them, pages never touched. The walk
// must visit each block once, whole, however the region is cut in two pieces, and never look
// at a page the process did not touch.
#include <gtest/gtest.h>

#include <sys/mman.h>

#include <cstring>
#include <map>
#include <vector>

#include "heap_walk.h"

namespace {

using molt::transform::page_size;
using molt::transform::TouchedPages;
using molt::transform::walk_blocks;

constexpr std::uint64_t magic = 0x6b636f6c62ull;  // "block": a made-up header's first word

struct Layout {
    std::uintptr_t start = 0, end = 0, touched_end = 0;
    std::map<std::uintptr_t, std::size_t> blocks;  // user address -> size
};

// 64 pages; the last 16 never touched. Blocks of varied sizes (some across page boundaries, one
// of several pages) with free memory between them, their bytes all 0xab (no header inside).
class HeapWalk : public ::testing::Test {
protected:
    void SetUp() override
    {
        std::size_t bytes = 64 * page_size();
        void *memory = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ASSERT_NE(memory, MAP_FAILED);
        m.start = reinterpret_cast<std::uintptr_t>(memory);
        m.end = m.start + bytes;
        m.touched_end = m.start + 48 * page_size();
        std::memset(memory, 0, m.touched_end - m.start);  // touched, and free: zeros
        const std::size_t sizes[] = {24, 4000, 100, 9000, 16, 5000, 300, 3 * 4096 + 8, 64, 700, 2048, 40};
        std::uintptr_t at = m.start + 48;  // a header, 16 bytes; the block after it
        for (int round = 0; round < 3; ++round)
            for (std::size_t size : sizes) {
                std::uintptr_t user = at + 16;
                if (user + size > m.touched_end)
                    break;
                std::uint64_t header[2] = {magic, size};
                std::memcpy(reinterpret_cast<void *>(at), header, sizeof header);
                std::memset(reinterpret_cast<void *>(user), 0xab, size);
                m.blocks[user] = size;
                at = (user + size + 15) / 16 * 16 + 16 * (1 + size % 5);  // some free memory after it
            }
        ASSERT_GE(m.blocks.size(), 20u);
    }
    void TearDown() override { munmap(reinterpret_cast<void *>(m.start), m.end - m.start); }

    // The blocks the walk of [from, to) visits, and every address it probes.
    std::vector<std::pair<std::uintptr_t, std::size_t>> walk(std::uintptr_t from, std::uintptr_t to,
                                                             std::vector<std::uintptr_t> *probed = nullptr)
    {
        TouchedPages pages;
        std::vector<std::pair<std::uintptr_t, std::size_t>> visited;
        auto probe = [&](std::uintptr_t user) -> std::optional<std::size_t> {
            if (probed)
                probed->push_back(user);
            std::uint64_t header[2];
            std::memcpy(header, reinterpret_cast<const void *>(user - 16), sizeof header);
            return header[0] == magic ? std::optional<std::size_t>(header[1]) : std::nullopt;
        };
        walk_blocks(pages, from, to, m.end, probe,
                    [&](std::uintptr_t user, std::size_t size) { visited.emplace_back(user, size); });
        return visited;
    }

    std::vector<std::pair<std::uintptr_t, std::size_t>> expected() const { return {m.blocks.begin(), m.blocks.end()}; }

    Layout m;
};

TEST_F(HeapWalk, VisitsEveryBlockOnceAndNeverLooksAtAnUntouchedPage)
{
    std::vector<std::uintptr_t> probed;
    EXPECT_EQ(walk(m.start, m.end, &probed), expected());
    for (std::uintptr_t user : probed)
        EXPECT_LT(user - 16, m.touched_end) << "probed an untouched page at +" << user - m.start;
    // It passes over the blocks' insides: far fewer looks than 16-byte places.
    EXPECT_LT(probed.size(), (m.touched_end - m.start) / 16 / 2);
}

TEST_F(HeapWalk, AnyCutInTwoVisitsEveryBlockOnce)
{
    for (std::uintptr_t cut = m.start; cut <= m.end; cut += page_size()) {
        auto first = walk(m.start, cut), second = walk(cut, m.end);
        first.insert(first.end(), second.begin(), second.end());
        EXPECT_EQ(first, expected()) << "cut at page " << (cut - m.start) / page_size();
    }
    // A cut at a header's own place: the block goes to the second piece; a cut just after its
    // header, at the block itself: to the first. Never to both, never to neither.
    std::uintptr_t header = m.blocks.begin()->first - 16;
    auto before = walk(m.start, header), after = walk(header, m.end);
    EXPECT_TRUE(before.empty());
    EXPECT_EQ(after, expected());
    before = walk(m.start, header + 16), after = walk(header + 16, m.end);
    ASSERT_EQ(before.size(), 1u);
    EXPECT_EQ(before.front().first, header + 16);
    before.insert(before.end(), after.begin(), after.end());
    EXPECT_EQ(before, expected());
}

}  // namespace
