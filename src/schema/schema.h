// The schema of one version: its state-holding variables, functions and types, read from DWARF.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace molt::schema {

// Index into Schema::types. Type 0 is always `void`.
using TypeId = std::uint32_t;
inline constexpr TypeId void_type = 0;

enum class TypeKind : std::uint8_t {
    Void,
    Base,
    Struct,
    Union,
    Enum,
    Typedef,
    Array,
    Pointer,
    Const,
    Volatile,
    Restrict,
    Atomic,
    Function,  // a prototype: what a function pointer points to
};

// How the bits of a base type are read (DW_ATE_* folded into what matters to a conversion).
enum class Encoding : std::uint8_t { Signed, Unsigned, Bool, Float, Complex, Other };

// Array bound that DWARF does not give: a flexible array member or `extern int a[];`.
inline constexpr std::uint64_t unknown_count = UINT64_MAX;

struct Member {
    std::string name;          // empty for an anonymous struct or union member
    TypeId type = void_type;
    std::uint64_t offset = 0;  // in bytes; for a bit-field, the byte holding its first bit
    std::uint32_t bit_size = 0;       // 0 unless a bit-field
    std::uint64_t bit_offset = 0;     // bit-fields only: first bit, counted from the start of the aggregate
    bool is_bit_field() const { return bit_size != 0; }
};

struct Enumerator {
    std::string name;
    std::int64_t value = 0;  // enumerators above INT64_MAX are stored as their two's complement
};

struct Type {
    TypeKind kind = TypeKind::Void;
    std::string name;      // tag, typedef name or base type name; empty when anonymous
    std::string file;      // set only when another type has the same name: tells them apart
    std::uint64_t size = 0;
    bool declaration = false;  // incomplete struct/union/enum (no definition anywhere)
    Encoding encoding = Encoding::Other;  // base types
    bool enum_signed = false;             // enums: whether the enumerator values are signed
    TypeId target = void_type;            // typedef, qualifier, pointer, array element, function return
    std::vector<std::uint64_t> counts;    // arrays: one per dimension, outermost first
    std::vector<Member> members;          // struct, union
    std::vector<Enumerator> enumerators;  // enum
    std::vector<TypeId> params;           // function prototypes
    bool variadic = false;
    bool prototyped = true;
};

struct Variable {
    std::string name;
    std::string qualified_name;  // `name`, `file.c/name` or `file.c/function#name`
    std::string file;            // compile unit, as named by the compiler
    std::string function;        // for a function-local static: the function's name
    TypeId type = void_type;
    std::uint64_t address = 0;   // link-time address: add the load bias to find it at run time
    std::uint64_t size = 0;
    bool external = false;
    bool read_only = false;      // in a non-writable section or const: not state
    bool thread_local_storage = false;  // address is an offset in the TLS block
};

struct Local {
    std::string name;
    TypeId type = void_type;
};

struct Function {
    std::string name;
    std::string qualified_name;  // `name` or `file.c/name` for a static function
    std::string file;
    std::uint64_t address = 0;   // link-time entry address
    std::uint64_t size = 0;      // of the part the entry lies in
    // Link-time [start, end) of its other parts: gcc moves a function's rare paths to
    // `name.cold` (a frame there is still this function's).
    std::vector<std::pair<std::uint64_t, std::uint64_t>> other_parts;
    // Whether a link-time address lies in its code: the part its entry is in (a byte at least),
    // or another.
    bool holds(std::uint64_t link_address) const;
    bool external = false;
    TypeId return_type = void_type;
    bool variadic = false;
    std::vector<Local> params;
    std::vector<Local> locals;   // automatic variables of every lexical block, in DWARF order
};

// A transformer registered in the version's molt_transformers section (molt/molt.h).
// What the new version's molt_transformers section declares (include/molt/molt.h): transformers,
// renames and annotations.
struct Transformer {
    enum class Kind : std::uint8_t {
        Type = 1, Variable = 2, RenameVariable = 3, RenameType = 4, RenameMember = 5,
        PointsTo = 7, LengthIn = 9, UnionCase = 10, Opaque = 11,  // annotations
    };
    Kind kind = Kind::Type;
    // The type or the variable it transforms; the type of a member rename; the type an
    // annotation is about (the variable of a PointsTo without a member).
    std::string name;
    std::string renamed_from, renamed_to;  // renames: old and new name
    bool parallel = false;  // a type transformer that may run on several threads at once
    std::string member;  // PointsTo, LengthIn: the pointer member; UnionCase: the union member
    std::string target;  // PointsTo: the pointee type; LengthIn: the length member; UnionCase: the discriminant
    std::string case_value, case_member;  // UnionCase: the discriminant's value (as written) and the union's member
    std::uint64_t record_address = 0;  // link-time address of its record (the function pointer is in it)
};

struct Schema {
    std::string path;
    std::string build_id;  // hex; empty when the file has none
    std::vector<Type> types;
    std::vector<Variable> variables;  // sorted by qualified name
    std::vector<Function> functions;  // sorted by qualified name
    std::vector<std::string> warnings;  // oddities the reader skipped over, once each
    std::vector<Transformer> transformers;
    // Compile units in a language other than C ("engine.cpp (C++)"): Molt reads their types as C
    // types, and classes, templates, namespaces or references have no C spelling.
    std::vector<std::string> foreign_units;

    // Renames declared by this (new) version: the old name of a new variable, type or member, or
    // the name itself when it was not renamed.
    std::string old_name(Transformer::Kind kind, const std::string &new_name, const std::string &type = {}) const
    {
        for (const Transformer &rename : transformers)
            if (rename.kind == kind && rename.renamed_to == new_name && (type.empty() || rename.name == type))
                return rename.renamed_from;
        return new_name;
    }
    std::string new_name(Transformer::Kind kind, const std::string &old_name, const std::string &type = {}) const
    {
        for (const Transformer &rename : transformers)
            if (rename.kind == kind && rename.renamed_from == old_name && (type.empty() || rename.name == type))
                return rename.renamed_to;
        return old_name;
    }

    const Transformer *find_transformer(Transformer::Kind kind, std::string_view name) const
    {
        for (const Transformer &transformer : transformers)
            if (transformer.kind == kind && transformer.name == name)
                return &transformer;
        return nullptr;
    }

    // The annotation of `kind` on `member` of type `type` (PointsTo, LengthIn, UnionCase: the
    // first case), or null.
    const Transformer *find_annotation(Transformer::Kind kind, std::string_view type, std::string_view member) const
    {
        for (const Transformer &annotation : transformers)
            if (annotation.kind == kind && annotation.name == type && annotation.member == member)
                return &annotation;
        return nullptr;
    }

    const Type &type(TypeId id) const { return types.at(id); }
    const Variable *find_variable(std::string_view qualified_name) const;
    const Function *find_function(std::string_view qualified_name) const;
    const Local *find_local(std::string_view function, std::string_view local) const;
};

// Follows typedefs and const/volatile/restrict/_Atomic to the type that gives the layout.
TypeId strip_typedefs_and_qualifiers(const Schema &schema, TypeId id);

// How many elements an array holds in all its dimensions; 0 when one has no known length.
inline std::uint64_t total_elements(const Type &array)
{
    std::uint64_t count = 1;
    for (std::uint64_t dimension : array.counts)
        count = dimension == unknown_count ? 0 : count * dimension;
    return count;
}

// The type that gives the layout of `id` (behind its typedefs and qualifiers).
inline const Type &layout(const Schema &schema, TypeId id) { return schema.type(strip_typedefs_and_qualifiers(schema, id)); }

// Integers in the widest sense (char, bool, every int, enums), and whether one is signed: what
// a bit-field may hold, and what converts by value.
inline bool is_integral(const Type &type)
{
    return (type.kind == TypeKind::Base &&
            (type.encoding == Encoding::Signed || type.encoding == Encoding::Unsigned || type.encoding == Encoding::Bool)) ||
           type.kind == TypeKind::Enum;
}
inline bool is_signed_integral(const Type &type)
{
    return type.kind == TypeKind::Enum ? type.enum_signed : type.encoding == Encoding::Signed;
}

// `struct node`, `enum color`, `point_t`, `int`: the name a type is matched by between
// versions. Prefixed with `file/` when the schema holds two different types of that name.
std::string qualified_type_name(const Schema &schema, TypeId id);
std::string qualified_type_name(const Type &type);

// The member of a struct or union called `name`, or null.
const Member *member_named(const Type &aggregate, std::string_view name);

// The member of `aggregate` (a struct or union of the old version) that `wanted`, a member of
// `wanted_in` (the same aggregate in the new version), continues: the one of the same name, or
// of the name a MOLT_RENAME_MEMBER of `new_schema` gives it (the type named as `molt schema`
// prints it); anonymous members by their rank among anonymous members. Null for a new member.
// The diff, the conversion plan and the conversions all match members through this one function.
const Member *corresponding_member(const Type &aggregate, const Member &wanted, const Type &wanted_in,
                                   const Schema &new_schema);

// The type written as C would spell it around `declarator` (empty for an abstract type):
// `int (*)[3]`, `void (*handler)(int)`, `struct node *next`.
std::string type_to_c(const Schema &schema, TypeId id, std::string_view declarator = {});

// The natural alignment that a C compiler gives the type (used to rebuild layouts).
std::uint64_t natural_alignment(const Schema &schema, TypeId id);

}  // namespace molt::schema
