// Writing schema types back as C: first order them (a type embedded by value is defined before
// its user; a type behind a pointer only needs the forward declaration), then emit each
// construct, reproducing the layout (packing, padding, bit-fields) and asserting it.
#include "c_header.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

#include "c_declarator.h"

namespace molt::schema {
namespace {

constexpr int max_depth = 64;

std::uint64_t round_up(std::uint64_t value, std::uint64_t alignment)
{
    return alignment <= 1 ? value : (value + alignment - 1) / alignment * alignment;
}

bool is_aggregate(TypeKind kind) { return kind == TypeKind::Struct || kind == TypeKind::Union; }

// A file name as part of a C identifier: `state_main.c` -> `state_main_c`.
std::string identifier_part(const std::string &text)
{
    std::string part;
    for (char c : text)
        part += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    return part;
}

// C spelling of an integer type of `size` bytes (anonymous enums are written as one).
std::string integer_spelling(std::uint64_t size, bool is_signed)
{
    const char *core = size == 1 ? "char" : size == 2 ? "short" : size == 8 ? "long long" : "int";
    return std::string(is_signed ? (size == 1 ? "signed " : "") : "unsigned ") + core;
}

std::string base_spelling(const Type &type)
{
    return type.name.empty() ? integer_spelling(type.size, type.encoding == Encoding::Signed) : type.name;
}

std::string enumerator_value(const Type &type, std::int64_t value)
{
    if (!type.enum_signed) {
        auto unsigned_value = static_cast<std::uint64_t>(value);
        return unsigned_value <= INT32_MAX ? std::to_string(unsigned_value) : fmt::format("{}ULL", unsigned_value);
    }
    if (value == INT64_MIN)
        return "(-9223372036854775807LL - 1)";
    return value >= INT32_MIN && value <= INT32_MAX ? std::to_string(value) : fmt::format("{}LL", value);
}

class HeaderWriter {
public:
    HeaderWriter(const Schema &schema, const HeaderOptions &options) : m_schema(schema), m_options(options)
    {
        for (TypeId id = 0; id < schema.types.size(); ++id) {
            const Type &type = schema.types[id];
            bool named = !type.name.empty() && (is_aggregate(type.kind) || type.kind == TypeKind::Enum ||
                                                type.kind == TypeKind::Typedef);
            if (named)  // keyed by spelling: a tag and a typedef may share a name
                m_named.emplace(spell(id, 0), id);
            else if (type.kind == TypeKind::Enum && !type.enumerators.empty())
                m_anonymous_enums.emplace(type.enumerators.front().name, id);
        }
    }

    std::string write()
    {
        std::string guard = "MOLT_OLD_TYPES_" + identifier_part(m_options.prefix) + "H";
        std::transform(guard.begin(), guard.end(), guard.begin(), [](unsigned char c) { return std::toupper(c); });
        m_out += fmt::format("/* Types of {}{}, written by `molt old-types`\n"
                             " * for transformers that read objects of that version. Every tag, typedef and enumerator\n"
                             " * carries the prefix \"{}\". The layout is the version's own, checked at the end. */\n",
                             m_schema.path, m_schema.build_id.empty() ? "" : " (build-id " + m_schema.build_id + ")",
                             m_options.prefix);
        m_out += fmt::format("#ifndef {0}\n#define {0}\n\n#include <stddef.h>\n", guard);
        write_enums();
        write_forward_declarations();
        write_definitions();
        write_layout_checks();
        m_out += fmt::format("\n#endif /* {} */\n", guard);
        return std::move(m_out);
    }

private:
    // ---- names ----------------------------------------------------------------------------

    std::string emitted_name(TypeId id) const
    {
        const Type &type = m_schema.type(id);
        std::string name = m_options.prefix + type.name;
        if (!type.file.empty())
            name += "__" + identifier_part(type.file);
        return name;
    }

    std::string enumerator_name(const Type &type, const Enumerator &enumerator) const
    {
        std::string name = m_options.prefix + enumerator.name;
        if (!type.file.empty())
            name += "__" + identifier_part(type.file);
        return name;
    }

    // How a use of type `id` is spelled; anonymous aggregates are written inline.
    std::string spell(TypeId id, int indent)
    {
        const Type &type = m_schema.type(id);
        switch (type.kind) {
        case TypeKind::Base:
            return base_spelling(type);
        case TypeKind::Struct:
        case TypeKind::Union:
            if (type.name.empty()) {
                if (m_inline_depth > max_depth)  // anonymous types pointing at each other: corrupt input
                    return "char /* anonymous type nested too deeply */";
                ++m_inline_depth;
                std::string body = aggregate_body(id, indent);
                --m_inline_depth;
                return body;
            }
            return std::string(type.kind == TypeKind::Struct ? "struct " : "union ") + emitted_name(id);
        case TypeKind::Enum:
            if (type.name.empty())
                return integer_spelling(type.size, type.enum_signed);
            return "enum " + emitted_name(id);
        case TypeKind::Typedef:
            return emitted_name(id);
        default:
            return "void";
        }
    }

    std::string declare(TypeId id, const std::string &declarator, int indent)
    {
        return c_declaration(m_schema, id, declarator, [this, indent](TypeId named) { return spell(named, indent); });
    }

    // ---- order ------------------------------------------------------------------------------

    // The named types that must be emitted before a use of `id`. By value, an aggregate must
    // be complete; behind a pointer its forward declaration is enough. Typedef names must
    // always be declared first.
    void dependencies(TypeId id, bool by_value, std::set<TypeId> &needs, int depth = 0)
    {
        if (depth > max_depth)
            return;
        const Type &type = m_schema.type(id);
        switch (type.kind) {
        case TypeKind::Typedef:
            needs.insert(id);
            if (by_value)
                dependencies(type.target, true, needs, depth + 1);
            return;
        case TypeKind::Struct:
        case TypeKind::Union:
            if (type.name.empty()) {
                // Written inline, even behind a pointer or a typedef: its members are by value.
                for (const Member &member : type.members)
                    dependencies(member.type, true, needs, depth + 1);
            } else if (by_value) {
                needs.insert(id);
            }
            return;
        case TypeKind::Const: case TypeKind::Volatile: case TypeKind::Restrict: case TypeKind::Atomic:
            dependencies(type.target, by_value, needs, depth + 1);
            return;
        case TypeKind::Array:  // C has no arrays of incomplete types, not even behind a pointer
            dependencies(type.target, true, needs, depth + 1);
            return;
        case TypeKind::Pointer:
            dependencies(type.target, false, needs, depth + 1);
            return;
        case TypeKind::Function:
            dependencies(type.target, false, needs, depth + 1);
            for (TypeId param : type.params)
                dependencies(param, false, needs, depth + 1);
            return;
        default:
            return;
        }
    }

    std::set<TypeId> definition_dependencies(TypeId id)
    {
        std::set<TypeId> needs;
        const Type &type = m_schema.type(id);
        if (type.kind == TypeKind::Typedef)
            dependencies(type.target, false, needs);
        else
            for (const Member &member : type.members)
                dependencies(member.type, true, needs);
        needs.erase(id);
        return needs;
    }

    void emit_in_order(TypeId id, std::set<TypeId> &visiting)
    {
        if (m_emitted.count(id) || visiting.count(id))
            return;  // a cycle only through typedef names cannot happen in C; stop anyway
        visiting.insert(id);
        std::set<TypeId> needs = definition_dependencies(id);
        std::map<std::string, TypeId> sorted;
        for (TypeId need : needs)
            if (m_schema.type(need).kind != TypeKind::Enum)
                sorted.emplace(spell(need, 0), need);
        for (const auto &[name, need] : sorted)
            emit_in_order(need, visiting);
        visiting.erase(id);
        m_emitted.insert(id);
        const Type &type = m_schema.type(id);
        if (type.kind == TypeKind::Typedef)
            m_out += "typedef " + declare(type.target, emitted_name(id), 0) + ";\n";
        else if (!type.declaration)
            m_out += aggregate_body(id, 0) + ";\n";
    }

    // ---- emitting -----------------------------------------------------------------------------

    void write_enums()
    {
        bool any = false;
        auto header = [&] {
            if (!any)
                m_out += "\n/* Enumerations */\n";
            any = true;
        };
        for (const auto &[name, id] : m_named)
            if (m_schema.type(id).kind == TypeKind::Enum && !m_schema.type(id).declaration) {
                header();
                m_out += enum_definition(id) + ";\n";
            }
        for (const auto &[name, id] : m_anonymous_enums) {
            header();
            m_out += enum_definition(id) + ";\n";
        }
    }

    std::string enum_definition(TypeId id)
    {
        const Type &type = m_schema.type(id);
        std::string text = type.name.empty() ? "enum {\n" : "enum " + emitted_name(id) + " {\n";
        for (const Enumerator &enumerator : type.enumerators)
            text += fmt::format("    {} = {},\n", unique_enumerator_name(type, enumerator),
                                enumerator_value(type, enumerator.value));
        // Without packed, C makes an enum at least as large as int.
        bool packed = type.size < 4;
        if (packed && !type.name.empty() && packed_size(type) < type.size) {
            // packed picks the smallest size that holds the values: pin the version's size.
            std::uint64_t top = (type.size >= 8 ? 0 : (1ull << (type.size * 8 - (type.enum_signed ? 1 : 0)))) - 1;
            text += fmt::format("    {}{}__molt_size = {},\n", m_options.prefix, type.name, enumerator_value(type, static_cast<std::int64_t>(top)));
        }
        text += packed ? "} __attribute__((packed))" : "}";
        return text;
    }

    // Enumerators share one namespace in C: a second `READY` (another file's enum, or an
    // anonymous enum) becomes `READY__2`, in the sorted order of the header, so stable.
    std::string unique_enumerator_name(const Type &type, const Enumerator &enumerator)
    {
        std::string name = enumerator_name(type, enumerator);
        std::string unique = name;
        for (int n = 2; !m_enumerator_names.insert(unique).second; ++n)
            unique = name + "__" + std::to_string(n);
        return unique;
    }

    // The size gcc and clang give a packed enum: the smallest integer holding every value.
    static std::uint64_t packed_size(const Type &type)
    {
        std::uint64_t size = 1;
        for (const Enumerator &enumerator : type.enumerators) {
            std::int64_t value = enumerator.value;
            bool fits1 = type.enum_signed ? value >= INT8_MIN && value <= INT8_MAX : static_cast<std::uint64_t>(value) <= UINT8_MAX;
            bool fits2 = type.enum_signed ? value >= INT16_MIN && value <= INT16_MAX : static_cast<std::uint64_t>(value) <= UINT16_MAX;
            size = std::max<std::uint64_t>(size, fits1 ? 1 : fits2 ? 2 : 4);
        }
        return size;
    }

    void write_forward_declarations()
    {
        bool any = false;
        for (const auto &[name, id] : m_named) {
            const Type &type = m_schema.type(id);
            if (!is_aggregate(type.kind))
                continue;
            if (!any)
                m_out += "\n/* Forward declarations */\n";
            any = true;
            m_out += name + ";\n";
        }
    }

    void write_definitions()
    {
        m_out += "\n/* Definitions */\n";
        std::set<TypeId> visiting;
        for (const auto &[name, id] : m_named)
            if (m_schema.type(id).kind != TypeKind::Enum)
                emit_in_order(id, visiting);
    }

    std::string aggregate_body(TypeId id, int indent)
    {
        const Type &type = m_schema.type(id);
        std::string pad(static_cast<std::size_t>(indent) + 4, ' ');
        std::string text = type.kind == TypeKind::Struct ? "struct" : "union";
        if (!type.name.empty())
            text += " " + emitted_name(id);
        text += " {\n";
        bool packed = is_packed(id);
        std::uint64_t cursor_bits = 0;
        int padding = 0;
        auto add_padding = [&](std::uint64_t bytes) {
            text += fmt::format("{}char __molt_padding{}[{}];\n", pad, padding++, bytes);
        };
        for (const Member &member : type.members) {
            std::string declaration = pad + declare(member.type, member.name, indent + 4);
            if (member.is_bit_field())
                declaration += fmt::format(" : {}", member.bit_size);
            if (type.kind == TypeKind::Struct) {
                if (member.is_bit_field()) {
                    if (member.bit_offset > cursor_bits)
                        text += bit_gap(member, cursor_bits, pad, padding);
                    cursor_bits = member.bit_offset + member.bit_size;
                } else {
                    // Explicit padding wherever the version has a gap: exact whatever the
                    // alignment the compiler gives the emitted types.
                    std::uint64_t cursor = (cursor_bits + 7) / 8;
                    if (member.offset > cursor)
                        add_padding(member.offset - cursor);
                    cursor_bits = (member.offset + member_size(member)) * 8;
                }
            }
            text += declaration + ";\n";
        }
        if (type.kind == TypeKind::Struct) {
            std::uint64_t end = (cursor_bits + 7) / 8;
            if (type.size > end && type.size > round_up(end, packed ? 1 : emitted_alignment(id)))
                add_padding(type.size - end);
        } else if (type.size > round_up(largest_member(type), packed ? 1 : emitted_alignment(id))) {
            add_padding(type.size);  // a union member as large as the union
        }
        text += std::string(static_cast<std::size_t>(indent), ' ') + "}";
        if (packed)
            text += " __attribute__((packed))";
        return text;
    }

    // Bits between the previous bit-field and this one: an unnamed `:0` when the compiler had
    // moved to the next unit, else unnamed bit-fields and byte padding for the exact gap.
    std::string bit_gap(const Member &member, std::uint64_t cursor_bits, const std::string &pad, int &padding)
    {
        std::string text;
        std::uint64_t unit_bits = layout(m_schema, member.type).size * 8;
        std::string unit_type = declare(member.type, "", 0);
        if (unit_bits && member.bit_offset % unit_bits == 0 && member.bit_offset - cursor_bits < unit_bits)
            return pad + unit_type + " : 0;\n";
        std::uint64_t gap = member.bit_offset - cursor_bits;
        if (cursor_bits % 8) {
            std::uint64_t to_byte = std::min<std::uint64_t>(gap, 8 - cursor_bits % 8);
            text += fmt::format("{}unsigned char : {};\n", pad, to_byte);
            gap -= to_byte;
        }
        if (gap >= 8)
            text += fmt::format("{}char __molt_padding{}[{}];\n", pad, padding++, gap / 8);
        if (gap % 8)
            text += fmt::format("{}unsigned char : {};\n", pad, gap % 8);
        return text;
    }

    std::uint64_t member_size(const Member &member) const { return layout(m_schema, member.type).size; }

    std::uint64_t largest_member(const Type &type) const
    {
        std::uint64_t largest = 0;
        for (const Member &member : type.members)
            largest = std::max(largest, member.is_bit_field() ? (member.bit_offset + member.bit_size + 7) / 8
                                                              : member_size(member));
        return largest;
    }

    // The alignment the emitted type will have: natural, except that a packed aggregate has 1.
    std::uint64_t emitted_alignment(TypeId id)
    {
        id = strip_typedefs_and_qualifiers(m_schema, id);
        const Type &type = m_schema.type(id);
        if (type.kind == TypeKind::Array)
            return emitted_alignment(type.target);
        if (!is_aggregate(type.kind))
            return natural_alignment(m_schema, id);
        if (auto known = m_alignments.find(id); known != m_alignments.end())
            return known->second;
        std::uint64_t alignment = 1;
        for (const Member &member : type.members)
            alignment = std::max(alignment, emitted_alignment(member.type));
        if (is_packed(id))
            alignment = 1;
        m_alignments[id] = alignment;
        return alignment;
    }

    // The compiler packed the aggregate when a member sits below its alignment, a bit-field
    // straddles a unit of its type, or the size is not a multiple of the alignment.
    bool is_packed(TypeId id)
    {
        if (auto known = m_packed.find(id); known != m_packed.end())
            return known->second;
        const Type &type = m_schema.type(id);
        bool packed = false;
        std::uint64_t alignment = 1;
        for (const Member &member : type.members) {
            std::uint64_t member_alignment = emitted_alignment(member.type);
            alignment = std::max(alignment, member_alignment);
            if (!member.is_bit_field()) {
                packed |= member.offset % member_alignment != 0;
            } else {
                std::uint64_t unit_bits = member_size(member) * 8;
                packed |= unit_bits && member.bit_offset / unit_bits != (member.bit_offset + member.bit_size - 1) / unit_bits;
            }
        }
        packed |= type.size % alignment != 0;
        m_packed[id] = packed;
        return packed;
    }

    // ---- layout checks ------------------------------------------------------------------------

    void write_layout_checks()
    {
        m_out += "\n/* Layout of the version, checked by the compiler */\n";
        for (const auto &[name, id] : m_named) {
            const Type &type = m_schema.type(id);
            if (type.declaration)
                continue;
            TypeId layout_id = strip_typedefs_and_qualifiers(m_schema, id);
            const Type &layout_type = m_schema.type(layout_id);
            if (layout_type.kind == TypeKind::Function || layout_type.kind == TypeKind::Void ||
                (is_aggregate(layout_type.kind) && layout_type.declaration))
                continue;
            if (layout_type.kind == TypeKind::Array && layout_type.size == 0)
                continue;  // flexible: no size
            m_out += fmt::format("_Static_assert(sizeof({}) == {}, \"size of {}\");\n", name, layout_type.size, name);
            if (is_aggregate(layout_type.kind) && (type.kind != TypeKind::Typedef || layout_type.name.empty()))
                write_offset_checks(name, layout_type, 0, 0);
        }
    }

    // `name` is the aggregate's spelling (the key of m_named); anonymous members are reached
    // through their parent, at their offset.
    void write_offset_checks(const std::string &name, const Type &aggregate, std::uint64_t base, int depth)
    {
        if (depth > max_depth)
            return;
        for (const Member &member : aggregate.members) {
            if (member.is_bit_field())
                continue;
            const Type &member_type = layout(m_schema, member.type);
            if (member.name.empty()) {  // anonymous member: its members are reached directly
                write_offset_checks(name, member_type, base + member.offset, depth + 1);
                continue;
            }
            m_out += fmt::format("_Static_assert(offsetof({}, {}) == {}, \"offset of {}.{}\");\n", name, member.name,
                                 base + member.offset, name, member.name);
        }
    }

    const Schema &m_schema;
    const HeaderOptions &m_options;
    std::map<std::string, TypeId> m_named;            // spelling (`struct molt_old_node`) -> type, sorted
    std::map<std::string, TypeId> m_anonymous_enums;  // first enumerator -> type
    std::set<TypeId> m_emitted;
    std::set<std::string> m_enumerator_names;
    std::map<TypeId, bool> m_packed;
    std::map<TypeId, std::uint64_t> m_alignments;
    std::string m_out;
    int m_inline_depth = 0;
};

}  // namespace

void write_c_header(const Schema &schema, const HeaderOptions &options, std::ostream &out)
{
    out << HeaderWriter(schema, options).write();
}

}  // namespace molt::schema
