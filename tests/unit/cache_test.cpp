// The schema cache: a version's schema survives the round trip through its binary form, later
// loads come from the cache (keyed by build-id), and a damaged cache entry is ignored.
#include <gtest/gtest.h>

#include <cstdlib>
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

TEST_F(SchemaCache, UnwritableCacheOnlyCostsTime)
{
    setenv("MOLT_CACHE_DIR", "/proc/molt-cannot-be-here", 1);
    auto schema = schema::load_schema(m_binary);
    EXPECT_TRUE(schema.ok());
}

}  // namespace
}  // namespace molt::testing
