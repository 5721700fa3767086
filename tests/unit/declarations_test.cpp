// The new version's declarations (transformers, renames, union cases) checked against both
// versions (tests/fixtures/diff/declarations.c): one that names nothing, or two things at once,
// is one problem line, which `molt check` prints and the update refuses before the pause.
#include <gtest/gtest.h>

#include <algorithm>

#include "annotations.h"
#include "dwarf_reader.h"
#include "fixture_build.h"

namespace molt::testing {
namespace {

struct Mistake {
    int number;
    std::string problem;  // the one line expected
};

const Mistake mistakes[] = {
    {1, "MOLT_TYPE_TRANSFORMER(struct itme): the new version has no type struct itme"},
    {2, "MOLT_TYPE_TRANSFORMER(struct item): declared twice (one transformer per type;"},
    {3, "MOLT_VARIABLE_TRANSFORMER(countr): the new version has no variable countr"},
    {4, "MOLT_RENAME_VARIABLE(counter, other): the old version has a variable other too, whose value the rename would drop"},
    {5, "MOLT_RENAME_TYPE(struct plain, struct item): the old version has a type struct item too"},
    {6, "MOLT_RENAME_MEMBER(struct item, cnt, count): the old version's struct item has no member cnt"},
    {7, "MOLT_RENAME_MEMBER(struct item, count, id): the old version's struct item has a member id too"},
    {8, "MOLT_UNION_CASE(struct shape, u, kind, 1, width): case 1 is given to radius already: one member per value"},
    {9, "MOLT_RENAME_MEMBER(item_t, count, id): item_t is a typedef: name the struct itself (struct item)"},
    {10, "MOLT_OPAQUE(struct holder): it holds a pointer (cell) to struct cell, whose objects this update converts"},
    {11, "MOLT_OPAQUE(struct table): it holds a pointer (slots) to pointers to struct cell, whose objects this update converts"},
};

std::vector<std::string> problems_of(const std::string &flags)
{
    Toolchain toolchain{"gcc", "-O0", ""};
    std::string include = std::string("-I") + MOLT_SOURCE_DIR + "/include";
    auto old_schema = schema::read_schema(build({"diff/declarations.c"}, toolchain, include + " -DV=1"));
    auto new_schema = schema::read_schema(build({"diff/declarations.c"}, toolchain, include + " -DV=2 " + flags));
    EXPECT_TRUE(old_schema.ok() && new_schema.ok());
    return transform::Annotations(*old_schema, *new_schema).problems();
}

TEST(Declarations, RightOnesHaveNoProblem)
{
    std::vector<std::string> problems = problems_of("");
    EXPECT_TRUE(problems.empty()) << problems.front();
    // Two variables and two members swapped: each old name is renamed away, nothing is dropped.
    problems = problems_of("-DSWAP");
    EXPECT_TRUE(problems.empty()) << problems.front();
}

// The same rename twice, as a header included by two files declares it: said once.
TEST(Declarations, OneRenameSaidTwiceIsOne)
{
    std::vector<std::string> problems = problems_of("-DSAID_TWICE");
    ASSERT_EQ(problems.size(), 1u);
    EXPECT_EQ(problems[0], "MOLT_RENAME_MEMBER(struct item, count, hits_unused): the new version's struct item has no "
                           "member hits_unused");
}

class DeclarationMistake : public ::testing::TestWithParam<Mistake> {};

TEST_P(DeclarationMistake, IsOneProblemLine)
{
    std::vector<std::string> problems = problems_of("-DMISTAKE=" + std::to_string(GetParam().number));
    ASSERT_EQ(problems.size(), 1u) << (problems.empty() ? "none" : problems.front() + " | " + problems.back());
    EXPECT_EQ(problems[0].substr(0, GetParam().problem.size()), GetParam().problem) << problems[0];
}

INSTANTIATE_TEST_SUITE_P(Each, DeclarationMistake, ::testing::ValuesIn(mistakes),
                         [](const auto &info) { return "mistake_" + std::to_string(info.param.number); });

}  // namespace
}  // namespace molt::testing
