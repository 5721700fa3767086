// `molt old-types` round trip: the header written for a fixture rich in tricky layouts compiles
// with gcc and clang without a warning, and its _Static_asserts (every size and offset of the
// schema) hold. Also: two versions' headers side by side do not clash, output is deterministic.
// Breaks when a layout is reproduced wrongly (packing, padding, bit-fields, alignment), when a
// declarator is spelled wrongly, or when definitions come out of order.
#include <gtest/gtest.h>

#include <sstream>

#include "c_header.h"
#include "dwarf_reader.h"
#include "fixture_build.h"

namespace molt::testing {
namespace {

std::string header_for(const std::string &binary, const std::string &prefix)
{
    auto schema = schema::read_schema(binary);
    EXPECT_TRUE(schema.ok());
    std::ostringstream header;
    schema::write_c_header(*schema, {prefix}, header);
    return header.str();
}

// Compiles `main_source` (which includes headers in the scratch directory) with both compilers.
void expect_compiles_cleanly(const std::string &name, const std::string &main_source)
{
    std::string source = scratch_directory() + "/" + name + ".c";
    write_text(source, main_source);
    for (std::string compiler : {"gcc", "clang"}) {
        int status = 0;
        std::string messages = run(compiler + " -std=c11 -Wall -Wextra -pedantic-errors -Wno-gnu -Wno-pedantic -c " +
                                       source + " -o /dev/null 2>&1",
                                   &status);
        EXPECT_EQ(status, 0) << compiler << ": " << messages;
        EXPECT_EQ(messages, "") << compiler;
    }
}

struct RoundTrip {
    std::string name;
    std::vector<std::string> sources;
};

class OldTypesRoundTrip : public ::testing::TestWithParam<std::tuple<RoundTrip, Toolchain>> {};

TEST_P(OldTypesRoundTrip, HeaderCompilesAndEveryLayoutCheckHolds)
{
    const auto &[fixture_case, toolchain] = GetParam();
    std::string binary = build(fixture_case.sources, toolchain);
    std::string header = header_for(binary, "molt_old_");
    std::string name = fixture_case.name + "_" + toolchain.label;
    write_text(scratch_directory() + "/" + name + ".h", header);
    // Every named aggregate got its checks (a header without them proves nothing).
    EXPECT_NE(header.find("_Static_assert(sizeof("), std::string::npos);
    EXPECT_NE(header.find("_Static_assert(offsetof("), std::string::npos);
    expect_compiles_cleanly(name, "#include \"" + name + ".h\"\nint main(void) { return 0; }\n");
}

const RoundTrip round_trips[] = {
    {"types", {"schema/types.c"}},
    {"state", {"schema/state_main.c", "schema/state_other.c"}},
};

const Toolchain header_toolchains[] = {
    {"gcc", "-O0 -gdwarf-5", "gcc_O0"},
    {"gcc", "-O2 -gdwarf-4", "gcc_O2_dwarf4"},
    {"clang", "-O0 -gdwarf-5", "clang_O0"},
    {"clang", "-O2 -gdwarf-4", "clang_O2_dwarf4"},
};

INSTANTIATE_TEST_SUITE_P(Fixtures, OldTypesRoundTrip,
                         ::testing::Combine(::testing::ValuesIn(round_trips), ::testing::ValuesIn(header_toolchains)),
                         [](const auto &info) { return std::get<0>(info.param).name + "_" + std::get<1>(info.param).label; });

TEST(OldTypes, TheRenamedTypesMatchTheOriginalLayout)
{
    // Include the original types and the header in one unit and compare them member by member.
    std::string binary = build({"schema/types.c"}, {"gcc", "-O2", ""});
    write_text(scratch_directory() + "/original_types.h", header_for(binary, "molt_old_"));
    std::string checks = "#include <stddef.h>\n#include \"original_types.h\"\n#define main original_main\n#include \"" +
                         fixture("schema/types.c") + "\"\n";
    for (const char *check : {"sizeof(struct everything) == sizeof(struct molt_old_everything)",
                              "offsetof(struct everything, precise) == offsetof(struct molt_old_everything, precise)",
                              "offsetof(struct flags, tail) == offsetof(struct molt_old_flags, tail)",
                              "sizeof(struct packed_header) == sizeof(struct molt_old_packed_header)",
                              "sizeof(enum small_enum) == sizeof(enum molt_old_small_enum)",
                              "sizeof(enum wide_enum) == sizeof(enum molt_old_wide_enum)",
                              "offsetof(struct with_anonymous, high) == offsetof(struct molt_old_with_anonymous, high)",
                              "(int)SMALL_B == (int)molt_old_SMALL_B", "(long long)WIDE_B == (long long)molt_old_WIDE_B"})
        checks += std::string("_Static_assert(") + check + ", \"" + check + "\");\n";
    expect_compiles_cleanly("original_and_old", checks);
}

TEST(OldTypes, BitFieldsReadTheSameBits)
{
    // The strongest check for bit-fields: write through the original, read through the header.
    std::string binary = build({"schema/types.c"}, {"clang", "-O0", ""});
    write_text(scratch_directory() + "/bits_types.h", header_for(binary, "old_"));
    std::string program = "#include <string.h>\n#include \"bits_types.h\"\n#define main original_main\n#include \"" +
                          fixture("schema/types.c") +
                          "\"\n#undef main\nint main(void) {\n"
                          "  struct flags f = {1, 5, -7, 0x12345678ULL, 9};\n"
                          "  struct old_flags o; memcpy(&o, &f, sizeof o);\n"
                          "  return !(o.ready == 1 && o.mode == 5 && o.delta == -7 && o.wide == 0x12345678ULL && o.tail == 9);\n}\n";
    std::string source = scratch_directory() + "/bits.c";
    write_text(source, program);
    for (std::string compiler : {"gcc", "clang"}) {
        int status = 0;
        std::string output = scratch_directory() + "/bits-" + compiler;
        std::string messages = run(compiler + " -std=c11 " + source + " -o " + output + " 2>&1 && " + output, &status);
        EXPECT_EQ(status, 0) << compiler << ": " << messages;
    }
}

TEST(OldTypes, TwoVersionsSideBySideDoNotClash)
{
    std::string v1 = build({"schema/state_main.c", "schema/state_other.c"}, {"gcc", "-O0", ""});
    std::string v2 = build({"schema/state_main.c", "schema/state_other.c"}, {"clang", "-O2", ""});
    write_text(scratch_directory() + "/v1_types.h", header_for(v1, "v1_"));
    write_text(scratch_directory() + "/v2_types.h", header_for(v2, "v2_"));
    expect_compiles_cleanly("side_by_side", "#include \"v1_types.h\"\n#include \"v2_types.h\"\n"
                                            "struct v1_point a; struct v2_point b;\n"
                                            "struct v1_node__state_main_c *n1; struct v1_node__state_other_c *n2;\n");
}

TEST(OldTypes, OutputIsDeterministic)
{
    std::string binary = build({"schema/types.c"}, {"gcc", "-O0", ""});
    EXPECT_EQ(header_for(binary, "molt_old_"), header_for(binary, "molt_old_"));
}

}  // namespace
}  // namespace molt::testing
