// One test per DWARF pitfall the reader must handle. Each first checks, with eu-readelf, that the
// fixture build really contains the construct (so the test cannot pass by the compiler no
// longer emitting it), then checks what the schema made of it.
#include <gtest/gtest.h>

#include <map>
#include <sstream>

#include "dwarf_reader.h"
#include "schema_cache.h"
#include "fixture_build.h"

namespace molt::testing {
namespace {

const std::vector<std::string> state_sources = {"schema/state_main.c", "schema/state_other.c"};

std::string dwarf_dump(const std::string &binary) { return run("eu-readelf --debug-dump=info " + binary + " 2>&1"); }

// Symbol values from `nm`, the linker's word against which DWARF addresses are checked.
std::map<std::string, std::uint64_t> symbols(const std::string &binary)
{
    std::map<std::string, std::uint64_t> values;
    std::istringstream lines(run("nm " + binary));
    std::string line;
    while (std::getline(lines, line)) {
        std::istringstream fields(line);
        std::string address, kind, name;
        if (fields >> address >> kind >> name)  // undefined symbols have no address: two fields
            values[name] = std::stoull(address, nullptr, 16);
    }
    return values;
}

schema::Schema read(const std::string &binary)
{
    auto schema = schema::read_schema(binary);
    EXPECT_TRUE(schema.ok()) << schema.error().to_string();
    return schema.ok() ? std::move(*schema) : schema::Schema{};
}

const schema::Type &struct_named(const schema::Schema &schema, const std::string &name)
{
    for (const auto &type : schema.types)
        if (type.kind == schema::TypeKind::Struct && type.name == name)
            return type;
    ADD_FAILURE() << "no struct " << name;
    static schema::Type none;
    return none;
}

// gcc: `extern int shared_counter;` then `int shared_counter = 7;` gives a declaration DIE and
// a definition DIE with DW_AT_specification pointing back at it (name and type live there).
TEST(DwarfPitfalls, GccSpecificationDeclarationAndDefinitionAreOneVariable)
{
    std::string binary = build(state_sources, {"gcc", "-O0 -gdwarf-5", ""});
    ASSERT_NE(dwarf_dump(binary).find("specification"), std::string::npos);
    auto schema = read(binary);
    const schema::Variable *counter = schema.find_variable("shared_counter");
    ASSERT_NE(counter, nullptr);
    EXPECT_TRUE(counter->external);
    EXPECT_EQ(counter->size, 4u);
    EXPECT_EQ(counter->address, symbols(binary).at("shared_counter"));
}

// clang, DWARF 5: DW_OP_addrx is an index into .debug_addr, not an address.
TEST(DwarfPitfalls, ClangAddrxAddressesResolveThroughDebugAddr)
{
    for (std::string level : {"-O0", "-O2"}) {
        std::string binary = build(state_sources, {"clang", level + " -gdwarf-5", ""});
        ASSERT_NE(dwarf_dump(binary).find("addrx"), std::string::npos);
        auto schema = read(binary);
        auto values = symbols(binary);
        for (const char *name : {"shared_counter", "table", "origin", "heaviest_seen"})
            EXPECT_EQ(schema.find_variable(name)->address, values.at(name)) << name << " " << level;
        // Statics: clang names their symbols `function.variable` or plain `variable`.
        EXPECT_EQ(schema.find_variable("state_main.c/serve#served")->address, values.at("serve.served"));
        EXPECT_EQ(schema.find_variable("state_main.c/bump#calls")->address, values.at("bump.calls"));
        EXPECT_EQ(schema.find_variable("state_main.c/requests")->address, values.at("requests"));
    }
}

void expect_flags_layout(const schema::Schema &schema)
{
    const schema::Type &flags = struct_named(schema, "flags");
    ASSERT_EQ(flags.members.size(), 5u);
    std::vector<std::pair<std::uint64_t, std::uint32_t>> bits;
    for (const auto &member : flags.members)
        bits.emplace_back(member.bit_offset, member.bit_size);
    std::vector<std::pair<std::uint64_t, std::uint32_t>> expected = {{0, 1}, {1, 3}, {4, 5}, {64, 40}, {0, 0}};
    EXPECT_EQ(bits, expected);
    EXPECT_EQ(flags.members[4].offset, 13u);  // `tail`, after the 40-bit field
}

// DW_AT_bit_offset (DWARF 2-4 style) counts from the most significant bit of the storage unit.
// gcc uses it for DWARF 4; clang 14 uses it even for DWARF 5.
TEST(DwarfPitfalls, BigEndianBitOffset)
{
    for (auto [compiler, version] : {std::pair{"gcc", "-gdwarf-4"}, std::pair{"clang", "-gdwarf-5"}}) {
        std::string binary = build({"schema/types.c"}, {compiler, std::string("-O0 ") + version, ""});
        std::string dump = dwarf_dump(binary);
        ASSERT_NE(dump.find(" bit_offset "), std::string::npos) << compiler;
        ASSERT_EQ(dump.find("data_bit_offset"), std::string::npos) << compiler;
        expect_flags_layout(read(binary));
    }
}

// DW_AT_data_bit_offset (gcc, DWARF 5) counts from the start of the struct.
TEST(DwarfPitfalls, DataBitOffsetOfDwarf5)
{
    std::string binary = build({"schema/types.c"}, {"gcc", "-O0 -gdwarf-5", ""});
    ASSERT_NE(dwarf_dump(binary).find("data_bit_offset"), std::string::npos);
    expect_flags_layout(read(binary));
}

// DWARF 2: DW_AT_data_member_location is an expression (DW_OP_plus_uconst N), not a constant.
TEST(DwarfPitfalls, MemberLocationAsExpression)
{
    std::string binary = build({"schema/types.c"}, {"gcc", "-O0 -gdwarf-2 -gstrict-dwarf", ""});
    ASSERT_NE(dwarf_dump(binary).find("plus_uconst"), std::string::npos);
    auto schema = read(binary);
    const schema::Type &everything = struct_named(schema, "everything");
    ASSERT_EQ(everything.members.size(), 13u);
    EXPECT_EQ(everything.members[8].name, "block");
    EXPECT_EQ(everything.members[8].offset, 256u);
    EXPECT_EQ(everything.members[12].offset, 320u);
    expect_flags_layout(schema);
}

// Type units: gcc -fdebug-types-section moves types out of the compile units (DWARF 4 into
// .debug_types, DWARF 5 into type units of .debug_info) and leaves DW_AT_signature stubs.
TEST(DwarfPitfalls, TypeUnitsAreFollowed)
{
    for (std::string version : {"-gdwarf-4", "-gdwarf-5"}) {
        std::string binary = build(state_sources, {"gcc", "-O0 " + version + " -fdebug-types-section", ""});
        std::string dump = dwarf_dump(binary);
        ASSERT_TRUE(dump.find("Type unit") != std::string::npos || dump.find("type_unit") != std::string::npos ||
                    run("readelf -S " + binary).find(".debug_types") != std::string::npos)
            << version;
        auto schema = read(binary);
        const schema::Variable *heaviest = schema.find_variable("state_other.c/heaviest");
        ASSERT_NE(heaviest, nullptr);
        EXPECT_EQ(schema::qualified_type_name(schema, heaviest->type), "state_other.c/struct node");
        EXPECT_EQ(heaviest->size, 16u);
    }
}

// Link-time optimisation: gcc names every unit "<artificial>", so two files' statics of one name
// would be told apart by their order in memory only (`<artificial>/mode`, `<artificial>/mode@2`),
// which a relink may swap, and an update with them. They keep the file they were declared in.
TEST(DwarfPitfalls, StaticsUnderLinkTimeOptimisationKeepTheirFile)
{
    std::string binary = build(state_sources, {"gcc", "-O2 -flto", ""});
    ASSERT_NE(dwarf_dump(binary).find("<artificial>"), std::string::npos) << "no LTO unit in this build";
    auto schema = read(binary);
    for (const std::string name : {"state_main.c/mode", "state_other.c/mode"})
        EXPECT_NE(schema.find_variable(name), nullptr) << name;
    for (const schema::Variable &variable : schema.variables)
        EXPECT_EQ(variable.qualified_name.find("<artificial>"), std::string::npos) << variable.qualified_name;
}

// A C++ unit in a C program: named with its language (`molt old-types` refuses it: a header of
// its types would not compile), warned of once, and kept through the cache. A C-only build has none.
TEST(DwarfPitfalls, UnitsInOtherLanguagesAreNamedAndWarnedOf)
{
    std::vector<std::string> sources = state_sources;
    sources.push_back("schema/engine.cpp");
    auto mixed = read(build(sources, {"gcc", "-O0", ""}));
    EXPECT_EQ(mixed.foreign_units, std::vector<std::string>{"engine.cpp (C++)"});
    bool warned = false;
    for (const std::string &warning : mixed.warnings)
        warned = warned || warning.find("1 compile unit is not C (engine.cpp (C++))") != std::string::npos;
    EXPECT_TRUE(warned);
    auto again = schema::deserialize_schema(schema::serialize_schema(mixed));
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(again->foreign_units, mixed.foreign_units);
    EXPECT_TRUE(read(build(state_sources, {"clang", "-O2", ""})).foreign_units.empty());
}

// Typedef and qualifier chains: gcc writes `volatile const`, clang `const volatile`; the schema
// holds one canonical chain, and gcc's const on both an array and its element is one const.
TEST(DwarfPitfalls, QualifierChainsAreCanonical)
{
    for (std::string compiler : {"gcc", "clang"}) {
        auto schema = read(build({"schema/types.c"}, {compiler, "-O0 -gdwarf-5", ""}));
        bool found = false;
        for (schema::TypeId id = 0; id < schema.types.size(); ++id)
            if (schema.types[id].kind == schema::TypeKind::Typedef && schema.types[id].name == "cv_pointer") {
                found = true;
                EXPECT_EQ(schema::type_to_c(schema, schema.types[id].target), "const volatile int *const");
            }
        EXPECT_TRUE(found);
        auto state = read(build(state_sources, {compiler, "-O0 -gdwarf-5", ""}));
        EXPECT_EQ(schema::type_to_c(state, state.find_variable("greeting")->type), "const char [6]");
        EXPECT_TRUE(state.find_variable("greeting")->read_only);
    }
}

// Abstract origins: at -O2 gcc emits `bump` as an abstract instance (DW_AT_inline) and its
// inlined copies refer to it; clang puts `bump`'s static under a subprogram with no name.
// Either way there is one `state_main.c/bump#calls`, at the symbol's address.
TEST(DwarfPitfalls, StaticsOfInlinedFunctionsAreNamedByTheirFunction)
{
    for (std::string compiler : {"gcc", "clang"}) {
        std::string binary = build(state_sources, {compiler, "-O2 -gdwarf-5", ""});
        ASSERT_NE(dwarf_dump(binary).find("abstract_origin"), std::string::npos);
        auto schema = read(binary);
        const schema::Variable *calls = schema.find_variable("state_main.c/bump#calls");
        ASSERT_NE(calls, nullptr) << compiler;
        EXPECT_EQ(calls->function, "bump");
        int named_calls = 0;
        for (const auto &variable : schema.variables)
            named_calls += variable.name == "calls";
        EXPECT_EQ(named_calls, 1) << compiler;
    }
}

// Same-named statics and same-named different structs in two files stay apart.
TEST(DwarfPitfalls, SameNamesInTwoFilesAreQualifiedByFile)
{
    auto schema = read(build(state_sources, {"clang", "-O2 -gdwarf-4", ""}));
    ASSERT_NE(schema.find_variable("state_main.c/mode"), nullptr);
    ASSERT_NE(schema.find_variable("state_other.c/mode"), nullptr);
    EXPECT_NE(schema.find_variable("state_main.c/mode")->address, schema.find_variable("state_other.c/mode")->address);
    int nodes = 0, points = 0;
    for (const auto &type : schema.types) {
        nodes += type.kind == schema::TypeKind::Struct && type.name == "node";
        points += type.kind == schema::TypeKind::Struct && type.name == "point";
    }
    EXPECT_EQ(nodes, 2);   // different definitions
    EXPECT_EQ(points, 1);  // the same definition in both units: one type
}

// Locals and parameters of each function, for MOLT_LOCAL.
TEST(DwarfPitfalls, LocalsOfFunctionsAreKnown)
{
    for (std::string compiler : {"gcc", "clang"}) {
        auto schema = read(build(state_sources, {compiler, "-O0", ""}));
        const schema::Local *listen_fd = schema.find_local("main", "listen_fd");
        ASSERT_NE(listen_fd, nullptr);
        EXPECT_EQ(schema::type_to_c(schema, listen_fd->type), "int");
        const schema::Local *node = schema.find_local("main", "local_node");
        ASSERT_NE(node, nullptr);
        EXPECT_EQ(schema::qualified_type_name(schema, node->type), "state_main.c/struct node");
        EXPECT_NE(schema.find_local("state_main.c/serve", "backlog"), nullptr);
        const schema::Function *serve = schema.find_function("state_main.c/serve");
        ASSERT_NE(serve, nullptr);
        EXPECT_FALSE(serve->external);
        EXPECT_EQ(serve->address, symbols(schema.path).at("serve"));
    }
}

// Addresses are link-time: in a PIE or shared object relative to the load base, in a
// non-PIE executable absolute. Either way equal to the symbol's value.
TEST(DwarfPitfalls, AddressesInPieNonPieAndSharedObjects)
{
    for (std::string extra : {"", "-no-pie", "-fPIC -shared"}) {
        std::string binary = build(state_sources, {"gcc", "-O2", ""}, extra);
        auto schema = read(binary);
        EXPECT_EQ(schema.find_variable("table")->address, symbols(binary).at("table")) << extra;
        EXPECT_EQ(schema.find_function("main")->address, symbols(binary).at("main")) << extra;
    }
}

// gcc -O2 moves a function's rare path (here a call to a function declared cold) to a part of
// its own, `main.cold`, below the function: the function's DIE then has DW_AT_ranges and no
// low_pc. Its entry is the part that holds its symbol, and its size that part's (code
// redirection patches the entry).
TEST(DwarfPitfalls, FunctionsSplitInHotAndColdPartsAreKnownByTheirEntry)
{
    std::string binary = build({"schema/split_function.c"}, {"gcc", "-O2 -gdwarf-5", ""});
    ASSERT_NE(run("nm " + binary).find(" main.cold"), std::string::npos) << "gcc no longer splits main";
    std::string dump = dwarf_dump(binary);
    std::size_t main_die = dump.find("name                 (strp) \"main\"");
    ASSERT_NE(main_die, std::string::npos);
    ASSERT_NE(dump.find("ranges", main_die), std::string::npos);

    auto schema = read(binary);
    std::map<std::string, std::uint64_t> values = symbols(binary);
    auto nm_size = [&](const std::string &name) {
        return std::stoull(run("nm -S " + binary + " | awk '$4 == \"" + name + "\" { print $2 }'"), nullptr, 16);
    };
    for (std::string name : {"main", "step"}) {
        const schema::Function *function = schema.find_function(name);
        ASSERT_NE(function, nullptr) << name;
        EXPECT_EQ(function->address, values.at(name)) << name;
        EXPECT_EQ(function->size, nm_size(name)) << name << ": the hot part's size, not both parts'";
    }
    // The cold part is kept as the function's other part (a frame there is main's), and survives
    // the schema cache's round trip.
    const schema::Function *main_function = schema.find_function("main");
    std::uint64_t cold = values.at("main.cold");
    ASSERT_EQ(main_function->other_parts.size(), 1u);
    EXPECT_EQ(main_function->other_parts[0].first, cold);
    EXPECT_EQ(main_function->other_parts[0].second, cold + nm_size("main.cold"));
    auto again = schema::deserialize_schema(schema::serialize_schema(schema));
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(again->find_function("main")->other_parts, main_function->other_parts);
}

TEST(DwarfPitfalls, ThreadLocalsAreMarked)
{
    auto schema = read(build(state_sources, {"gcc", "-O0", ""}));
    ASSERT_NE(schema.find_variable("per_thread_errors"), nullptr);
    EXPECT_TRUE(schema.find_variable("per_thread_errors")->thread_local_storage);
}

}  // namespace
}  // namespace molt::testing
