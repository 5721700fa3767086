// The schema cache: a version's schema survives the round trip through its binary form, later
// loads come from the cache (keyed by build-id), and a damaged cache entry is ignored.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "dwarf_reader.h"
#include "fixture_build.h"
#include "schema_cache.h"
#include "schema_format.h"

namespace molt::testing {
namespace {

std::string text_of(const schema::Schema &schema)
{
    std::ostringstream text;
    schema::write_schema_text(schema, text, schema::Addresses::Show);
    return text.str();
}

class SchemaCache : public ::testing::Test {
protected:
    void SetUp() override
    {
        m_directory = scratch_directory() + "/cache-" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
        std::filesystem::remove_all(m_directory);
        setenv("MOLT_CACHE_DIR", m_directory.c_str(), 1);
        m_binary = build({"schema/state_main.c", "schema/state_other.c"}, {"clang", "-O2", ""});
    }
    std::string entry_path(const schema::Schema &schema) const { return m_directory + "/" + schema.build_id + ".schema"; }
    std::string m_directory, m_binary;
};

TEST_F(SchemaCache, SerialisationRoundTripKeepsEverything)
{
    auto schema = schema::read_schema(m_binary);
    ASSERT_TRUE(schema.ok());
    auto again = schema::deserialize_schema(schema::serialize_schema(*schema));
    ASSERT_TRUE(again.has_value());
    again->path = schema->path;
    EXPECT_EQ(text_of(*again), text_of(*schema));
    std::ostringstream json_before, json_after;
    schema::write_schema_json(*schema, json_before);
    schema::write_schema_json(*again, json_after);
    EXPECT_EQ(json_before.str(), json_after.str());
}

TEST_F(SchemaCache, SecondLoadComesFromTheCache)
{
    auto first = schema::load_schema(m_binary);
    ASSERT_TRUE(first.ok());
    ASSERT_FALSE(first->build_id.empty());
    ASSERT_TRUE(std::filesystem::exists(entry_path(*first)));
    // Plant a recognisable change in the entry: a load that reads it must show it.
    auto planted = *first;
    planted.variables.front().size = 4242;
    write_text(entry_path(*first), schema::serialize_schema(planted));
    auto second = schema::load_schema(m_binary);
    ASSERT_TRUE(second.ok());
    EXPECT_EQ(second->variables.front().size, 4242u);
    auto bypassed = schema::load_schema(m_binary, schema::CacheUse::Bypass);
    EXPECT_EQ(bypassed->variables.front().size, first->variables.front().size);
}

TEST_F(SchemaCache, DamagedEntriesAreIgnored)
{
    auto first = schema::load_schema(m_binary);
    ASSERT_TRUE(first.ok());
    std::string bytes = read_text(entry_path(*first));
    for (std::size_t cut : {std::size_t{0}, std::size_t{10}, bytes.size() / 2, bytes.size() - 1}) {
        write_text(entry_path(*first), bytes.substr(0, cut));
        auto loaded = schema::load_schema(m_binary);
        ASSERT_TRUE(loaded.ok());
        EXPECT_EQ(text_of(*loaded), text_of(*first)) << "cut at " << cut;
    }
    std::string flipped = bytes;
    for (std::size_t i = 40; i < flipped.size(); i += 97)
        flipped[i] = static_cast<char>(~flipped[i]);
    write_text(entry_path(*first), flipped);
    auto loaded = schema::load_schema(m_binary);  // the checksum refuses it: read from DWARF again
    ASSERT_TRUE(loaded.ok());
    EXPECT_EQ(text_of(*loaded), text_of(*first));
    EXPECT_FALSE(schema::deserialize_schema(flipped)) << "a damaged entry was taken for a schema";
}

// The entry is found by the build-id, which a damaged copy of the file keeps: a copy cut short
// (loading it would kill the program with SIGBUS), one stripped of its DWARF, and one whose
// loadable segment claims more bytes than the file has are refused as read_schema refuses them,
// cache or not.
TEST_F(SchemaCache, ADamagedCopyOfACachedFileIsStillRefused)
{
    auto first = schema::load_schema(m_binary);
    ASSERT_TRUE(first.ok());
    std::uintmax_t size = std::filesystem::file_size(m_binary);
    for (std::uintmax_t cut : {std::uintmax_t{5000}, size / 2, size - 1}) {
        std::string copy = copy_of(m_binary, "cut");
        std::filesystem::resize_file(copy, cut);
        auto loaded = schema::load_schema(copy);
        ASSERT_FALSE(loaded.ok()) << "cut at " << cut;
        EXPECT_NE(loaded.error().message.find("truncated"), std::string::npos) << loaded.error().message;
    }
    std::string stripped = copy_of(m_binary, "stripped");
    int status = 0;
    std::string messages = run("strip --strip-debug " + stripped + " 2>&1", &status);
    ASSERT_EQ(status, 0) << messages;
    auto loaded = schema::load_schema(stripped);
    ASSERT_FALSE(loaded.ok());
    EXPECT_NE(loaded.error().message.find("no DWARF"), std::string::npos) << loaded.error().message;
    // The first PT_LOAD's size in the file (p_filesz) made larger than the file.
    std::string segment = copy_of(m_binary, "segment");
    std::string bytes = read_text(segment);
    std::uint64_t program_headers;
    std::uint16_t entry_size, entries;
    std::memcpy(&program_headers, bytes.data() + 0x20, 8);
    std::memcpy(&entry_size, bytes.data() + 0x36, 2);
    std::memcpy(&entries, bytes.data() + 0x38, 2);
    for (std::uint16_t i = 0; i < entries; ++i) {
        char *header = bytes.data() + program_headers + i * entry_size;
        std::uint32_t type;
        std::memcpy(&type, header, 4);
        if (type == 1) {  // PT_LOAD
            std::uint64_t too_big = bytes.size() + 4096;
            std::memcpy(header + 32, &too_big, 8);
            break;
        }
    }
    write_text(segment, bytes);
    loaded = schema::load_schema(segment);
    ASSERT_FALSE(loaded.ok());
    EXPECT_NE(loaded.error().message.find("a loadable segment lies past the end"), std::string::npos)
        << loaded.error().message;
}

TEST_F(SchemaCache, UnwritableCacheOnlyCostsTime)
{
    setenv("MOLT_CACHE_DIR", "/proc/molt-cannot-be-here", 1);
    auto schema = schema::load_schema(m_binary);
    EXPECT_TRUE(schema.ok());
}

}  // namespace
}  // namespace molt::testing
