// Text and JSON forms of a schema.
#include "schema_format.h"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <algorithm>
#include <nlohmann/json.hpp>

namespace molt::schema {
namespace {

constexpr int max_nesting = 32;

const char *kind_word(TypeKind kind)
{
    switch (kind) {
    case TypeKind::Void: return "void";
    case TypeKind::Base: return "base";
    case TypeKind::Struct: return "struct";
    case TypeKind::Union: return "union";
    case TypeKind::Enum: return "enum";
    case TypeKind::Typedef: return "typedef";
    case TypeKind::Array: return "array";
    case TypeKind::Pointer: return "pointer";
    case TypeKind::Const: return "const";
    case TypeKind::Volatile: return "volatile";
    case TypeKind::Restrict: return "restrict";
    case TypeKind::Atomic: return "atomic";
    case TypeKind::Function: return "function";
    }
    return "?";
}

const char *encoding_word(Encoding encoding)
{
    switch (encoding) {
    case Encoding::Signed: return "signed";
    case Encoding::Unsigned: return "unsigned";
    case Encoding::Bool: return "bool";
    case Encoding::Float: return "float";
    case Encoding::Complex: return "complex";
    case Encoding::Other: return "other";
    }
    return "?";
}

bool is_anonymous_aggregate(const Type &type)
{
    return (type.kind == TypeKind::Struct || type.kind == TypeKind::Union) && type.name.empty();
}

void write_members(const Schema &schema, const Type &type, std::ostream &out, int indent)
{
    if (indent > max_nesting)
        return;
    for (const Member &member : type.members) {
        std::string name = member.name.empty() ? "<anonymous>" : member.name;
        fmt::print(out, "{:{}}member {} offset={}", "", indent, name, member.offset);
        if (member.is_bit_field())
            fmt::print(out, " bit_offset={} bit_size={}", member.bit_offset, member.bit_size);
        fmt::print(out, " type={}\n", type_to_c(schema, member.type));
        const Type &member_type = layout(schema, member.type);
        if (is_anonymous_aggregate(member_type))
            write_members(schema, member_type, out, indent + 2);
    }
}

void write_type(const Schema &schema, TypeId id, std::ostream &out)
{
    const Type &type = schema.type(id);
    std::string name = qualified_type_name(schema, id);
    switch (type.kind) {
    case TypeKind::Base:
        fmt::print(out, "type {} size={} {}\n", name, type.size, encoding_word(type.encoding));
        return;
    case TypeKind::Struct:
    case TypeKind::Union:
        if (type.declaration) {
            fmt::print(out, "type {} incomplete\n", name);
            return;
        }
        fmt::print(out, "type {} size={}\n", name, type.size);
        write_members(schema, type, out, 2);
        return;
    case TypeKind::Enum:
        fmt::print(out, "type {} size={} {}\n", name, type.size, type.enum_signed ? "signed" : "unsigned");
        for (const Enumerator &enumerator : type.enumerators)
            fmt::print(out, "  enumerator {}={}\n", enumerator.name, enumerator.value);
        return;
    case TypeKind::Typedef: {
        fmt::print(out, "type {} = {}\n", name, type_to_c(schema, type.target));
        const Type &target = layout(schema, type.target);
        if (is_anonymous_aggregate(target) && schema.type(type.target).kind != TypeKind::Typedef) {
            fmt::print(out, "  size={}\n", target.size);
            write_members(schema, target, out, 2);
        }
        return;
    }
    default:
        return;
    }
}

bool is_listed(const Type &type)
{
    switch (type.kind) {
    case TypeKind::Base: case TypeKind::Typedef: return true;
    case TypeKind::Struct: case TypeKind::Union: case TypeKind::Enum: return !type.name.empty();
    default: return false;
    }
}

void write_locals(const Schema &schema, const char *word, std::vector<Local> locals, Addresses addresses,
                  std::ostream &out)
{
    // Compilers order the locals of a function differently; stable output does not show it.
    if (addresses == Addresses::Hide)
        std::stable_sort(locals.begin(), locals.end(), [](const Local &a, const Local &b) { return a.name < b.name; });
    for (const Local &local : locals)
        fmt::print(out, "  {} {}: {}\n", word, local.name.empty() ? "<unnamed>" : local.name, type_to_c(schema, local.type));
}

}  // namespace

void write_schema_text(const Schema &schema, std::ostream &out, Addresses addresses)
{
    for (const Variable &variable : schema.variables) {
        fmt::print(out, "variable {}: {} size={}", variable.qualified_name, type_to_c(schema, variable.type), variable.size);
        if (addresses == Addresses::Show)
            fmt::print(out, " address={:#x}", variable.address);
        if (variable.read_only)
            fmt::print(out, " read-only");
        if (variable.thread_local_storage)
            fmt::print(out, " thread-local");
        fmt::print(out, "\n");
    }
    for (const Function &function : schema.functions) {
        fmt::print(out, "function {}: returns {}{}", function.qualified_name, type_to_c(schema, function.return_type),
                   function.variadic ? " variadic" : "");
        if (addresses == Addresses::Show) {
            fmt::print(out, " address={:#x} size={}", function.address, function.size);
            for (const auto &[start, end] : function.other_parts)
                fmt::print(out, " part={:#x}-{:#x}", start, end);
        }
        fmt::print(out, "\n");
        write_locals(schema, "param", function.params, Addresses::Show, out);
        write_locals(schema, "local", function.locals, addresses, out);
    }
    std::vector<std::pair<std::string, TypeId>> listed;
    for (TypeId id = 0; id < schema.types.size(); ++id)
        if (is_listed(schema.types[id]))
            listed.emplace_back(qualified_type_name(schema, id), id);
    std::sort(listed.begin(), listed.end());
    for (const auto &[name, id] : listed)
        write_type(schema, id, out);
}

void write_schema_json(const Schema &schema, std::ostream &out)
{
    using nlohmann::json;
    json types = json::array();
    for (TypeId id = 0; id < schema.types.size(); ++id) {
        const Type &type = schema.types[id];
        json entry = {{"id", id}, {"kind", kind_word(type.kind)}, {"c", type_to_c(schema, id)}};
        if (!type.name.empty())
            entry["name"] = type.name;
        if (!type.file.empty())
            entry["file"] = type.file;
        entry["size"] = type.size;
        if (type.declaration)
            entry["incomplete"] = true;
        if (type.kind == TypeKind::Base)
            entry["encoding"] = encoding_word(type.encoding);
        if (type.kind == TypeKind::Typedef || type.kind == TypeKind::Pointer || type.kind == TypeKind::Array ||
            type.kind == TypeKind::Function || type.kind == TypeKind::Const || type.kind == TypeKind::Volatile ||
            type.kind == TypeKind::Restrict || type.kind == TypeKind::Atomic)
            entry["target"] = type.target;
        if (type.kind == TypeKind::Array) {
            json counts = json::array();
            for (std::uint64_t count : type.counts)
                counts.push_back(count == unknown_count ? json(nullptr) : json(count));
            entry["counts"] = counts;
        }
        if (type.kind == TypeKind::Struct || type.kind == TypeKind::Union) {
            json members = json::array();
            for (const Member &member : type.members) {
                json item = {{"name", member.name}, {"type", member.type}, {"offset", member.offset}};
                if (member.is_bit_field()) {
                    item["bit_offset"] = member.bit_offset;
                    item["bit_size"] = member.bit_size;
                }
                members.push_back(item);
            }
            entry["members"] = members;
        }
        if (type.kind == TypeKind::Enum) {
            entry["signed"] = type.enum_signed;
            json enumerators = json::array();
            for (const Enumerator &enumerator : type.enumerators)
                enumerators.push_back({{"name", enumerator.name}, {"value", enumerator.value}});
            entry["enumerators"] = enumerators;
        }
        if (type.kind == TypeKind::Function) {
            entry["params"] = type.params;
            entry["variadic"] = type.variadic;
        }
        types.push_back(entry);
    }
    json variables = json::array();
    for (const Variable &variable : schema.variables)
        variables.push_back({{"name", variable.name}, {"qualified_name", variable.qualified_name},
                             {"file", variable.file}, {"function", variable.function}, {"type", variable.type},
                             {"address", variable.address}, {"size", variable.size}, {"external", variable.external},
                             {"read_only", variable.read_only}, {"thread_local", variable.thread_local_storage}});
    auto locals_json = [](const std::vector<Local> &locals) {
        json list = json::array();
        for (const Local &local : locals)
            list.push_back({{"name", local.name}, {"type", local.type}});
        return list;
    };
    json functions = json::array();
    for (const Function &function : schema.functions)
        functions.push_back({{"name", function.name}, {"qualified_name", function.qualified_name},
                             {"file", function.file}, {"address", function.address}, {"size", function.size},
                             {"other_parts", function.other_parts},
                             {"external", function.external}, {"return_type", function.return_type},
                             {"variadic", function.variadic}, {"params", locals_json(function.params)},
                             {"locals", locals_json(function.locals)}});
    json document = {{"path", schema.path}, {"build_id", schema.build_id}, {"variables", variables},
                     {"functions", functions}, {"types", types}, {"warnings", schema.warnings},
                     {"foreign_units", schema.foreign_units}};
    out << document.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";  // names from DWARF may be invalid UTF-8
}

}  // namespace molt::schema
