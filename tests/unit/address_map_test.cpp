// The address tables of the heap conversion (src/transform/address_map.h): the hash of addresses
// and the table of block starts laid over the address space, at their edges.
#include <gtest/gtest.h>

#include "address_map.h"

namespace molt::transform {
namespace {

constexpr std::uintptr_t megabyte = std::uintptr_t{1} << 20;

TEST(AddressMap, StoresOnceFindsWhatWasStoredAndGrows)
{
    AddressMap map;
    EXPECT_EQ(map.find(0x1000), AddressMap::absent);
    for (std::uintptr_t i = 1; i <= 5000; ++i)
        EXPECT_TRUE(map.insert(i * 16, i));
    EXPECT_FALSE(map.insert(16, 99));  // already there: kept
    EXPECT_EQ(map.size(), 5000u);
    for (std::uintptr_t i = 1; i <= 5000; ++i)
        ASSERT_EQ(map.find(i * 16), i);
    EXPECT_EQ(map.find(5001 * 16), AddressMap::absent);
    map.clear();
    EXPECT_EQ(map.find(16), AddressMap::absent);
}

TEST(BlockStarts, AlignedAndUnalignedStartsAcrossMegabytes)
{
    BlockStarts starts;
    std::uintptr_t base = 0x7f0000000000;
    EXPECT_TRUE(starts.insert(base + 16, 1));
    EXPECT_TRUE(starts.insert(base + megabyte - 16, 2));  // the last slot of a megabyte
    EXPECT_TRUE(starts.insert(base + megabyte, 3));       // the first slot of the next
    EXPECT_TRUE(starts.insert(base + 24, 4));             // not 16-byte aligned: the other map
    EXPECT_FALSE(starts.insert(base + 16, 5));
    EXPECT_EQ(starts.find(base + 16), 1u);
    EXPECT_EQ(starts.find(base + megabyte - 16), 2u);
    EXPECT_EQ(starts.find(base + megabyte), 3u);
    EXPECT_EQ(starts.find(base + 24), 4u);
    EXPECT_EQ(starts.find(base + 32), BlockStarts::absent);
    EXPECT_EQ(starts.find(base + 5 * megabyte), BlockStarts::absent);  // a megabyte never used
    EXPECT_TRUE(starts.has_unaligned());
}

// Tables reserved before the pause serve the first megabytes used, whichever they are; past
// them, tables are mapped as before; a clear lets all go, and a new reserve serves again.
TEST(BlockStarts, ReservedTablesServeTheFirstMegabytesThenMappedOnes)
{
    BlockStarts starts;
    std::uintptr_t base = 0x7f0000000000;
    for (int round = 0; round < 2; ++round) {
        starts.reserve(2);
        for (std::uintptr_t m = 0; m < 4; ++m) {  // two from the reserve, two mapped
            EXPECT_TRUE(starts.insert(base + m * 7 * megabyte + 32, m + 10));
            EXPECT_TRUE(starts.insert(base + m * 7 * megabyte + megabyte - 16, m + 20));
        }
        for (std::uintptr_t m = 0; m < 4; ++m) {
            EXPECT_EQ(starts.find(base + m * 7 * megabyte + 32), m + 10);
            EXPECT_EQ(starts.find(base + m * 7 * megabyte + megabyte - 16), m + 20);
            EXPECT_EQ(starts.find(base + m * 7 * megabyte + 48), BlockStarts::absent);  // a reserved table starts empty
        }
        starts.clear();
        EXPECT_EQ(starts.find(base + 32), BlockStarts::absent);
    }
}

TEST(BlockStarts, TheStartAtOrBelowAnAddressWithinReach)
{
    BlockStarts starts;
    std::uintptr_t base = 0x7f0000000000;
    starts.insert(base + 64, 7);
    // At the start, inside, at the edge of the reach, past it.
    EXPECT_EQ(starts.find_at_or_below(base + 64, 47), (std::pair<std::uintptr_t, std::size_t>{base + 64, 7}));
    EXPECT_EQ(starts.find_at_or_below(base + 64 + 40, 47), (std::pair<std::uintptr_t, std::size_t>{base + 64, 7}));
    EXPECT_EQ(starts.find_at_or_below(base + 64 + 47, 47), (std::pair<std::uintptr_t, std::size_t>{base + 64, 7}));
    EXPECT_EQ(starts.find_at_or_below(base + 64 + 64, 47).second, BlockStarts::absent);
    EXPECT_EQ(starts.find_at_or_below(base + 48, 47).second, BlockStarts::absent);  // below the start
    // Across a megabyte's edge, and across megabytes without any start (no table there).
    starts.insert(base + megabyte - 32, 8);
    EXPECT_EQ(starts.find_at_or_below(base + megabyte + 8, 47), (std::pair<std::uintptr_t, std::size_t>{base + megabyte - 32, 8}));
    EXPECT_EQ(starts.find_at_or_below(base + megabyte + 16, 47).second, BlockStarts::absent);  // 48 bytes below: out of reach
    EXPECT_EQ(starts.find_at_or_below(base + 3 * megabyte + 16, 2 * megabyte + 48),
              (std::pair<std::uintptr_t, std::size_t>{base + megabyte - 32, 8}));
    EXPECT_EQ(starts.find_at_or_below(base + 3 * megabyte + 16, 2 * megabyte).second, BlockStarts::absent);
    EXPECT_EQ(starts.find_at_or_below(base + 3 * megabyte + 4096, 47).second, BlockStarts::absent);
    // Far below, a word of the bitmap (a kilobyte) at a time: the nearest start wins.
    starts.insert(base + 8192, 9);
    EXPECT_EQ(starts.find_at_or_below(base + 8192 + 5000, 8192), (std::pair<std::uintptr_t, std::size_t>{base + 8192, 9}));
    EXPECT_EQ(starts.find_at_or_below(base + 8192 + 5000, 4990).second, BlockStarts::absent);  // from the aligned address
    EXPECT_EQ(starts.find_at_or_below(base + 8000, 8000), (std::pair<std::uintptr_t, std::size_t>{base + 64, 7}));
    // Past the user address space: another way must tell.
    EXPECT_EQ(starts.find_at_or_below(std::uintptr_t{1} << 47, 47).second, BlockStarts::unknown);
}

}  // namespace
}  // namespace molt::transform
