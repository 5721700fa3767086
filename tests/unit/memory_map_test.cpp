// Readable memory, as heap discovery checks pointers against it (src/transform/memory_map.h):
// mapped pages are readable, holes and PROT_NONE pages are not, whether from a snapshot (which
// tells what was true when it was taken) or from questions to the kernel.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstdint>
#include <vector>

#include "memory_map.h"

namespace molt::transform {
namespace {

constexpr std::size_t page = 4096;

// Three pages: readable, PROT_NONE, readable; then a fourth, unmapped (a hole).
struct Pages {
    char *start = static_cast<char *>(mmap(nullptr, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    Pages()
    {
        EXPECT_EQ(mprotect(start + page, page, PROT_NONE), 0);
        EXPECT_EQ(munmap(start + 3 * page, page), 0);
    }
    ~Pages() { munmap(start, 3 * page); }
    std::uintptr_t at(std::size_t offset) const { return reinterpret_cast<std::uintptr_t>(start) + offset; }
};

// What either way (a snapshot, questions to the kernel) must say about them.
void expect_readable_pages_only(const Pages &pages, const ReadableMemory &memory)
{
    EXPECT_TRUE(memory.holds(pages.at(0), page));
    EXPECT_TRUE(memory.holds(pages.at(100), 16));
    EXPECT_FALSE(memory.holds(pages.at(page - 8), 16));  // runs into the PROT_NONE page
    EXPECT_FALSE(memory.holds(pages.at(page + 64), 16));
    EXPECT_TRUE(memory.holds(pages.at(2 * page), page));
    EXPECT_FALSE(memory.holds(pages.at(3 * page), 16));       // the hole
    EXPECT_FALSE(memory.holds(pages.at(2 * page + 8), page));  // runs into it
    EXPECT_FALSE(memory.holds(~std::uintptr_t{0} - 8, 16));  // wraps around
    EXPECT_FALSE(memory.holds(0x10, 16));

    // With a hint (the range the last question found): the same answers, whatever the hint says.
    std::size_t hint = ~std::size_t{0};
    EXPECT_TRUE(memory.holds(pages.at(100), 16, hint));
    std::size_t first = hint;
    EXPECT_NE(first, ~std::size_t{0});
    EXPECT_TRUE(memory.holds(pages.at(200), 16, hint));  // the hint's range
    EXPECT_EQ(hint, first);
    EXPECT_FALSE(memory.holds(pages.at(page - 8), 16, hint));  // starts in the hint's range, runs out of it
    EXPECT_FALSE(memory.holds(pages.at(page + 64), 16, hint));
    EXPECT_TRUE(memory.holds(pages.at(2 * page), 16, hint));  // another range: found, and hinted
    EXPECT_NE(hint, first);
    EXPECT_FALSE(memory.holds(pages.at(3 * page), 16, hint));  // the hole, with a hint for the range below
    hint = 1'000'000;  // a hint past the ranges is ignored
    EXPECT_TRUE(memory.holds(pages.at(0), 16, hint));
}

TEST(ReadableMemory, ASnapshotHoldsReadablePagesAndNotHolesOrProtNonePages)
{
    Pages pages;
    ReadableMemory memory;
    EXPECT_FALSE(memory.taken());
    EXPECT_FALSE(memory.holds(pages.at(0), 16));  // nothing known yet
    ASSERT_TRUE(memory.take());
    EXPECT_TRUE(memory.taken());
    expect_readable_pages_only(pages, memory);

    // Made readable after the snapshot: the snapshot still says what it saw.
    ASSERT_EQ(mprotect(pages.start + page, page, PROT_READ), 0);
    EXPECT_FALSE(memory.holds(pages.at(page + 64), 16));
    ASSERT_TRUE(memory.take());
    EXPECT_TRUE(memory.holds(pages.at(0), 3 * page));  // neighbours merged into one range
}

// Linux 6.11 and later (PROCMAP_QUERY): the same answers, a mapping at a time.
TEST(ReadableMemory, QuestionsHoldReadablePagesAndNotHolesOrProtNonePages)
{
    Pages pages;
    ReadableMemory memory;
    if (!memory.query())
        GTEST_SKIP() << "this kernel does not answer PROCMAP_QUERY (older than 6.11): updates take a snapshot";
    EXPECT_TRUE(memory.taken());
    expect_readable_pages_only(pages, memory);

    // A mapping found unreadable is asked about again; one found readable is kept (and three
    // neighbours, each asked about, hold a range that runs over them).
    ASSERT_EQ(mprotect(pages.start + page, page, PROT_READ), 0);
    EXPECT_TRUE(memory.holds(pages.at(page + 64), 16));
    EXPECT_TRUE(memory.holds(pages.at(0), 3 * page));

    // Many mappings (more than it keeps): each is still answered right.
    std::vector<char *> many;
    for (int i = 0; i < 100; ++i) {
        // PROT_NONE between them, so that the kernel does not merge them into one.
        auto *two = static_cast<char *>(mmap(nullptr, 2 * page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
        ASSERT_NE(two, MAP_FAILED);
        ASSERT_EQ(mprotect(two + page, page, PROT_NONE), 0);
        many.push_back(two);
    }
    for (char *two : many) {
        EXPECT_TRUE(memory.holds(reinterpret_cast<std::uintptr_t>(two), page));
        EXPECT_FALSE(memory.holds(reinterpret_cast<std::uintptr_t>(two) + page, 16));
        EXPECT_TRUE(memory.holds(reinterpret_cast<std::uintptr_t>(two) + 8, 16));  // asked twice
    }
    for (char *two : many)
        munmap(two, 2 * page);

    // A snapshot after questions: back to the snapshot's way.
    ASSERT_EQ(mprotect(pages.start + page, page, PROT_NONE), 0);
    ASSERT_TRUE(memory.take());
    expect_readable_pages_only(pages, memory);
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
