// Annotations resolved against the schemas of the old and the new version.
#include "annotations.h"

#include <cerrno>
#include <cstdlib>
#include <set>
#include <utility>


namespace molt::transform {
namespace {

using schema::Member;
using schema::Schema;
using schema::Transformer;
using schema::Type;
using schema::TypeId;
using schema::TypeKind;
using schema::layout;
using schema::member_named;

Error failure(const std::string &why) { return Error{"", why}; }

// A case value as written in the source: a number, or an enumerator's name.
// An annotation as the source spells it, for messages.
std::string spelled(const Transformer &record)
{
    switch (record.kind) {
    case Transformer::Kind::PointsTo:
        return record.member.empty() ? "MOLT_VARIABLE_POINTS_TO(" + record.name + ")"
                                     : "MOLT_POINTS_TO(" + record.name + ", " + record.member + ")";
    case Transformer::Kind::LengthIn: return "MOLT_LENGTH_IN(" + record.name + ", " + record.member + ")";
    case Transformer::Kind::UnionCase: return "MOLT_UNION_CASE(" + record.name + ", " + record.member + ")";
    case Transformer::Kind::Opaque: return "MOLT_OPAQUE(" + record.name + ")";
    case Transformer::Kind::Type: return "MOLT_TYPE_TRANSFORMER(" + record.name + ")";
    case Transformer::Kind::Variable: return "MOLT_VARIABLE_TRANSFORMER(" + record.name + ")";
    case Transformer::Kind::RenameVariable:
        return "MOLT_RENAME_VARIABLE(" + record.renamed_from + ", " + record.renamed_to + ")";
    case Transformer::Kind::RenameType: return "MOLT_RENAME_TYPE(" + record.renamed_from + ", " + record.renamed_to + ")";
    case Transformer::Kind::RenameMember:
        return "MOLT_RENAME_MEMBER(" + record.name + ", " + record.renamed_from + ", " + record.renamed_to + ")";
    default: return record.name;
    }
}

std::optional<__int128> number_of(const std::string &text)
{
    errno = 0;
    char *end = nullptr;
    long long value = std::strtoll(text.c_str(), &end, 0);
    if (errno || end == text.c_str())
        return std::nullopt;
    while (*end == 'u' || *end == 'U' || *end == 'l' || *end == 'L')
        ++end;
    return *end ? std::nullopt : std::optional<__int128>(value);
}

}  // namespace

Annotations::Annotations(const Schema &old_schema, const Schema &new_schema) : m_old(old_schema), m_new(new_schema)
{
    for (const Transformer &record : m_new.transformers)
        if (record.kind == Transformer::Kind::PointsTo || record.kind == Transformer::Kind::LengthIn ||
            record.kind == Transformer::Kind::UnionCase || record.kind == Transformer::Kind::Opaque)
            m_empty = false;
    if (m_new.transformers.empty())
        return;
    // Types by the name `molt schema` prints; a complete struct before a mere declaration.
    auto index = [](const Schema &schema, std::unordered_map<std::string, TypeId> &names) {
        for (TypeId id = 0; id < schema.types.size(); ++id) {
            const Type &type = schema.type(id);
            if (type.kind == TypeKind::Const || type.kind == TypeKind::Volatile || type.kind == TypeKind::Pointer ||
                type.kind == TypeKind::Array || type.kind == TypeKind::Function)
                continue;
            auto [found, inserted] = names.try_emplace(schema::qualified_type_name(schema, id), id);
            if (!inserted && schema.type(found->second).declaration && !type.declaration)
                found->second = id;
        }
    };
    index(m_old, m_old_types);
    index(m_new, m_new_types);
}

std::optional<TypeId> Annotations::find_type(const Schema &schema, const std::string &name) const
{
    const auto &names = &schema == &m_old ? m_old_types : m_new_types;
    auto found = names.find(name);
    return found == names.end() ? std::nullopt : std::optional<TypeId>(found->second);
}

Result<PointeePair> Annotations::pointee_pair(const std::string &type_name, const std::string &annotation) const
{
    auto new_pointee = find_type(m_new, type_name);
    if (!new_pointee)
        return failure(annotation + ": the new version has no type " + type_name);
    auto old_pointee = find_type(m_old, m_new.old_name(Transformer::Kind::RenameType, type_name));
    if (!old_pointee)  // a type new in this version: old objects cannot be of it
        return failure(annotation + ": the old version has no type " + type_name);
    return PointeePair{*old_pointee, *new_pointee};
}

Result<std::optional<PointeePair>> Annotations::points_to(const Type &y, const std::string &member) const
{
    if (m_empty)
        return std::optional<PointeePair>{};
    const Transformer *record = m_new.find_annotation(Transformer::Kind::PointsTo, schema::qualified_type_name(y), member);
    const Member *declared = record ? member_named(y, member) : nullptr;
    if (!declared || layout(m_new, declared->type).kind != TypeKind::Pointer ||
        layout(m_new, layout(m_new, declared->type).target).kind != TypeKind::Void)
        return std::optional<PointeePair>{};  // only a void * member (problems() says so of the others)
    MOLT_TRY(pair, pointee_pair(record->target, "MOLT_POINTS_TO(" + record->name + ", " + member + ")"));
    return std::optional<PointeePair>(pair);
}

Result<std::optional<PointeePair>> Annotations::variable_points_to(const std::string &variable) const
{
    if (m_empty)
        return std::optional<PointeePair>{};
    const Transformer *record = m_new.find_annotation(Transformer::Kind::PointsTo, variable, "");
    if (!record)
        return std::optional<PointeePair>{};
    MOLT_TRY(pair, pointee_pair(record->target, "MOLT_VARIABLE_POINTS_TO(" + variable + ")"));
    return std::optional<PointeePair>(pair);
}

Result<const Member *> Annotations::length_member(const Type &x, const Type &y, const std::string &member) const
{
    if (m_empty)
        return static_cast<const Member *>(nullptr);
    const Transformer *record = m_new.find_annotation(Transformer::Kind::LengthIn, schema::qualified_type_name(y), member);
    if (!record)
        return static_cast<const Member *>(nullptr);
    std::string annotation = "MOLT_LENGTH_IN(" + record->name + ", " + member + ", " + record->target + ")";
    const Member *length = member_named(y, record->target);
    if (!length)
        return failure(annotation + ": " + record->name + " has no member " + record->target);
    const Member *old_length = schema::corresponding_member(x, *length, y, m_new);
    if (!old_length || old_length->is_bit_field() || !schema::is_integral(layout(m_old, old_length->type)))
        return failure(annotation + ": the old version's " + record->name + " has no integer member " + record->target);
    return old_length;
}

Result<Annotations::Cases> Annotations::union_cases(const Type &x, const Type &y, const std::string &member) const
{
    Cases cases;
    if (m_empty)
        return cases;
    std::string type_name = schema::qualified_type_name(y);
    for (const Transformer &record : m_new.transformers) {
        if (record.kind != Transformer::Kind::UnionCase || record.name != type_name || record.member != member)
            continue;
        std::string annotation = "MOLT_UNION_CASE(" + type_name + ", " + member + ", " + record.target + ", " +
                                 record.case_value + ", " + record.case_member + ")";
        const Member *union_member = member_named(y, member);
        const Member *old_union = union_member ? schema::corresponding_member(x, *union_member, y, m_new) : nullptr;
        if (!union_member || !old_union || layout(m_new, union_member->type).kind != TypeKind::Union ||
            layout(m_old, old_union->type).kind != TypeKind::Union)
            return failure(annotation + ": " + member + " is not a union member of both versions");
        const Member *discriminant = member_named(y, record.target);
        const Member *old_discriminant = discriminant ? schema::corresponding_member(x, *discriminant, y, m_new) : nullptr;
        if (!old_discriminant || old_discriminant->is_bit_field() ||
            !schema::is_integral(layout(m_old, old_discriminant->type)))
            return failure(annotation + ": the old version's " + type_name + " has no integer member " + record.target);
        const Type &new_union = layout(m_new, union_member->type);
        const Type &old_union_type = layout(m_old, old_union->type);
        const Member *case_member = member_named(new_union, record.case_member);
        const Member *old_case = case_member ? schema::corresponding_member(old_union_type, *case_member, new_union, m_new) : nullptr;
        if (!case_member || !old_case)
            return failure(annotation + ": the union's member " + record.case_member +
                           (case_member ? " is not in the old version" : " is not in the new version"));
        // The value, as the old version's objects hold it: a number, or an enumerator of the old
        // version (by name: an enum may be renumbered between versions), of the discriminant's
        // enum when it is one, else of any enum (an int discriminant holding enumerators).
        std::optional<__int128> value = number_of(record.case_value);
        const Type &old_kind = layout(m_old, old_discriminant->type);
        auto enumerator_in = [&](const Type &type) {
            for (const auto &enumerator : type.enumerators)
                if (!value && enumerator.name == record.case_value)
                    value = enumerator.value;
        };
        if (!value && old_kind.kind == TypeKind::Enum)
            enumerator_in(old_kind);
        for (const Type &type : m_old.types)
            if (!value && type.kind == TypeKind::Enum)
                enumerator_in(type);
        if (!value)
            return failure(annotation + ": " + record.case_value + " is neither a number nor an enumerator of the old version");
        for (const UnionCase &earlier : cases.cases)
            if (earlier.value == *value && earlier.new_member != case_member)
                return failure(annotation + ": case " + record.case_value + " is given to " + earlier.new_member->name +
                               " already: one member per value");
        cases.discriminant = old_discriminant;
        cases.cases.push_back({*value, old_case, case_member});
    }
    return cases;
}

// Transformers and renames that name nothing, or two things at once: each would be ignored, or
// would lose a value, without a word (a misspelt type name leaves its objects to the default
// conversion; a rename onto a variable of the old version drops that variable's value).
void Annotations::declaration_problems(std::vector<std::string> &problems) const
{
    std::set<std::pair<Transformer::Kind, std::string>> declared;
    // A rename in a header comes once per file that includes it: the same record, said once.
    std::set<std::string> renames_seen;
    // The old version's `name` lives on under that name: not renamed away by another rename (a
    // swap, a chain), and, for a type, defined (a declaration alone has no objects).
    auto stays = [&](Transformer::Kind kind, const std::string &name, const std::string &type = {}) {
        return m_new.new_name(kind, name, type) == name;
    };
    auto defined_old_type = [&](const std::string &name) {
        auto id = find_type(m_old, name);
        return id && !m_old.type(*id).declaration;
    };
    // A variable's or a type's rename: its old name in the old version, its new one in the new,
    // and no old one of the new name that lives on (`noun`: "variable", "type").
    auto rename_problem = [&](const Transformer &record, const std::string &written, const char *noun,
                              const std::function<bool(const Schema &, const std::string &)> &has,
                              const std::function<bool(const std::string &)> &old_has_kept,
                              const char *dropped) -> std::optional<std::string> {
        if (!has(m_old, record.renamed_from))
            return written + ": the old version has no " + noun + " " + record.renamed_from;
        if (!has(m_new, record.renamed_to))
            return written + ": the new version has no " + noun + " " + record.renamed_to;
        if (old_has_kept(record.renamed_to) && stays(record.kind, record.renamed_to))
            return written + ": the old version has a " + noun + " " + record.renamed_to + " too, " + dropped;
        if (!declared.insert({record.kind, record.renamed_from}).second)
            return written + ": " + record.renamed_from + " is renamed twice";
        return std::nullopt;
    };
    auto has_variable = [](const Schema &schema, const std::string &name) { return schema.find_variable(name) != nullptr; };
    auto has_type = [&](const Schema &schema, const std::string &name) { return find_type(schema, name).has_value(); };
    for (const Transformer &record : m_new.transformers) {
        std::string written = spelled(record);
        if (record.kind == Transformer::Kind::RenameVariable || record.kind == Transformer::Kind::RenameType ||
            record.kind == Transformer::Kind::RenameMember) {
            if (!renames_seen.insert(written).second)
                continue;
        }
        switch (record.kind) {
        case Transformer::Kind::Type:
            if (!find_type(m_new, record.name))
                problems.push_back(written + ": the new version has no type " + record.name + " (names as molt schema prints them)");
            else if (!declared.insert({record.kind, record.name}).second)
                problems.push_back(written + ": declared twice (one transformer per type; one in a header is declared "
                                             "once per file that includes it: put it in one .c file)");
            break;
        case Transformer::Kind::Variable:
            if (!m_new.find_variable(record.name))
                problems.push_back(written + ": the new version has no variable " + record.name +
                                   " (names as molt schema prints them, kvd.c/store for a static)");
            else if (!declared.insert({record.kind, record.name}).second)
                problems.push_back(written + ": declared twice (one transformer per variable; one in a header is "
                                             "declared once per file that includes it: put it in one .c file)");
            break;
        case Transformer::Kind::RenameVariable:
            if (auto problem = rename_problem(record, written, "variable", has_variable,
                                              [&](const std::string &name) { return has_variable(m_old, name); },
                                              "whose value the rename would drop"))
                problems.push_back(*problem);
            break;
        case Transformer::Kind::RenameType:
            if (auto problem = rename_problem(record, written, "type", has_type, defined_old_type,
                                              "whose objects would be converted from the wrong type"))
                problems.push_back(*problem);
            break;
        case Transformer::Kind::RenameMember: {
            auto y = find_type(m_new, record.name);
            auto x = find_type(m_old, m_new.old_name(Transformer::Kind::RenameType, record.name));
            if (!y || (layout(m_new, *y).kind != TypeKind::Struct && layout(m_new, *y).kind != TypeKind::Union)) {
                problems.push_back(written + ": the new version has no struct or union " + record.name);
                break;
            }
            if (m_new.type(*y).kind != TypeKind::Struct && m_new.type(*y).kind != TypeKind::Union) {
                // Members are matched under the struct's own name: under a typedef's, the rename
                // would be ignored and the member's values dropped.
                problems.push_back(written + ": " + record.name + " is a typedef: name the struct itself (" +
                                   schema::qualified_type_name(m_new, schema::strip_typedefs_and_qualifiers(m_new, *y)) + ")");
                break;
            }
            if (!x)
                break;  // a type new in this version: no old member to carry
            const Type &old_type = layout(m_old, *x), &new_type = layout(m_new, *y);
            if (!member_named(old_type, record.renamed_from))
                problems.push_back(written + ": the old version's " + record.name + " has no member " + record.renamed_from);
            else if (!member_named(new_type, record.renamed_to))
                problems.push_back(written + ": the new version's " + record.name + " has no member " + record.renamed_to);
            else if (member_named(old_type, record.renamed_to) && stays(record.kind, record.renamed_to, record.name))
                problems.push_back(written + ": the old version's " + record.name + " has a member " + record.renamed_to +
                                   " too, whose values the rename would drop");
            else if (!declared.insert({record.kind, record.name + "." + record.renamed_from}).second)
                problems.push_back(written + ": " + record.name + "." + record.renamed_from + " is renamed twice");
            break;
        }
        default:
            break;
        }
    }
}

std::vector<std::string> Annotations::problems() const
{
    std::vector<std::string> problems;
    declaration_problems(problems);
    auto report = [&](const Error &error) { problems.push_back(error.message); };
    // A union member's cases are judged together (a value given twice is a conflict), once.
    std::set<std::pair<std::string, std::string>> union_members_judged;
    std::optional<schema::LayoutIdentity> identity;  // for MOLT_OPAQUE's pointers, made once if needed
    for (const Transformer &record : m_new.transformers) {
        if (record.kind == Transformer::Kind::UnionCase && !union_members_judged.insert({record.name, record.member}).second)
            continue;
        std::string written = spelled(record);
        switch (record.kind) {
        case Transformer::Kind::PointsTo:
            if (record.member.empty()) {
                const schema::Variable *variable = m_new.find_variable(record.name);
                if (!variable || layout(m_new, variable->type).kind != TypeKind::Pointer)
                    report(failure(written + ": the new version has no pointer variable " + record.name));
                else if (auto pair = pointee_pair(record.target, written); !pair)
                    report(pair.error());
                continue;
            }
            [[fallthrough]];
        case Transformer::Kind::LengthIn:
        case Transformer::Kind::UnionCase: {
            auto y = find_type(m_new, record.name);
            auto x = find_type(m_old, m_new.old_name(Transformer::Kind::RenameType, record.name));
            if (!y || layout(m_new, *y).kind != TypeKind::Struct) {
                report(failure(written + ": the new version has no struct " + record.name));
                continue;
            }
            if (m_new.type(*y).kind != TypeKind::Struct) {  // matched by the struct's own name
                report(failure(written + ": " + record.name + " is a typedef: name the struct itself (" +
                               schema::qualified_type_name(m_new, schema::strip_typedefs_and_qualifiers(m_new, *y)) + ")"));
                continue;
            }
            if (!x || layout(m_old, *x).kind != TypeKind::Struct)
                continue;  // a struct new in this version: no old object to convert
            const Type &new_struct = layout(m_new, *y);
            const Member *member = member_named(new_struct, record.member);
            if (!member) {
                report(failure(written + ": " + record.name + " has no member " + record.member));
                continue;
            }
            const Type &member_type = layout(m_new, member->type);
            if (record.kind != Transformer::Kind::UnionCase && member_type.kind != TypeKind::Pointer)
                report(failure(written + ": " + record.member + " is not a pointer"));
            else if (record.kind == Transformer::Kind::PointsTo && layout(m_new, member_type.target).kind != TypeKind::Void)
                report(failure(written + ": " + record.member + " is a typed pointer already (only a void * needs it)"));
            else if (record.kind == Transformer::Kind::PointsTo) {
                if (auto pair = pointee_pair(record.target, written); !pair)
                    report(pair.error());
            } else if (record.kind == Transformer::Kind::LengthIn) {
                if (auto length = length_member(layout(m_old, *x), new_struct, record.member); !length)
                    report(length.error());
            } else if (auto cases = union_cases(layout(m_old, *x), new_struct, record.member); !cases) {
                report(cases.error());
            }
            continue;
        }
        case Transformer::Kind::Opaque:
            if (!find_type(m_new, record.name))
                report(failure(written + ": the new version has no type " + record.name));
            else if (auto problem = opaque_pointer_problem(record, identity))
                report(failure(written + ": " + *problem));
            continue;
        default:
            continue;
        }
    }
    return problems;
}

namespace {

// The pointers inside an object of old type `id` (its members, its arrays' elements; not what they
// point to), each with where it lies ("e", "slots[]") and its pointee, behind typedefs.
void pointers_inside(const Schema &schema, TypeId id, const std::string &where,
                     std::vector<std::pair<std::string, TypeId>> &pointers, int depth = 0)
{
    const Type &type = layout(schema, id);
    if (depth > 64)
        return;
    switch (type.kind) {
    case TypeKind::Pointer:
        pointers.emplace_back(where, schema::strip_typedefs_and_qualifiers(schema, type.target));
        return;
    case TypeKind::Array:
        pointers_inside(schema, type.target, where + "[]", pointers, depth + 1);
        return;
    case TypeKind::Struct:
    case TypeKind::Union:
        for (const Member &member : type.members)
            pointers_inside(schema, member.type, where.empty() ? member.name : where + "." + member.name, pointers, depth + 1);
        return;
    default:
        return;
    }
}

}  // namespace

std::optional<std::string> Annotations::opaque_pointer_problem(const Transformer &record,
                                                                std::optional<schema::LayoutIdentity> &identity) const
{
    auto old_type = find_type(m_old, m_new.old_name(Transformer::Kind::RenameType, record.name));
    if (!old_type)
        return std::nullopt;  // new in this version: no old object copied
    std::vector<std::pair<std::string, TypeId>> pointers;
    pointers_inside(m_old, *old_type, "", pointers);
    if (pointers.empty())
        return std::nullopt;
    if (!identity)
        identity.emplace(m_old, m_new);
    for (auto [where, pointee] : pointers) {
        // Through pointers to pointers: a block of pointers to objects that move is converted
        // too (its pointers translated into a new copy), and moves with them.
        std::string through;
        for (int hops = 0; m_old.type(pointee).kind == TypeKind::Pointer && hops < 16; ++hops) {
            pointee = schema::strip_typedefs_and_qualifiers(m_old, m_old.type(pointee).target);
            through += "pointers to ";
        }
        const Type &target = m_old.type(pointee);
        if (target.kind != TypeKind::Struct && target.kind != TypeKind::Union)
            continue;  // a scalar or void: its objects are not converted as such
        std::string name = schema::qualified_type_name(m_old, pointee);
        auto new_pointee = find_type(m_new, m_new.new_name(Transformer::Kind::RenameType, name));
        if (!new_pointee || identity->identical(pointee, *new_pointee))
            continue;  // gone, or the same: its objects stay where they are
        return "it holds a pointer (" + where + ") to " + through + name +
               ", whose objects this update converts: copied as bytes, it would still lead to the old object, "
               "which is freed after the commit (convert the type member by member, or with a transformer)";
    }
    return std::nullopt;
}

std::vector<TypeId> Annotations::annotated_types(const std::function<bool(const PointeePair &)> &pointee_changed) const
{
    std::vector<TypeId> types;
    for (const Transformer &record : m_new.transformers) {
        bool matters = record.kind == Transformer::Kind::UnionCase;
        if (record.kind == Transformer::Kind::PointsTo && !record.member.empty()) {
            auto pair = pointee_pair(record.target, "");
            matters = pair && pointee_changed(*pair);
        }
        if (auto type = find_type(m_new, record.name); matters && type)
            types.push_back(*type);
    }
    return types;
}

bool Annotations::opaque(TypeId new_type) const
{
    if (m_empty)
        return false;
    TypeId stripped = schema::strip_typedefs_and_qualifiers(m_new, new_type);
    return m_new.find_transformer(Transformer::Kind::Opaque, schema::qualified_type_name(m_new, stripped)) ||
           m_new.find_transformer(Transformer::Kind::Opaque, schema::qualified_type_name(m_new, new_type));
}

}  // namespace molt::transform
