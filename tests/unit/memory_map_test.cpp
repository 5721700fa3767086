// The snapshot of readable memory that heap discovery checks pointers against
// (src/transform/memory_map.h): mapped pages are readable, holes and PROT_NONE pages are not,
// and a snapshot tells what was true when it was taken.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstdint>

#include "memory_map.h"

namespace molt::transform {
namespace {

constexpr std::size_t page = 4096;

TEST(ReadableMemory, HoldsReadablePagesAndNotHolesOrProtNonePages)
{
    // Three pages: readable, PROT_NONE, readable; then the last one unmapped (a hole).
    auto *pages = static_cast<char *>(mmap(nullptr, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    ASSERT_NE(pages, MAP_FAILED);
    ASSERT_EQ(mprotect(pages + page, page, PROT_NONE), 0);
    ASSERT_EQ(munmap(pages + 3 * page, page), 0);
    auto at = [&](std::size_t offset) { return reinterpret_cast<std::uintptr_t>(pages) + offset; };

    ReadableMemory memory;
    EXPECT_FALSE(memory.taken());
    ASSERT_TRUE(memory.take());
    EXPECT_TRUE(memory.holds(at(0), page));
    EXPECT_TRUE(memory.holds(at(100), 16));
    EXPECT_FALSE(memory.holds(at(page - 8), 16));  // runs into the PROT_NONE page
    EXPECT_FALSE(memory.holds(at(page + 64), 16));
    EXPECT_TRUE(memory.holds(at(2 * page), page));
    EXPECT_FALSE(memory.holds(at(3 * page), 16));       // the hole
    EXPECT_FALSE(memory.holds(at(2 * page + 8), page));  // runs into it
    EXPECT_FALSE(memory.holds(~std::uintptr_t{0} - 8, 16));  // wraps around
    EXPECT_FALSE(memory.holds(0x10, 16));

    // With a hint (the range the last question found): the same answers, whatever the hint says.
    std::size_t hint = ~std::size_t{0};
    EXPECT_TRUE(memory.holds(at(100), 16, hint));
    std::size_t first = hint;
    EXPECT_NE(first, ~std::size_t{0});
    EXPECT_TRUE(memory.holds(at(200), 16, hint));  // the hint's range
    EXPECT_EQ(hint, first);
    EXPECT_FALSE(memory.holds(at(page - 8), 16, hint));  // starts in the hint's range, runs out of it
    EXPECT_FALSE(memory.holds(at(page + 64), 16, hint));
    EXPECT_TRUE(memory.holds(at(2 * page), 16, hint));  // another range: found, and hinted
    EXPECT_NE(hint, first);
    EXPECT_FALSE(memory.holds(at(3 * page), 16, hint));  // the hole, with a hint for the range below
    hint = 1'000'000;  // a hint past the ranges is ignored
    EXPECT_TRUE(memory.holds(at(0), 16, hint));

    // Made readable after the snapshot: the snapshot still says what it saw.
    ASSERT_EQ(mprotect(pages + page, page, PROT_READ), 0);
    EXPECT_FALSE(memory.holds(at(page + 64), 16));
    ASSERT_TRUE(memory.take());
    EXPECT_TRUE(memory.holds(at(0), 3 * page));  // neighbours merged into one range
    munmap(pages, 3 * page);
}

TEST(MappedRegions, ListsThisProcesssStackAndCodeInAddressOrder)
{
    std::vector<MappedRegion> regions = mapped_regions();
    ASSERT_FALSE(regions.empty());
    int local = 0;
    auto here = reinterpret_cast<std::uintptr_t>(&local);
    bool stack_found = false;
    for (std::size_t i = 0; i < regions.size(); ++i) {
        EXPECT_LT(regions[i].start, regions[i].end);
        if (i) {
            EXPECT_LE(regions[i - 1].end, regions[i].start);
        }
        if (regions[i].start <= here && here < regions[i].end) {
            stack_found = true;
            EXPECT_TRUE(regions[i].readable && regions[i].writable);
        }
    }
    EXPECT_TRUE(stack_found);
}

}  // namespace
}  // namespace molt::transform
