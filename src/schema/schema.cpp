// Queries over a schema: lookups by name, type names and alignment.
#include "schema.h"

#include <algorithm>

#include "c_declarator.h"

namespace molt::schema {
namespace {

constexpr int max_chain = 64;  // typedef/qualifier chains longer than this are malformed

template <typename Item>
const Item *find_sorted(const std::vector<Item> &items, std::string_view qualified_name)
{
    auto it = std::lower_bound(items.begin(), items.end(), qualified_name,
                               [](const Item &item, std::string_view name) { return item.qualified_name < name; });
    if (it == items.end() || it->qualified_name != qualified_name)
        return nullptr;
    return &*it;
}

std::string tag_word(TypeKind kind)
{
    switch (kind) {
    case TypeKind::Struct: return "struct ";
    case TypeKind::Union: return "union ";
    case TypeKind::Enum: return "enum ";
    default: return "";
    }
}

}  // namespace

const Variable *Schema::find_variable(std::string_view qualified_name) const
{
    return find_sorted(variables, qualified_name);
}

bool Function::holds(std::uint64_t link_address) const
{
    if (link_address >= address && link_address - address < std::max<std::uint64_t>(size, 1))
        return true;
    return std::any_of(other_parts.begin(), other_parts.end(),
                       [&](const auto &part) { return link_address >= part.first && link_address < part.second; });
}

const Function *Schema::find_function(std::string_view qualified_name) const
{
    return find_sorted(functions, qualified_name);
}

const Local *Schema::find_local(std::string_view function, std::string_view local) const
{
    const Function *found = find_function(function);
    if (!found)
        return nullptr;
    for (const auto *list : {&found->locals, &found->params})
        for (const Local &candidate : *list)
            if (candidate.name == local)
                return &candidate;
    return nullptr;
}

TypeId strip_typedefs_and_qualifiers(const Schema &schema, TypeId id)
{
    for (int i = 0; i < max_chain; ++i) {
        switch (schema.type(id).kind) {
        case TypeKind::Typedef:
        case TypeKind::Const:
        case TypeKind::Volatile:
        case TypeKind::Restrict:
        case TypeKind::Atomic:
            id = schema.type(id).target;
            break;
        default:
            return id;
        }
    }
    return id;
}

std::string qualified_type_name(const Schema &schema, TypeId id) { return qualified_type_name(schema.type(id)); }

std::string qualified_type_name(const Type &type)
{
    std::string name = type.name.empty() ? tag_word(type.kind) + "<anonymous>" : tag_word(type.kind) + type.name;
    if (!type.file.empty())
        return type.file + "/" + name;
    return name;
}

const Member *member_named(const Type &aggregate, std::string_view name)
{
    for (const Member &member : aggregate.members)
        if (member.name == name)
            return &member;
    return nullptr;
}

const Member *corresponding_member(const Type &aggregate, const Member &wanted, const Type &wanted_in,
                                   const Schema &new_schema)
{
    if (wanted.name.empty()) {
        int rank = 0;
        for (const Member &member : wanted_in.members) {
            if (&member == &wanted)
                break;
            rank += member.name.empty();
        }
        for (const Member &member : aggregate.members)
            if (member.name.empty() && rank-- == 0)
                return &member;
        return nullptr;
    }
    std::string name = new_schema.old_name(Transformer::Kind::RenameMember, wanted.name, qualified_type_name(wanted_in));
    for (const Member &member : aggregate.members)
        if (member.name == name)
            return &member;
    return nullptr;
}

std::string type_to_c(const Schema &schema, TypeId id, std::string_view declarator)
{
    return c_declaration(schema, id, declarator,
                         [&schema](TypeId named) { return qualified_type_name(schema, named); });
}

std::uint64_t natural_alignment(const Schema &schema, TypeId id)
{
    id = strip_typedefs_and_qualifiers(schema, id);
    const Type &type = schema.type(id);
    switch (type.kind) {
    case TypeKind::Base:
        if (type.encoding == Encoding::Complex)  // _Complex double: two doubles, aligned as one
            return std::clamp<std::uint64_t>(type.size / 2, 1, 16);
        return std::clamp<std::uint64_t>(type.size, 1, 16);
    case TypeKind::Enum:
    case TypeKind::Pointer:
        return std::clamp<std::uint64_t>(type.size, 1, 16);
    case TypeKind::Array:
        return natural_alignment(schema, type.target);
    case TypeKind::Struct:
    case TypeKind::Union: {
        std::uint64_t alignment = 1;
        for (const Member &member : type.members)
            alignment = std::max(alignment, natural_alignment(schema, member.type));
        return alignment;
    }
    default:
        return 1;
    }
}

}  // namespace molt::schema
