// Golden facts: `molt schema --stable` of each fixture, built by gcc and clang at -O0 and -O2
// in every DWARF form, must equal the reviewed expectation line by line. Breaks when the reader
// misses or mangles a variable, a qualified name, a member offset, a bit-field, a type name,
// or when two compilers' DWARF stop reading the same.
#include <gtest/gtest.h>

#include <sstream>

#include "dwarf_reader.h"
#include "fixture_build.h"
#include "schema_format.h"

namespace molt::testing {
namespace {

struct Golden {
    std::string name;
    std::vector<std::string> sources;
    std::string expected;  // file under tests/fixtures
};

const Golden goldens[] = {
    {"state", {"schema/state_main.c", "schema/state_other.c"}, "schema/state.golden"},
    {"types", {"schema/types.c"}, "schema/types.golden"},
};

class SchemaGolden : public ::testing::TestWithParam<std::tuple<Golden, Toolchain>> {};

TEST_P(SchemaGolden, StableOutputMatchesExpectation)
{
    const auto &[golden, toolchain] = GetParam();
    std::string binary = build(golden.sources, toolchain);
    auto schema = schema::read_schema(binary);
    ASSERT_TRUE(schema.ok()) << schema.error().to_string();
    std::ostringstream text;
    schema::write_schema_text(*schema, text, schema::Addresses::Hide);

    std::istringstream actual(text.str()), expected(read_text(fixture(golden.expected)));
    std::string actual_line, expected_line;
    int line = 0;
    while (true) {
        bool more_actual = static_cast<bool>(std::getline(actual, actual_line));
        bool more_expected = static_cast<bool>(std::getline(expected, expected_line));
        ++line;
        if (!more_actual && !more_expected)
            break;
        ASSERT_EQ(more_actual ? actual_line : "<end>", more_expected ? expected_line : "<end>")
            << golden.expected << ":" << line << " (" << toolchain.label << ")";
    }
}

std::string name_of(const ::testing::TestParamInfo<std::tuple<Golden, Toolchain>> &info)
{
    return std::get<0>(info.param).name + "_" + std::get<1>(info.param).label;
}

INSTANTIATE_TEST_SUITE_P(AllCompilers, SchemaGolden,
                         ::testing::Combine(::testing::ValuesIn(goldens), ::testing::ValuesIn(schema_toolchains())),
                         name_of);

}  // namespace
}  // namespace molt::testing
