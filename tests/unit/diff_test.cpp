// Diff classification: one version pair per kind of change (tests/fixtures/diff/cases.c),
// built by gcc -O0 and clang -O2. Breaks when a change is put in the wrong class, when
// `molt check` would list the wrong line, or when the member-level report is wrong.
#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>

#include "diff.h"
#include "diff_format.h"
#include "dwarf_reader.h"
#include "fixture_build.h"

namespace molt::testing {
namespace {

using schema::Status;
using schema::Verdict;

struct Case {
    std::string name;
    Verdict verdict;          // of the whole update
    std::string finding;      // a line `molt check` must print (empty: none at all)
    std::string variable;     // a variable whose change is checked
    Status variable_status;
    std::string reason_part;  // part of that variable's reason
};

const Case cases[] = {
    {"identical", Verdict::Identical, "", "head", Status::Unchanged, ""},
    {"int_widened", Verdict::Convertible, "", "counter", Status::Changed, "widened"},
    {"int_narrowed", Verdict::Convertible, "", "counter", Status::Changed, "narrowed: range checked"},
    {"sign_changed", Verdict::Convertible, "", "counter", Status::Changed, "signedness changed"},
    {"float_to_double", Verdict::Convertible, "", "ratio", Status::Changed, "floating point widened"},
    {"double_to_float", Verdict::NeedsTransformer, "variable ratio: double -> float: needs a transformer", "ratio",
     Status::Changed, "narrowed"},
    {"enum_by_name", Verdict::Convertible, "", "paint", Status::Changed, "enumerators matched by name"},
    {"enum_removed", Verdict::NeedsTransformer, "enum color: needs a transformer (enumerator BLUE was removed)", "paint",
     Status::Changed, "BLUE"},
    {"array_grown", Verdict::Convertible, "", "slots", Status::Changed, "array grown: new elements zeroed"},
    {"array_shrunk", Verdict::Convertible, "", "slots", Status::Changed, "array shrunk"},
    {"member_added", Verdict::Convertible, "", "table", Status::Changed, "members converted by name"},
    {"member_removed", Verdict::Convertible, "", "table", Status::Changed, "members converted by name"},
    {"member_moved", Verdict::Convertible, "", "table", Status::Changed, "members converted by name"},
    {"member_retyped", Verdict::Convertible, "", "table", Status::Changed, "members converted by name"},
    {"nested_struct", Verdict::Convertible, "", "server", Status::Changed, "members converted by name"},
    {"pointer_to_changed", Verdict::Convertible, "", "head", Status::Changed, "the pointee is converted"},
    {"scalar_to_pointer", Verdict::NeedsTransformer, "struct entry.value: int -> char *: needs a transformer", "head",
     Status::Changed, "pointee needs a transformer"},
    {"struct_became_another", Verdict::NeedsTransformer,
     "variable catalog: struct list -> struct tree: needs a transformer", "catalog", Status::Changed, "became"},
    {"flexible_elements_changed", Verdict::NeedsTransformer,
     "struct blob.data: int [] -> long []: needs a transformer (the elements of an array of unknown length changed",
     "blob", Status::Changed, "needs a transformer"},
    {"tag_dropped", Verdict::NeedsTransformer,
     "variable cursor: needs a transformer (the pointee struct node became an anonymous struct (typedef node_t): "
     "keep its tag (struct node) so that Molt can match the two)",
     "cursor", Status::Changed, "keep its tag"},
    {"pointer_deepened", Verdict::NeedsTransformer,
     "variable cursor: struct node * -> struct node **: needs a transformer (the pointee struct node became a pointer "
     "(struct node *))",
     "cursor", Status::Changed, "became a pointer"},
    {"union_layout", Verdict::NeedsTransformer, "variable cell: needs a transformer (the union's layout changed)", "cell",
     Status::Changed, "union"},
    {"function_pointer_prototype", Verdict::NeedsTransformer,
     "handler_fn: needs a transformer (the function-pointer prototype changed)", "handler", Status::Changed,
     "prototype"},
    {"variable_added_removed", Verdict::Convertible, "", "old_only", Status::Removed, "dropped"},
    {"bit_field_widened", Verdict::Convertible, "", "flags", Status::Changed, "members converted by name"},
};

const Toolchain toolchains[] = {{"gcc", "-O0", "gcc_O0"}, {"clang", "-O2", "clang_O2"}};

class DiffCase : public ::testing::TestWithParam<std::tuple<Case, Toolchain>> {};

schema::SchemaDiff diff_case(const std::string &name, const Toolchain &toolchain)
{
    std::string old_binary = build({"diff/cases.c"}, toolchain, "-DCASE_" + name + " -DV=1");
    std::string new_binary = build({"diff/cases.c"}, toolchain, "-DCASE_" + name + " -DV=2");
    auto old_schema = schema::read_schema(old_binary);
    auto new_schema = schema::read_schema(new_binary);
    EXPECT_TRUE(old_schema.ok() && new_schema.ok());
    return schema::diff_schemas(*old_schema, *new_schema);
}

TEST_P(DiffCase, Classification)
{
    const auto &[expected, toolchain] = GetParam();
    schema::SchemaDiff diff = diff_case(expected.name, toolchain);
    EXPECT_EQ(schema::verdict_word(diff.verdict()), std::string(schema::verdict_word(expected.verdict)));
    if (expected.finding.empty()) {
        EXPECT_TRUE(diff.needs_transformer.empty()) << diff.needs_transformer.front().to_string();
    } else {
        ASSERT_EQ(diff.needs_transformer.size(), 1u);
        EXPECT_EQ(diff.needs_transformer[0].to_string().substr(0, expected.finding.size()), expected.finding);
    }
    const schema::VariableChange *change = nullptr;
    for (const auto &candidate : diff.variables)
        if (candidate.name == expected.variable)
            change = &candidate;
    ASSERT_NE(change, nullptr) << "no change listed for variable " << expected.variable;
    EXPECT_EQ(static_cast<int>(change->status), static_cast<int>(expected.variable_status));
    EXPECT_NE(change->reason.find(expected.reason_part), std::string::npos) << change->reason;
}

INSTANTIATE_TEST_SUITE_P(OneKindEach, DiffCase, ::testing::Combine(::testing::ValuesIn(cases), ::testing::ValuesIn(toolchains)),
                         [](const auto &info) { return std::get<0>(info.param).name + "_" + std::get<1>(info.param).label; });

const schema::TypeChange &type_change(const schema::SchemaDiff &diff, const std::string &name)
{
    for (const auto &change : diff.types)
        if (change.name == name)
            return change;
    ADD_FAILURE() << "no change listed for " << name;
    static schema::TypeChange none;
    return none;
}

const schema::MemberChange *member(const schema::TypeChange &change, const std::string &name)
{
    for (const auto &candidate : change.members)
        if (candidate.name == name)
            return &candidate;
    return nullptr;
}

TEST(DiffMembers, AddedMemberIsZeroedAtItsOffset)
{
    auto diff = diff_case("member_added", toolchains[0]);
    const auto &entry = type_change(diff, "struct entry");
    EXPECT_EQ(entry.old_size, 16u);
    EXPECT_EQ(entry.new_size, 24u);
    ASSERT_EQ(entry.members.size(), 1u);
    EXPECT_EQ(entry.members[0].status, Status::Added);
    EXPECT_EQ(entry.members[0].name, "hits");
    EXPECT_EQ(entry.members[0].new_offset, 16u);
}

TEST(DiffMembers, MovedMembersKeepTheirTypeAndReportOffsets)
{
    auto diff = diff_case("member_moved", toolchains[0]);
    const auto &entry = type_change(diff, "struct entry");
    const auto *key = member(entry, "key");
    ASSERT_NE(key, nullptr);
    EXPECT_TRUE(key->moved);
    EXPECT_FALSE(key->retyped);
    EXPECT_EQ(key->old_offset, 0u);
    EXPECT_EQ(key->new_offset, 8u);
}

TEST(DiffMembers, RetypedMemberIsWidenedMovedAndResized)
{
    auto diff = diff_case("member_retyped", toolchains[1]);
    const auto *value = member(type_change(diff, "struct entry"), "value");
    ASSERT_NE(value, nullptr);
    EXPECT_TRUE(value->retyped && value->moved && value->resized);
    EXPECT_EQ(value->old_type, "int");
    EXPECT_EQ(value->new_type, "long long");
    EXPECT_EQ(value->verdict, Verdict::Convertible);
}

TEST(DiffMembers, RemovedMemberIsReported)
{
    auto diff = diff_case("member_removed", toolchains[0]);
    const auto *hits = member(type_change(diff, "struct entry"), "hits");
    ASSERT_NE(hits, nullptr);
    EXPECT_EQ(hits->status, Status::Removed);
}

TEST(DiffMembers, BitFieldWidthChangeIsConvertible)
{
    auto diff = diff_case("bit_field_widened", toolchains[1]);
    const auto *mode = member(type_change(diff, "struct flags"), "mode");
    ASSERT_NE(mode, nullptr);
    EXPECT_TRUE(mode->resized);
    EXPECT_NE(mode->reason.find("bit-field widened"), std::string::npos);
}

// MOLT_OPAQUE copies bytes: a member that kept its name but moved, or a type that shrank, loses
// values without an error, so check and the update warn of it; bytes that only changed their
// members' names (four words read as sixteen bytes), or grew in place, are what it is for.
TEST(DiffOpaque, ALayoutChangedUnderBytesCopiedIsWarnedOf)
{
    std::string include = std::string("-I") + MOLT_SOURCE_DIR + "/include";
    auto old_schema = schema::read_schema(build({"diff/cases.c"}, toolchains[0], include + " -DCASE_opaque -DV=1"));
    auto new_schema = schema::read_schema(build({"diff/cases.c"}, toolchains[0], include + " -DCASE_opaque -DV=2"));
    ASSERT_TRUE(old_schema.ok() && new_schema.ok());
    std::vector<std::string> warnings = schema::value_loss_warnings(schema::diff_schemas(*old_schema, *new_schema));
    auto said = [&](const std::string &start, const std::string &part) {
        return std::count_if(warnings.begin(), warnings.end(), [&](const std::string &warning) {
            return warning.rfind(start, 0) == 0 && warning.find(part) != std::string::npos;
        });
    };
    EXPECT_EQ(said("MOLT_OPAQUE(\"struct state\") copies each object's bytes as they lie, but members kept their names "
                   "and moved: ",
                   "count (offset 0 -> 8)"),
              1);
    EXPECT_EQ(said("MOLT_OPAQUE(\"struct state\")", "total (offset 8 -> 0)"), 1);
    EXPECT_EQ(said("MOLT_OPAQUE(\"struct window\") copies each object's bytes as they lie, the first 16 of them",
                   "shrank from 32 bytes, so the last 16 of each object are dropped"),
              1);
    EXPECT_EQ(said("MOLT_OPAQUE(\"struct blob\")", "tag (offset 0 -> 8)"), 1);  // declared as blob_t
    EXPECT_EQ(said("MOLT_OPAQUE(\"struct digest\")", ""), 0);
    EXPECT_EQ(said("MOLT_OPAQUE(\"struct label\")", ""), 0);
    EXPECT_EQ(warnings.size(), 3u) << ::testing::PrintToString(warnings);
}

// A bit-field that moves within its byte is told by its bits (its byte offset did not change).
TEST(DiffMembers, ABitFieldMovedWithinItsByteIsToldByItsBits)
{
    auto diff = diff_case("bit_field_moved", toolchains[1]);
    const auto *mode = member(type_change(diff, "struct flags"), "mode");
    ASSERT_NE(mode, nullptr);
    EXPECT_TRUE(mode->moved && mode->bit_field);
    EXPECT_EQ(mode->move(), "bit 1 -> 2");
    EXPECT_EQ(mode->reason, "moved: copied to its new bits");
    std::ostringstream text;
    schema::write_diff_text(diff, text);
    EXPECT_NE(text.str().find("member mode: unsigned int, bit 1 -> 2: convertible"), std::string::npos) << text.str();
}

// A named union is met at each place that holds it: the cases of one holder do not cover the
// other, as the update judges them (it refused what check had called covered).
TEST(DiffUnion, ANamedUnionInTwoStructsNeedsTheCasesOfEach)
{
    std::string include = std::string("-I") + MOLT_SOURCE_DIR + "/include";
    auto diff_with = [&](const std::string &flags) {
        auto old_schema = schema::read_schema(build({"diff/cases.c"}, toolchains[0], include + " -DCASE_union_two_places -DV=1"));
        auto new_schema = schema::read_schema(build({"diff/cases.c"}, toolchains[0], include + " -DCASE_union_two_places -DV=2 " + flags));
        EXPECT_TRUE(old_schema.ok() && new_schema.ok());
        return schema::diff_schemas(*old_schema, *new_schema);
    };
    schema::SchemaDiff one = diff_with("");
    ASSERT_EQ(one.needs_transformer.size(), 1u);
    EXPECT_EQ(one.needs_transformer[0].where, "struct right.u");
    ASSERT_EQ(one.covered.size(), 1u);
    EXPECT_EQ(one.covered[0].where, "struct left.u");
    EXPECT_EQ(one.verdict(), Verdict::NeedsTransformer);
    schema::SchemaDiff both = diff_with("-DCOVER_BOTH");
    EXPECT_TRUE(both.needs_transformer.empty()) << both.needs_transformer.front().to_string();
    EXPECT_EQ(both.covered.size(), 2u);
    EXPECT_EQ(both.verdict(), Verdict::Convertible);
    // A case whose member needs a transformer itself leaves its union uncovered, as the update
    // finds when it plans that case.
    schema::SchemaDiff ratio = diff_with("-DCOVER_BOTH -DRATIO_INT");
    std::string left;
    for (const schema::Finding &finding : ratio.needs_transformer)
        if (finding.where == "struct left.u")
            left = finding.to_string();
    EXPECT_NE(left.find("MOLT_UNION_CASE does not cover it: its case ratio (float -> int) needs a transformer itself"),
              std::string::npos)
        << left;
}

// Which findings lie within a type or a member: by whole names (a covered "struct shapes.u" said
// nothing of "struct shape"), and a file's dots are not a member's.
TEST(DiffPlaces, APlaceLiesWithinItsTypeByWholeNames)
{
    EXPECT_TRUE(schema::place_within("struct shape.u", "struct shape"));
    EXPECT_TRUE(schema::place_within("struct shape", "struct shape"));
    EXPECT_TRUE(schema::place_within("struct table.buckets[]", "struct table.buckets"));
    EXPECT_FALSE(schema::place_within("struct shapes.u", "struct shape"));
    EXPECT_FALSE(schema::place_within("struct shap", "struct shape"));
    using Split = std::pair<std::string, std::string>;
    EXPECT_EQ(schema::split_place("kvd.c/struct x.key[]"), Split("kvd.c/struct x", "key[]"));
    EXPECT_EQ(schema::split_place("struct shape.u.circle"), Split("struct shape", "u.circle"));
    EXPECT_EQ(schema::split_place("variable kvd.c/store"), Split("variable kvd.c/store", ""));
    EXPECT_EQ(schema::split_place("union value"), Split("union value", ""));
}

TEST(DiffVariables, RemovedAndAddedOfOneTypeAreRenameCandidates)
{
    auto diff = diff_case("variable_added_removed", toolchains[0]);
    ASSERT_EQ(diff.renames.size(), 1u);
    EXPECT_EQ(diff.renames[0].old_name, "old_only");
    EXPECT_EQ(diff.renames[0].new_name, "new_only");
}

// A single-file program renamed between versions (kvd.c -> kvd2.c): its statics still match.
TEST(DiffVariables, StaticsMatchAcrossARenamedFile)
{
    std::string directory = scratch_directory();
    write_text(directory + "/kvd.c", read_text(fixture("diff/cases.c")));
    write_text(directory + "/kvd2.c", read_text(fixture("diff/cases.c")));
    std::string old_binary = directory + "/renamed-v1", new_binary = directory + "/renamed-v2";
    int status = 0;
    run("cd " + directory + " && gcc -g -DCASE_static_in_renamed_file kvd.c -o " + old_binary + " && " +
            "gcc -g -DCASE_static_in_renamed_file kvd2.c -o " + new_binary, &status);
    ASSERT_EQ(status, 0);
    auto diff = schema::diff_schemas(*schema::read_schema(old_binary), *schema::read_schema(new_binary));
    ASSERT_EQ(diff.unit_renames.size(), 1u);
    EXPECT_EQ(diff.unit_renames[0], "kvd.c -> kvd2.c");
    bool matched = false;
    for (const auto &change : diff.variables)
        if (change.name == "kvd.c/requests") {
            matched = true;
            EXPECT_EQ(change.new_name, "kvd2.c/requests");
            EXPECT_EQ(change.status, Status::Unchanged);
        }
    EXPECT_TRUE(matched);
}

// A static renamed in a renamed file (requests -> served, kvd.c -> kvd2.c) is offered as a rename.
TEST(DiffVariables, AStaticRenamedInARenamedFileIsARenameCandidate)
{
    std::string directory = scratch_directory();
    write_text(directory + "/kvd.c", read_text(fixture("diff/cases.c")));
    write_text(directory + "/kvd2.c", read_text(fixture("diff/cases.c")));
    std::string old_binary = directory + "/renamed-v1", new_binary = directory + "/renamed-v2";
    int status = 0;
    run("cd " + directory + " && gcc -g -DCASE_static_in_renamed_file kvd.c -o " + old_binary + " && " +
            "gcc -g -DCASE_static_in_renamed_file -Drequests=served kvd2.c -o " + new_binary, &status);
    ASSERT_EQ(status, 0);
    auto diff = schema::diff_schemas(*schema::read_schema(old_binary), *schema::read_schema(new_binary));
    ASSERT_EQ(diff.renames.size(), 1u);
    EXPECT_EQ(diff.renames[0].old_name, "kvd.c/requests");
    EXPECT_EQ(diff.renames[0].new_name, "kvd2.c/served");
}

// Each variable whose own type changed needs its own transformer: two lines, not one.
TEST(DiffVariables, EachChangedScalarIsListed)
{
    auto diff = diff_case("two_scalars_to_pointers", toolchains[0]);
    ASSERT_EQ(diff.needs_transformer.size(), 2u);
    EXPECT_EQ(diff.needs_transformer[0].where, "variable first");
    EXPECT_EQ(diff.needs_transformer[1].where, "variable second");
}

// A changed typedef is reported once, under its name, not again for each variable using it.
TEST(DiffTypes, ChangedTypedefIsListedOnce)
{
    auto diff = diff_case("function_pointer_prototype", toolchains[0]);
    ASSERT_EQ(diff.needs_transformer.size(), 1u);
    EXPECT_EQ(diff.needs_transformer[0].where, "handler_fn");
}

TEST(DiffTypes, RecursiveTypeComparisonTerminatesAndFindsTheChange)
{
    auto diff = diff_case("pointer_to_changed", toolchains[1]);
    const auto *next = member(type_change(diff, "struct entry"), "next");
    ASSERT_NE(next, nullptr);
    EXPECT_TRUE(next->moved);
    EXPECT_EQ(next->verdict, Verdict::Convertible);
}

}  // namespace
}  // namespace molt::testing
