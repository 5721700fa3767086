// Default conversions of values: integers, floats, enums by name, structs by member name,
// arrays grown or shrunk, function pointers remapped by name.
#include "value_conversion.h"

#include "integers.h"
#include "transformer_guard.h"

#include <algorithm>
#include <cstring>

namespace molt::transform {
namespace {

using schema::Encoding;
using schema::Member;
using schema::Schema;
using schema::Type;
using schema::TypeId;
using schema::TypeKind;

Error failure(const std::string &where, const std::string &why) { return Error{"", where + ": " + why}; }

using schema::layout;
bool is_integer(const Type &type) { return schema::is_integral(type); }
bool is_signed(const Type &type) { return schema::is_signed_integral(type); }

std::uint64_t element_count(const Type &array, std::size_t dim)
{
    return dim < array.counts.size() ? array.counts[dim] : 1;
}

}  // namespace

ValueConverter::ValueConverter(const Schema &old_schema, const Schema &new_schema, FunctionRemap remap_function)
    : m_old(old_schema), m_new(new_schema), m_identity(old_schema, new_schema), m_annotations(old_schema, new_schema),
      m_remap(std::move(remap_function))
{
    find_types_reaching_annotations();
    // Which old types hold a pointer (data or function) anywhere inside: decided once, here,
    // so that conversions can copy the others whole. Types nest by value only a few levels
    // deep (a struct cannot contain itself), so the recursion is shallow.
    m_pointer_free.assign(m_old.types.size(), -1);
    std::function<bool(TypeId)> decide = [&](TypeId id) -> bool {
        id = schema::strip_typedefs_and_qualifiers(m_old, id);
        if (m_pointer_free[id] >= 0)
            return m_pointer_free[id];
        const Type &type = m_old.type(id);
        bool free = true;
        switch (type.kind) {
        case TypeKind::Pointer:
            free = false;
            break;
        case TypeKind::Array:
            free = decide(type.target);
            break;
        case TypeKind::Struct:
        case TypeKind::Union:
            for (const Member &member : type.members)
                free = free && decide(member.type);
            break;
        default:
            break;
        }
        m_pointer_free[id] = free;
        return free;
    };
    for (TypeId id = 0; id < m_old.types.size(); ++id)
        decide(id);
}

// Every new type from which an annotated struct can be reached (by value, through a pointer, an
// array, a typedef): backwards from the annotated ones, over the new schema's type graph.
void ValueConverter::find_types_reaching_annotations()
{
    if (m_annotations.empty())
        return;
    std::vector<TypeId> seeds = m_annotations.annotated_types(
        [this](const PointeePair &pair) { return !m_identity.identical(pair.old_pointee, pair.new_pointee); });
    if (seeds.empty())
        return;
    std::vector<std::vector<TypeId>> users(m_new.types.size());  // type -> the types that contain or point to it
    for (TypeId id = 0; id < m_new.types.size(); ++id) {
        const Type &type = m_new.type(id);
        for (const Member &member : type.members)
            users[member.type].push_back(id);
        if (type.kind == TypeKind::Pointer || type.kind == TypeKind::Array || type.kind == TypeKind::Typedef ||
            type.kind == TypeKind::Const || type.kind == TypeKind::Volatile || type.kind == TypeKind::Restrict ||
            type.kind == TypeKind::Atomic)
            users[type.target].push_back(id);
    }
    m_reaches_annotation.assign(m_new.types.size(), false);
    std::vector<TypeId> work = seeds;
    for (TypeId seed : seeds)
        m_reaches_annotation[seed] = true;
    while (!work.empty()) {
        TypeId id = work.back();
        work.pop_back();
        for (TypeId user : users[id])
            if (!m_reaches_annotation[user]) {
                m_reaches_annotation[user] = true;
                work.push_back(user);
            }
    }
}

Result<bool> ValueConverter::run_transformer(Transformer transformer, void *to, const void *from, const Place &where) const
{
    int crash = 0;
    const char *message = call_transformer(transformer, to, from, crash);
    if (!crash && !message)
        return true;
    return failure(where.text(), describe_transformer_failure(message, crash));
}

bool ValueConverter::pointer_free(TypeId old_type) const
{
    return m_pointer_free[schema::strip_typedefs_and_qualifiers(m_old, old_type)] == 1;
}

const std::vector<const Member *> &ValueConverter::matched_members(const Type &x, const Type &y) const
{
    std::lock_guard lock(m_matched_mutex);
    auto [found, inserted] = m_matched.try_emplace({&x, &y});
    if (inserted)
        for (const Member &member : y.members)
            found->second.push_back(corresponding_member(x, member, y, m_new));
    return found->second;  // never erased: the reference stays valid
}

void ValueConverter::add_type_transformer(const std::string &type_name, Transformer function, bool parallel)
{
    if (parallel)
        m_parallel_transformers.insert(function);
    // Resolved to type ids once: lookups happen for every value converted (millions per update).
    for (TypeId id = 0; id < m_new.types.size(); ++id)
        if (schema::qualified_type_name(m_new, id) == type_name)
            m_transformers[id] = function;
}

ValueConverter::Transformer ValueConverter::type_transformer(TypeId old_type, TypeId new_type) const
{
    if (m_transformers.empty() || !changed(old_type, new_type))
        return nullptr;
    auto found = m_transformers.find(schema::strip_typedefs_and_qualifiers(m_new, new_type));
    if (found == m_transformers.end())  // also by a typedef's own name
        found = m_transformers.find(new_type);
    return found == m_transformers.end() ? nullptr : found->second;
}

bool ValueConverter::convertible(TypeId old_type, TypeId new_type) const
{
    std::lock_guard lock(m_convertible_mutex);  // plan() itself uses m_planning: one at a time
    auto [known, inserted] = m_convertible.try_emplace({old_type, new_type}, false);
    if (inserted)
        known->second = static_cast<bool>(plan(old_type, new_type, ""));
    return known->second;
}

Result<bool> ValueConverter::plan(TypeId old_type, TypeId new_type, const std::string &where) const
{
    if (!changed(old_type, new_type))
        return true;
    if (m_annotations.opaque(new_type))
        return true;  // bytes, copied as they are
    if (type_transformer(old_type, new_type))
        return true;  // the programmer's transformer finishes what the default rules cannot
    const Type &x = layout(m_old, old_type);
    const Type &y = layout(m_new, new_type);
    if (is_integer(x) && is_integer(y))
        return true;
    if (x.kind == TypeKind::Base && y.kind == TypeKind::Base && x.encoding == Encoding::Float &&
        y.encoding == Encoding::Float && y.size >= x.size)
        return true;
    if (x.kind != y.kind)
        return failure(where, "the type changed from " + schema::type_to_c(m_old, old_type) + " to " +
                                  schema::type_to_c(m_new, new_type) + ": needs a transformer");
    switch (x.kind) {
    case TypeKind::Struct: {
        bool renamed = m_new.new_name(schema::Transformer::Kind::RenameType, schema::qualified_type_name(x)) ==
                       schema::qualified_type_name(y);  // as the diff matches them
        if ((x.name != y.name && !renamed) || x.declaration || y.declaration)
            return failure(where, "the struct changed identity: needs a transformer");
        for (const Member &member : y.members) {
            const Member *old_member = corresponding_member(x, member, y, m_new);
            if (!old_member)
                continue;  // new member: zeroed
            std::string place = where + "." + (member.name.empty() ? "<anonymous>" : member.name);
            if (member.is_bit_field() || old_member->is_bit_field()) {
                if (!is_integer(layout(m_old, old_member->type)) || !is_integer(layout(m_new, member.type)))
                    return failure(place, "a bit-field changed into a non-integer: needs a transformer");
                continue;
            }
            if (auto annotated = plan_annotated(x, y, member, place); !annotated || *annotated) {
                if (!annotated)
                    return annotated;
                continue;
            }
            auto planned = plan(old_member->type, member.type, place);
            if (!planned)
                return planned;
        }
        return true;
    }
    case TypeKind::Array:
        return plan_array(x, 0, y, 0, where);
    case TypeKind::Pointer: {
        const Type &old_pointee = layout(m_old, x.target);
        const Type &new_pointee = layout(m_new, y.target);
        if (old_pointee.kind == TypeKind::Function && new_pointee.kind == TypeKind::Function)
            return true;  // remapped by name; prototypes were checked by the diff
        if (new_pointee.kind == TypeKind::Void)
            return true;
        if (old_pointee.kind == TypeKind::Void)
            return failure(where, "a void pointer became a typed pointer: needs a transformer");
        return plan_pointee(x.target, y.target, where);
    }
    default:
        return failure(where, "the type changed from " + schema::type_to_c(m_old, old_type) + " to " +
                                  schema::type_to_c(m_new, new_type) + ": needs a transformer");
    }
}

// The objects a pointer leads to are converted in turn: planned once (types are recursive).
Result<bool> ValueConverter::plan_pointee(TypeId old_pointee, TypeId new_pointee, const std::string &where) const
{
    std::pair<TypeId, TypeId> pair{schema::strip_typedefs_and_qualifiers(m_old, old_pointee),
                                   schema::strip_typedefs_and_qualifiers(m_new, new_pointee)};
    if (!m_planning.insert(pair).second)
        return true;  // in progress further up: assumed fine, the rest decides
    auto planned = plan(old_pointee, new_pointee, where + "->");
    m_planning.erase(pair);  // a pair is only remembered while it is being planned
    return planned;
}

// A member an annotation speaks for: its pointee (MOLT_POINTS_TO) or each case of its union
// (MOLT_UNION_CASE) is planned instead of its declared type. False: no annotation applies.
Result<bool> ValueConverter::plan_annotated(const Type &x, const Type &y, const Member &member, const std::string &where) const
{
    if (m_annotations.empty())
        return false;
    MOLT_TRY(length, m_annotations.length_member(x, y, member.name));  // only checked here: it must resolve
    (void)length;
    MOLT_TRY(pointee, m_annotations.points_to(y, member.name));
    if (pointee) {
        MOLT_TRY(planned, plan_pointee(pointee->old_pointee, pointee->new_pointee, where));
        (void)planned;
        return true;
    }
    MOLT_TRY(cases, m_annotations.union_cases(x, y, member.name));
    if (cases.cases.empty())
        return false;
    for (const UnionCase &each : cases.cases) {
        MOLT_TRY(planned, plan(each.old_member->type, each.new_member->type, where + "." + each.new_member->name));
        (void)planned;
    }
    return true;
}

std::optional<std::uint64_t> ValueConverter::corresponding_offset(TypeId old_type, TypeId new_type, std::uint64_t offset,
                                                                  TypeId old_pointee) const
{
    TypeId stripped = schema::strip_typedefs_and_qualifiers(m_old, old_type);
    if (offset == 0 && stripped == schema::strip_typedefs_and_qualifiers(m_old, old_pointee))
        return 0;
    const Type &x = m_old.type(stripped);
    const Type &y = layout(m_new, new_type);
    if (x.kind == TypeKind::Struct && y.kind == TypeKind::Struct) {
        const std::vector<const Member *> &matched = matched_members(x, y);
        for (std::size_t index = 0; index < y.members.size(); ++index) {
            const Member *old_member = matched[index];
            if (!old_member || old_member->is_bit_field() || y.members[index].is_bit_field() || offset < old_member->offset ||
                offset >= old_member->offset + layout(m_old, old_member->type).size)
                continue;
            if (auto inner = corresponding_offset(old_member->type, y.members[index].type, offset - old_member->offset, old_pointee))
                return y.members[index].offset + *inner;
        }
        return std::nullopt;  // in no member that the new version keeps, or not at a start of that type
    }
    if (x.kind == TypeKind::Array && y.kind == TypeKind::Array && x.counts.size() == 1 && y.counts.size() == 1) {
        std::uint64_t old_stride = layout(m_old, x.target).size, new_stride = layout(m_new, y.target).size;
        if (!old_stride || offset / old_stride >= std::min(x.counts[0], y.counts[0]))
            return std::nullopt;
        if (auto inner = corresponding_offset(x.target, y.target, offset % old_stride, old_pointee))
            return offset / old_stride * new_stride + *inner;
    }
    return std::nullopt;
}

Result<bool> ValueConverter::plan_array(const Type &x, std::size_t old_dim, const Type &y, std::size_t new_dim,
                                        const std::string &where) const
{
    if (x.counts.size() - old_dim != y.counts.size() - new_dim)
        return failure(where, "the number of array dimensions changed: needs a transformer");
    if (old_dim + 1 < x.counts.size())
        return plan_array(x, old_dim + 1, y, new_dim + 1, where + "[]");
    if (x.counts[old_dim] == schema::unknown_count || y.counts[new_dim] == schema::unknown_count)
        return failure(where, "an array of unknown length cannot be converted");
    return plan(x.target, y.target, where + "[]");
}

Result<bool> ValueConverter::convert(TypeId old_type, const void *from, TypeId new_type, void *to,
                                     const std::string &where, bool zeroed) const
{
    return run(program(old_type, new_type), static_cast<const unsigned char *>(from), static_cast<unsigned char *>(to),
               Place(where), zeroed);
}

Result<bool> ValueConverter::convert_value(TypeId old_type, const unsigned char *source, TypeId new_type,
                                           unsigned char *target, const Place &where) const
{
    const Type &x = layout(m_old, old_type);
    const Type &y = layout(m_new, new_type);
    // Structs, types with a transformer and opaque types go by their compiled program, which
    // knows the annotations (a void * it points to, a union's case) and the transformer's rules.
    if (type_transformer(old_type, new_type) || m_annotations.opaque(new_type) ||
        (x.kind == TypeKind::Struct && y.kind == TypeKind::Struct))
        return run(program(old_type, new_type), source, target, where, false);
    if (m_identity.identical(old_type, new_type) && pointer_free(old_type)) {
        std::memcpy(target, source, y.size);  // the same bytes mean the same value
        return true;
    }  // identical but holding pointers (to functions, to old globals...): converted piecewise
    switch (y.kind) {
    case TypeKind::Union:
        if (x.kind == TypeKind::Union && m_identity.identical(old_type, new_type)) {
            std::memcpy(target, source, y.size);  // a union is copied as it is or not at all
            return true;
        }
        break;
    case TypeKind::Array:
        if (x.kind == TypeKind::Array)
            return convert_array(x, 0, source, y, 0, target, where);
        break;
    default:
        return convert_scalar(old_type, source, new_type, target, where);
    }
    return failure(where.text(), "no default conversion from " + schema::type_to_c(m_old, old_type) + " to " +
                              schema::type_to_c(m_new, new_type));
}

namespace {

// `char` itself, the type of strings (not signed or unsigned char, which hold bytes as often).
bool is_plain_char(const Schema &schema, TypeId id)
{
    const Type &type = layout(schema, id);
    return type.kind == TypeKind::Base && type.size == 1 && type.name == "char";
}

}  // namespace

Result<bool> ValueConverter::convert_array(const Type &x, std::size_t old_dim, const unsigned char *from,
                                           const Type &y, std::size_t new_dim, unsigned char *to,
                                           const Place &where) const
{
    std::uint64_t old_count = element_count(x, old_dim), new_count = element_count(y, new_dim);
    // Size of one element at this dimension: the rest of the dimensions times the element.
    auto stride = [](const Schema &schema, const Type &array, std::size_t dim) {
        std::uint64_t size = layout(schema, array.target).size;
        for (std::size_t i = dim + 1; i < array.counts.size(); ++i)
            size *= array.counts[i];
        return size;
    };
    std::uint64_t old_stride = stride(m_old, x, old_dim), new_stride = stride(m_new, y, new_dim);
    for (std::uint64_t i = 0; i < new_count; ++i) {
        Place place(where, i);
        if (i >= old_count) {
            std::memset(to + i * new_stride, 0, new_stride);
            continue;
        }
        Result<bool> converted = old_dim + 1 < x.counts.size()
                                     ? convert_array(x, old_dim + 1, from + i * old_stride, y, new_dim + 1,
                                                     to + i * new_stride, place)
                                     : convert_value(x.target, from + i * old_stride, y.target, to + i * new_stride, place);
        if (!converted)
            return converted;
    }
    for (std::uint64_t i = new_count; i < old_count; ++i)
        if (!all_zero(from + i * old_stride, old_stride))
            return failure(Place(where, i).text(),
                           "the array shrank from " + std::to_string(old_count) + " to " + std::to_string(new_count) +
                               " elements and this dropped element is not zero");
    // A string in a char array that shrank to its length exactly kept every character and lost
    // its terminating NUL (among the dropped elements, all zero): read as a string, it runs on
    // into whatever follows.
    if (new_count < old_count && new_count > 0 && old_dim + 1 == x.counts.size() && is_plain_char(m_old, x.target) &&
        !std::memchr(from, 0, new_count))
        return failure(where.text(), "the array shrank from " + std::to_string(old_count) + " to " + std::to_string(new_count) +
                                         " characters, and its string of " + std::to_string(new_count) +
                                         " fills it without its terminating NUL");
    return true;
}

Result<bool> ValueConverter::convert_scalar(TypeId old_type, const unsigned char *from, TypeId new_type,
                                            unsigned char *to, const Place &where) const
{
    const Type &x = layout(m_old, old_type);
    const Type &y = layout(m_new, new_type);
    if (x.kind == TypeKind::Enum && y.kind == TypeKind::Enum) {
        __int128 value = read_integer(from, x.size, x.enum_signed);
        const schema::Enumerator *old_name = nullptr;
        for (const auto &enumerator : x.enumerators)
            if (enumerator.value == value)
                old_name = &enumerator;
        if (!old_name)
            return failure(where.text(), "value " + text(value) + " is no enumerator of the old enum: needs a transformer");
        for (const auto &enumerator : y.enumerators)
            if (enumerator.name == old_name->name) {
                std::memcpy(to, &enumerator.value, y.size);
                return true;
            }
        return failure(where.text(), "enumerator " + old_name->name + " no longer exists: needs a transformer");
    }
    if (is_integer(x) && is_integer(y)) {
        __int128 value = read_integer(from, x.size, is_signed(x));
        if (y.kind == TypeKind::Base && y.encoding == Encoding::Bool)
            value = value != 0;
        if (!fits(value, y.size * 8, is_signed(y)))
            return failure(where.text(), "value " + text(value) + " does not fit in " + schema::type_to_c(m_new, new_type));
        std::memcpy(to, &value, y.size);
        return true;
    }
    if (x.kind == TypeKind::Base && y.kind == TypeKind::Base && x.encoding == Encoding::Float &&
        y.encoding == Encoding::Float) {
        long double value = x.size == 4 ? *reinterpret_cast<const float *>(from)
                            : x.size == 8 ? *reinterpret_cast<const double *>(from)
                                          : *reinterpret_cast<const long double *>(from);
        if (y.size == 8) {
            double narrowed = static_cast<double>(value);
            std::memcpy(to, &narrowed, 8);
        } else if (y.size == 4) {
            float narrowed = static_cast<float>(value);
            std::memcpy(to, &narrowed, 4);
        } else {
            std::memcpy(to, &value, std::min<std::uint64_t>(y.size, sizeof value));
        }
        return true;
    }
    if (x.kind == TypeKind::Pointer && y.kind == TypeKind::Pointer) {
        std::uintptr_t address;
        std::memcpy(&address, from, sizeof address);
        const Type &pointee = layout(m_new, y.target);
        if (pointee.kind == TypeKind::Function) {
            if (address)
                if (auto moved = m_remap(address))
                    address = *moved;
        } else if (address && m_translate && pointee.kind != TypeKind::Void) {
            auto moved = m_translate->translate(address, schema::strip_typedefs_and_qualifiers(m_old, x.target), where);
            if (!moved)
                return moved.error();
            address = *moved;
        }
        std::memcpy(to, &address, sizeof address);
        return true;
    }
    if (m_identity.identical(old_type, new_type)) {
        std::memcpy(to, from, y.size);
        return true;
    }
    return failure(where.text(), "no default conversion from " + schema::type_to_c(m_old, old_type) + " to " +
                              schema::type_to_c(m_new, new_type));
}

}  // namespace molt::transform
