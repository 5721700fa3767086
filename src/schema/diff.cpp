// The schema diff: match variables, types and functions by name, then classify each change.
#include "diff.h"

#include "layout_identity.h"
#include "type_merge.h"

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>
#include <string_view>
#include <utility>

namespace molt::schema {
namespace {

using Pair = std::pair<TypeId, TypeId>;

struct Comparison {
    Verdict verdict = Verdict::Identical;
    std::string reason;
};

// A scalar integer (enums are compared by their enumerators instead).
bool is_base_integer(const Type &type) { return type.kind == TypeKind::Base && is_integral(type); }

const char *kind_noun(TypeKind kind)
{
    switch (kind) {
    case TypeKind::Void: return "void";
    case TypeKind::Base: return "a scalar";
    case TypeKind::Struct: return "a struct";
    case TypeKind::Union: return "a union";
    case TypeKind::Enum: return "an enum";
    case TypeKind::Array: return "an array";
    case TypeKind::Pointer: return "a pointer";
    case TypeKind::Function: return "a function";
    default: return "a type";
    }
}

constexpr std::size_t max_comparison_depth = 512;

bool is_named_tagged(const Type &type)
{
    return (type.kind == TypeKind::Struct || type.kind == TypeKind::Union || type.kind == TypeKind::Enum) &&
           !type.name.empty();
}

// Compares types of the old schema with types of the new one.
class Comparer {
public:
    Comparer(const Schema &old_schema, const Schema &new_schema) : m_old(old_schema), m_new(new_schema) {}

    // Same layout and meaning, so that the bits can be copied.
    bool identical(TypeId a, TypeId b) const { return m_identity.identical(a, b); }

    Comparison compare(TypeId a, TypeId b, const std::string &where)
    {
        if (identical(a, b))
            return {};
        TypeId stripped_a = strip_typedefs_and_qualifiers(m_old, a);
        TypeId stripped_b = strip_typedefs_and_qualifiers(m_new, b);
        Pair key{stripped_a, stripped_b};
        if (auto it = m_compared.find(key); it != m_compared.end())
            return it->second;
        if (m_in_progress.count(key))
            return {Verdict::Convertible, "the pointee is converted"};  // a cycle: known to differ
        if (m_in_progress.size() > max_comparison_depth)  // only corrupt input nests this deep
            return needs_transformer(a, b, where, "types nested too deeply to compare");
        m_in_progress.insert(key);
        Comparison result = classify(a, b, where);
        m_in_progress.erase(key);
        // Kept only for named types, whose findings are recorded under their own name: a
        // scalar or array change is a finding at each place it occurs, and a pointer's verdict
        // may rest on a pointee still being compared. A union's change is a finding at each
        // place too: each struct member holding it has cases of its own (MOLT_UNION_CASE).
        if (is_named_tagged(m_old.type(stripped_a)) && !per_place(stripped_a))
            m_compared[key] = result;
        return result;
    }

    // A named type as a whole (diff_types): a union's findings are its places' (the members and
    // variables of its type), so its own line records none.
    Comparison compare_type(TypeId a, TypeId b, const std::string &name)
    {
        if (!per_place(strip_typedefs_and_qualifiers(m_old, a)))
            return compare(a, b, name);
        return compare_quietly(a, b, name);
    }

    // A comparison that records no finding: a question asked on the side (does a union's case
    // convert?), or a union's own line. (A union's classification looks no deeper, and what
    // the comparison caches holds no finding, so nothing is lost for a later place.)
    Comparison compare_quietly(TypeId a, TypeId b, const std::string &where)
    {
        struct Quiet {
            bool &flag, was;
            explicit Quiet(bool &flag) : flag(flag), was(flag) { flag = true; }
            ~Quiet() { flag = was; }
        } quiet(m_quiet);
        return compare(a, b, where);
    }

    // A finding the comparison of types does not make (a variable's thread-local storage).
    void note(const std::string &where, const std::string &old_type, const std::string &new_type,
              const std::string &reason)
    {
        record(where, old_type, new_type, reason);
    }

    // The members of two structs that changed (added, removed, moved, retyped, resized).
    std::vector<MemberChange> member_changes(TypeId a, TypeId b, const std::string &where)
    {
        const Type &old_type = layout(m_old, a);
        const Type &new_type = layout(m_new, b);
        std::set<const Member *> continued;  // old members that a new one continues
        std::vector<MemberChange> changes;
        for (const Member &member : new_type.members) {
            const Member *old_member = corresponding_member(old_type, member, new_type, m_new);
            if (!old_member) {
                MemberChange added = describe(nullptr, &member);
                added.status = Status::Added;
                added.verdict = Verdict::Convertible;
                added.reason = "new member: zeroed";
                changes.push_back(std::move(added));
                continue;
            }
            continued.insert(old_member);
            MemberChange change = compare_member(*old_member, member, where);
            if (change.status != Status::Unchanged)
                changes.push_back(std::move(change));
        }
        for (const Member &member : old_type.members) {
            if (continued.count(&member))
                continue;
            MemberChange removed = describe(&member, nullptr);
            removed.status = Status::Removed;
            removed.verdict = Verdict::Convertible;
            removed.reason = "member removed: its value is dropped";
            changes.push_back(std::move(removed));
        }
        return changes;
    }

    std::vector<Finding> take_findings() { return std::move(m_findings); }

private:
    // Records the finding once per place and once per pair of types: a typedef'd function
    // pointer is reported under the typedef, not again under each variable of that type.
    Comparison needs_transformer(TypeId a, TypeId b, const std::string &where, std::string reason)
    {
        const Type &old_type = m_old.type(a);
        Pair pair{strip_typedefs_and_qualifiers(m_old, a), strip_typedefs_and_qualifiers(m_new, b)};
        bool named = (old_type.kind == TypeKind::Typedef || is_named_tagged(old_type)) && !per_place(pair.first);
        if (!named || m_finding_pairs.insert({pair, reason}).second)
            record(where, type_to_c(m_old, a), type_to_c(m_new, b), reason);
        return {Verdict::NeedsTransformer, std::move(reason)};
    }

    // Whose change is a finding at each place it occurs rather than once under its name.
    bool per_place(TypeId stripped_old) const { return m_old.type(stripped_old).kind == TypeKind::Union; }

    void record(const std::string &where, std::string old_type, std::string new_type, const std::string &reason)
    {
        if (m_quiet)
            return;
        if (m_finding_places.insert(where).second)
            m_findings.push_back({where, std::move(old_type), std::move(new_type), reason, ""});
    }

    // A tagged type's name for a message; an anonymous one is named by the typedef that leads to
    // it ("an anonymous struct (typedef node_t)"), "struct <anonymous>" told the reader nothing.
    static std::string words_for(const Schema &schema, TypeId original, TypeId stripped)
    {
        const Type &type = schema.type(stripped);
        if (!type.name.empty())
            return qualified_type_name(schema, stripped);
        std::string words = std::string("an anonymous ") +
                            (type.kind == TypeKind::Union ? "union" : type.kind == TypeKind::Enum ? "enum" : "struct");
        TypeId id = original;
        for (int hops = 0; id != stripped && hops < 64; ++hops) {
            if (schema.type(id).kind == TypeKind::Typedef)
                return words + " (typedef " + schema.type(id).name + ")";
            id = schema.type(id).target;
        }
        return words;
    }

    // Why two tagged types do not match: their names differ. A tag that was dropped is the
    // usual cause, and keeping it the fix.
    std::string renamed_reason(TypeId original_a, TypeId a, TypeId original_b, TypeId b, const char *lead) const
    {
        std::string reason = lead + words_for(m_old, original_a, a) + " became " + words_for(m_new, original_b, b);
        if (m_new.type(b).name.empty() && !m_old.type(a).name.empty())
            reason += ": keep its tag (" + qualified_type_name(m_old, a) + ") so that Molt can match the two";
        return reason;
    }

    Comparison classify(TypeId original_a, TypeId original_b, const std::string &where)
    {
        TypeId a = strip_typedefs_and_qualifiers(m_old, original_a);
        TypeId b = strip_typedefs_and_qualifiers(m_new, original_b);
        const Type &x = m_old.type(a);
        const Type &y = m_new.type(b);
        if (x.kind != y.kind) {
            if (x.kind == TypeKind::Enum && is_base_integer(y))
                return {Verdict::Convertible, "enum to integer: the value is kept (range checked)"};
            return needs_transformer(original_a, original_b, where,
                                     std::string(kind_noun(x.kind)) + " became " + kind_noun(y.kind));
        }
        switch (x.kind) {
        case TypeKind::Base:
            return classify_base(x, y, original_a, original_b, where);
        case TypeKind::Enum:
            for (const Enumerator &enumerator : x.enumerators) {
                bool kept = std::any_of(y.enumerators.begin(), y.enumerators.end(),
                                        [&](const Enumerator &other) { return other.name == enumerator.name; });
                if (!kept)
                    return needs_transformer(original_a, original_b, where,
                                             "enumerator " + enumerator.name + " was removed");
            }
            return {Verdict::Convertible, "enumerators matched by name"};
        case TypeKind::Struct: {
            if (x.name != y.name &&
                m_new.new_name(Transformer::Kind::RenameType, qualified_type_name(m_old, a)) != qualified_type_name(m_new, b))
                return needs_transformer(original_a, original_b, where, renamed_reason(original_a, a, original_b, b, ""));
            if (x.declaration || y.declaration)
                return needs_transformer(original_a, original_b, where, "the struct's definition is missing in one version");
            std::string inner = x.name.empty() ? where : qualified_type_name(m_old, a);
            Comparison result{Verdict::Convertible, "members converted by name"};
            for (const MemberChange &change : member_changes(a, b, inner))
                if (change.verdict > result.verdict)
                    result = {change.verdict, "member " + change.name + " needs a transformer"};
            return result;
        }
        case TypeKind::Union:
            return needs_transformer(original_a, original_b, where, "the union's layout changed");
        case TypeKind::Array:
            return classify_array(x, y, original_a, original_b, where);
        case TypeKind::Pointer:
            return classify_pointer(x, y, original_a, original_b, where);
        case TypeKind::Function:
            if (!nominally_same(a, b, 0))
                return needs_transformer(original_a, original_b, where, "the function prototype changed");
            return {Verdict::Convertible, "the types it refers to are converted"};
        default:
            return needs_transformer(original_a, original_b, where, "the type changed");
        }
    }

    Comparison classify_base(const Type &x, const Type &y, TypeId a, TypeId b, const std::string &where)
    {
        if (is_base_integer(x) && is_base_integer(y)) {
            if (is_signed_integral(x) != is_signed_integral(y))
                return {Verdict::Convertible, "signedness changed: range checked at update time"};
            if (y.size > x.size)
                return {Verdict::Convertible, "integer widened"};
            if (y.size < x.size)
                return {Verdict::Convertible, "integer narrowed: range checked at update time"};
            return {Verdict::Convertible, "integer kind changed"};
        }
        if (x.encoding == Encoding::Float && y.encoding == Encoding::Float && y.size > x.size)
            return {Verdict::Convertible, "floating point widened"};
        if (x.encoding == Encoding::Float && y.encoding == Encoding::Float)
            return needs_transformer(a, b, where, "floating point narrowed");
        return needs_transformer(a, b, where, "the scalar type changed");
    }

    Comparison classify_array(const Type &x, const Type &y, TypeId a, TypeId b, const std::string &where)
    {
        if (x.counts.size() != y.counts.size())
            return needs_transformer(a, b, where, "the number of array dimensions changed");
        Comparison element = compare(x.target, y.target, where + "[]");
        Comparison result{std::max(element.verdict, Verdict::Convertible), element.reason};
        bool grown = false, shrunk = false;
        for (std::size_t i = 0; i < x.counts.size(); ++i) {
            if (x.counts[i] == unknown_count || y.counts[i] == unknown_count) {
                if (x.counts[i] != y.counts[i])
                    return needs_transformer(a, b, where, "a flexible array became a fixed one, or the reverse");
                // The update cannot tell how many elements an object holds: it converts none.
                if (element.verdict != Verdict::Identical)
                    return needs_transformer(a, b, where,
                                             "the elements of an array of unknown length changed: Molt cannot tell how "
                                             "many there are");
                continue;
            }
            grown |= y.counts[i] > x.counts[i];
            shrunk |= y.counts[i] < x.counts[i];
        }
        std::string bounds = grown && shrunk ? "array reshaped: new elements zeroed, dropped ones checked to be zero"
                             : grown        ? "array grown: new elements zeroed"
                             : shrunk       ? "array shrunk: dropped elements checked to be zero"
                                            : "";
        if (!bounds.empty())
            result.reason = result.reason.empty() ? bounds : bounds + "; elements: " + result.reason;
        else
            result.reason = "elements converted: " + result.reason;
        return result;
    }

    Comparison classify_pointer(const Type &x, const Type &y, TypeId a, TypeId b, const std::string &where)
    {
        const Type &old_pointee = layout(m_old, x.target);
        const Type &new_pointee = layout(m_new, y.target);
        if (old_pointee.kind == TypeKind::Void)
            return needs_transformer(a, b, where, "a void pointer became a typed pointer: Molt cannot tell what it points to");
        if (new_pointee.kind == TypeKind::Void)
            return {Verdict::Convertible, "became a void pointer: the pointee is kept as it is"};
        if (old_pointee.kind == TypeKind::Function && new_pointee.kind == TypeKind::Function) {
            if (!nominally_same(x.target, y.target, 0))
                return needs_transformer(a, b, where, "the function-pointer prototype changed");
            return {Verdict::Convertible, "remapped to the new version's function of the same name"};
        }
        // A named pointee is compared on its own (diff_types, before the variables), so its
        // verdict is looked up rather than recomputed: no recursion along pointer chains.
        TypeId old_id = strip_typedefs_and_qualifiers(m_old, x.target);
        TypeId new_id = strip_typedefs_and_qualifiers(m_new, y.target);
        if (is_named_tagged(old_pointee)) {
            bool renamed = m_new.new_name(Transformer::Kind::RenameType, qualified_type_name(m_old, old_id)) ==
                           qualified_type_name(m_new, new_id);
            if (old_pointee.kind != new_pointee.kind)  // struct e * became struct e **, say
                return needs_transformer(a, b, where,
                                         "the pointee " + words_for(m_old, x.target, old_id) + " became " +
                                             kind_noun(new_pointee.kind) + " (" + type_to_c(m_new, y.target) + ")");
            if (old_pointee.name != new_pointee.name && !renamed)
                return needs_transformer(a, b, where, renamed_reason(x.target, old_id, y.target, new_id, "the pointee "));
            if (per_place(old_id)) {  // not looked up: judged at each place (a union behind a pointer)
                if (compare(x.target, y.target, where + "->").verdict == Verdict::NeedsTransformer)
                    return {Verdict::NeedsTransformer, "the pointee needs a transformer"};
                return {Verdict::Convertible, "the pointee is converted"};
            }
            auto known = m_compared.find({old_id, new_id});
            if (known != m_compared.end() && known->second.verdict == Verdict::NeedsTransformer)
                return {Verdict::NeedsTransformer, "the pointee needs a transformer"};
            return {Verdict::Convertible, "the pointee is converted"};
        }
        Comparison pointee_change = compare(x.target, y.target, where + "->");
        if (pointee_change.verdict == Verdict::NeedsTransformer)
            return {Verdict::NeedsTransformer, "the pointee needs a transformer"};
        return {Verdict::Convertible, "the pointee is converted"};
    }

    // Prototypes are compared by what the C source says, not by layout: `int (*)(struct s *)`
    // stays the same prototype when struct s gains a member (the function is remapped by name).
    bool nominally_same(TypeId a, TypeId b, int depth) const
    {
        if (identical(a, b))
            return true;
        if (depth > 16)
            return false;
        const Type &x = layout(m_old, a);
        const Type &y = layout(m_new, b);
        if (x.kind != y.kind)
            return false;
        switch (x.kind) {
        case TypeKind::Struct: case TypeKind::Union: case TypeKind::Enum:
            return !x.name.empty() && x.name == y.name;
        case TypeKind::Pointer:
            return nominally_same(x.target, y.target, depth + 1);
        case TypeKind::Array:
            return x.counts == y.counts && nominally_same(x.target, y.target, depth + 1);
        case TypeKind::Function:
            if (x.params.size() != y.params.size() || x.variadic != y.variadic ||
                !nominally_same(x.target, y.target, depth + 1))
                return false;
            for (std::size_t i = 0; i < x.params.size(); ++i)
                if (!nominally_same(x.params[i], y.params[i], depth + 1))
                    return false;
            return true;
        default:
            return false;  // base types: identical() already said no
        }
    }

    MemberChange describe(const Member *old_member, const Member *new_member) const
    {
        MemberChange change;
        auto first_bit = [](const Member &member) { return member.is_bit_field() ? member.bit_offset : member.offset * 8; };
        change.bit_field = (old_member && old_member->is_bit_field()) || (new_member && new_member->is_bit_field());
        change.old_bit_offset = old_member ? first_bit(*old_member) : 0;
        change.new_bit_offset = new_member ? first_bit(*new_member) : 0;
        change.name = (new_member ? new_member : old_member)->name;
        if (change.name.empty())
            change.name = "<anonymous>";
        if (old_member) {
            change.old_type = type_to_c(m_old, old_member->type);
            change.old_offset = old_member->offset;
            change.old_size = old_member->is_bit_field() ? 0 : layout(m_old, old_member->type).size;
        }
        if (new_member) {
            change.new_type = type_to_c(m_new, new_member->type);
            change.new_offset = new_member->offset;
            change.new_size = new_member->is_bit_field() ? 0 : layout(m_new, new_member->type).size;
        }
        return change;
    }

    MemberChange compare_member(const Member &old_member, const Member &new_member, const std::string &where)
    {
        MemberChange change = describe(&old_member, &new_member);
        std::string place = where + "." + change.name;
        change.moved = old_member.offset != new_member.offset ||
                       (old_member.is_bit_field() && old_member.bit_offset != new_member.bit_offset);
        change.resized = change.old_size != change.new_size || old_member.bit_size != new_member.bit_size;
        Comparison comparison;
        if (old_member.is_bit_field() || new_member.is_bit_field())
            comparison = compare_bit_field(old_member, new_member, place);
        else
            comparison = compare(old_member.type, new_member.type, place);
        change.retyped = !identical(old_member.type, new_member.type);
        change.verdict = comparison.verdict;
        change.reason = comparison.reason;
        if (change.moved && change.verdict == Verdict::Identical) {
            change.verdict = Verdict::Convertible;
            change.reason = change.bit_field ? "moved: copied to its new bits" : "moved: copied to its new offset";
        }
        if (change.moved || change.retyped || change.resized || change.verdict != Verdict::Identical)
            change.status = Status::Changed;
        return change;
    }

    Comparison compare_bit_field(const Member &old_member, const Member &new_member, const std::string &where)
    {
        const Type &x = layout(m_old, old_member.type);
        const Type &y = layout(m_new, new_member.type);
        if (!is_integral(x) || !is_integral(y))
            return needs_transformer(old_member.type, new_member.type, where, "a bit-field changed into a non-integer");
        std::uint64_t old_bits = old_member.is_bit_field() ? old_member.bit_size : x.size * 8;
        std::uint64_t new_bits = new_member.is_bit_field() ? new_member.bit_size : y.size * 8;
        if (old_bits == new_bits && identical(old_member.type, new_member.type))
            return {};
        if (is_signed_integral(x) != is_signed_integral(y))
            return {Verdict::Convertible, "bit-field signedness changed: range checked at update time"};
        if (new_bits > old_bits)
            return {Verdict::Convertible, "bit-field widened"};
        if (new_bits < old_bits)
            return {Verdict::Convertible, "bit-field narrowed: range checked at update time"};
        return {Verdict::Convertible, "bit-field type changed"};
    }

    // Members match by name; anonymous struct/union members by their rank among anonymous ones.
    const Schema &m_old;
    const Schema &m_new;
    LayoutIdentity m_identity{m_old, m_new};
    std::map<Pair, Comparison> m_compared;
    std::set<Pair> m_in_progress;
    std::vector<Finding> m_findings;
    std::set<std::string> m_finding_places;
    bool m_quiet = false;  // compare_type of a union: its places record its findings
    std::set<std::pair<Pair, std::string>> m_finding_pairs;
};

// Statics are qualified by their file. When a single-file program is renamed (kvd.c ->
// kvd2.c), or exactly one file disappears while one appears, its statics still match.
std::map<std::string, std::string> match_renamed_units(const Schema &old_schema, const Schema &new_schema)
{
    auto units = [](const Schema &schema) {
        std::set<std::string> files;
        for (const Variable &variable : schema.variables)
            files.insert(variable.file);
        for (const Function &function : schema.functions)
            files.insert(function.file);
        return files;
    };
    std::set<std::string> old_units = units(old_schema), new_units = units(new_schema);
    std::vector<std::string> only_old, only_new;
    std::set_difference(old_units.begin(), old_units.end(), new_units.begin(), new_units.end(), std::back_inserter(only_old));
    std::set_difference(new_units.begin(), new_units.end(), old_units.begin(), old_units.end(), std::back_inserter(only_new));
    if (only_old.size() == 1 && only_new.size() == 1)
        return {{only_old[0], only_new[0]}};
    return {};
}

std::string renamed(const std::string &qualified_name, const std::map<std::string, std::string> &unit_renames)
{
    for (const auto &[from, to] : unit_renames)
        if (qualified_name.rfind(from + "/", 0) == 0)
            return to + qualified_name.substr(from.size());
    return qualified_name;
}

// The type of a variable's elements: behind its typedefs, qualifiers and array dimensions.
TypeId element_type(const Schema &schema, TypeId id)
{
    id = strip_typedefs_and_qualifiers(schema, id);
    for (int hops = 0; schema.type(id).kind == TypeKind::Array && hops < 16; ++hops)
        id = strip_typedefs_and_qualifiers(schema, schema.type(id).target);
    return id;
}

// What the diff looks up again and again, made once.
struct Names {
    std::map<std::string, TypeId> old_types, new_types;  // the named types, by name
    std::set<std::string> opaque;                         // MOLT_OPAQUE's types, by the diff's names
};

void diff_variables(const Schema &old_schema, const Schema &new_schema, Comparer &comparer,
                    const std::map<std::string, std::string> &unit_renames, const Names &names, SchemaDiff &diff)
{
    std::set<std::string> matched_new;
    for (const Variable &old_variable : old_schema.variables) {
        VariableChange change;
        change.name = old_variable.qualified_name;
        change.old_type = type_to_c(old_schema, old_variable.type);
        change.read_only = old_variable.read_only;
        // A rename the new version declares (MOLT_RENAME_VARIABLE), else the same name (its
        // file possibly renamed).
        std::string new_name = new_schema.new_name(Transformer::Kind::RenameVariable, old_variable.qualified_name);
        if (new_name == old_variable.qualified_name)
            new_name = renamed(old_variable.qualified_name, unit_renames);
        const Variable *new_variable = new_schema.find_variable(new_name);
        if (!new_variable) {
            change.status = Status::Removed;
            change.verdict = Verdict::Convertible;
            change.reason = old_variable.read_only ? "removed (read-only: not state)"
                                                   : "removed: its value is dropped (warned at update time if not zero)";
            diff.variables.push_back(std::move(change));
            continue;
        }
        matched_new.insert(new_name);
        if (new_name != old_variable.qualified_name)
            change.new_name = new_name;
        change.new_type = type_to_c(new_schema, new_variable->type);
        change.read_only = old_variable.read_only || new_variable->read_only;
        if (change.read_only) {
            change.reason = "read-only: not state, never migrated";
        } else {
            Comparison comparison = comparer.compare(old_variable.type, new_variable->type, "variable " + change.name);
            change.verdict = comparison.verdict;
            change.reason = comparison.reason;
            if (comparison.verdict != Verdict::Identical &&
                names.opaque.count(qualified_type_name(new_schema, element_type(new_schema, new_variable->type))))
                change.reason = "copied as bytes: MOLT_OPAQUE";
            if (old_variable.thread_local_storage != new_variable->thread_local_storage) {
                change.verdict = Verdict::NeedsTransformer;
                change.reason = "thread-local storage changed";
                comparer.note("variable " + change.name, change.old_type, change.new_type, change.reason);
            }
        }
        change.status = change.verdict == Verdict::Identical && change.old_type == change.new_type ? Status::Unchanged
                                                                                                    : Status::Changed;
        diff.variables.push_back(std::move(change));
    }
    for (const Variable &new_variable : new_schema.variables) {
        if (matched_new.count(new_variable.qualified_name))
            continue;
        VariableChange change;
        change.status = Status::Added;
        change.name = new_variable.qualified_name;
        change.new_type = type_to_c(new_schema, new_variable.type);
        change.read_only = new_variable.read_only;
        change.verdict = Verdict::Convertible;
        change.reason = "new: starts with its initial value";
        diff.variables.push_back(std::move(change));
    }
    // A removed and an added variable of identical type in the same scope may be a rename.
    for (const VariableChange &removed : diff.variables) {
        if (removed.status != Status::Removed || removed.read_only)
            continue;
        const Variable *old_variable = old_schema.find_variable(removed.name);
        for (const VariableChange &added : diff.variables) {
            if (added.status != Status::Added || added.read_only)
                continue;
            const Variable *new_variable = new_schema.find_variable(added.name);
            auto unit = unit_renames.find(old_variable->file);  // a file name, not a qualified name
            const std::string &old_file_now = unit == unit_renames.end() ? old_variable->file : unit->second;
            bool same_scope = old_file_now == new_variable->file &&
                              old_variable->function == new_variable->function &&
                              old_variable->external == new_variable->external;
            if (same_scope && comparer.identical(old_variable->type, new_variable->type))
                diff.renames.push_back({removed.name, added.name, removed.old_type});
        }
    }
}

bool is_named_type(const Type &type)
{
    switch (type.kind) {
    case TypeKind::Struct: case TypeKind::Union: case TypeKind::Enum: case TypeKind::Typedef:
        return !type.name.empty();
    default:
        return false;
    }
}

std::map<std::string, TypeId> named_types(const Schema &schema)
{
    std::map<std::string, TypeId> names;
    for (TypeId id = 0; id < schema.types.size(); ++id)
        if (is_named_type(schema.types[id]))
            names.emplace(qualified_type_name(schema, id), id);
    return names;
}

// A type of the header `molt old-types` writes (its default prefix): the old version's types, read
// by the new version's transformers. Not a type of the new version's state.
bool from_old_types_header(const std::string &name)
{
    std::string_view bare = name;
    if (auto slash = bare.rfind('/'); slash != std::string_view::npos)
        bare.remove_prefix(slash + 1);  // `file.c/struct x`
    for (std::string_view keyword : {"struct ", "union ", "enum "})
        if (bare.substr(0, keyword.size()) == keyword)
            bare.remove_prefix(keyword.size());
    return bare.substr(0, 9) == "molt_old_";
}

void diff_types(const Schema &old_schema, const Schema &new_schema, Comparer &comparer,
                const std::map<std::string, std::string> &unit_renames, const Names &names, SchemaDiff &diff)
{
    const std::map<std::string, TypeId> &old_types = names.old_types, &new_types = names.new_types;
    std::set<std::string> matched_new;
    for (const auto &[name, old_id] : old_types) {
        auto found = new_types.find(name);
        if (found == new_types.end())
            found = new_types.find(renamed(name, unit_renames));
        if (found == new_types.end())  // MOLT_RENAME_TYPE
            found = new_types.find(new_schema.new_name(Transformer::Kind::RenameType, name));
        const Type &old_type = old_schema.type(old_id);
        TypeChange change;
        change.name = name;
        change.old_size = old_type.size;
        if (found == new_types.end()) {
            change.status = Status::Removed;
            change.reason = "no longer defined";
            diff.types.push_back(std::move(change));
            continue;
        }
        matched_new.insert(found->first);
        if (comparer.identical(old_id, found->second))
            continue;
        // A typedef of a named struct changes with the struct: reported once, under the struct.
        if (old_type.kind == TypeKind::Typedef) {
            const Type &target = layout(old_schema, old_id);
            if (is_named_type(target))
                continue;
        }
        change.new_size = new_schema.type(found->second).size;
        Comparison comparison = comparer.compare_type(old_id, found->second, name);
        change.verdict = comparison.verdict;
        change.reason = comparison.reason;
        if (old_type.kind == TypeKind::Struct && new_schema.type(found->second).kind == TypeKind::Struct &&
            old_type.name == new_schema.type(found->second).name)
            change.members = comparer.member_changes(old_id, found->second, name);
        diff.types.push_back(std::move(change));
    }
    for (const auto &[name, new_id] : new_types) {
        if (matched_new.count(name) || name == "struct molt_transformer_record" || name == "molt_transformer_function" ||
            (from_old_types_header(name) && !old_types.count(name)))
            continue;  // matched, Molt's own registration records (molt/molt.h), or the old version's types
        TypeChange change;
        change.status = Status::Added;
        change.name = name;
        change.new_size = new_schema.type(new_id).size;
        change.reason = "new type";
        diff.types.push_back(std::move(change));
    }
}

std::string signature(const Schema &schema, const Function &function)
{
    std::string params;
    for (const Local &param : function.params)
        params += (params.empty() ? "" : ", ") + type_to_c(schema, param.type, param.name);
    if (function.variadic)
        params += params.empty() ? "..." : ", ...";
    return type_to_c(schema, function.return_type) + " " + function.name + "(" + (params.empty() ? "void" : params) + ")";
}

void diff_functions(const Schema &old_schema, const Schema &new_schema, Comparer &comparer,
                    const std::map<std::string, std::string> &unit_renames, SchemaDiff &diff)
{
    std::set<std::string> matched_new;
    for (const Function &old_function : old_schema.functions) {
        FunctionChange change;
        change.name = old_function.qualified_name;
        change.old_signature = signature(old_schema, old_function);
        const Function *new_function = new_schema.find_function(renamed(old_function.qualified_name, unit_renames));
        if (!new_function) {
            change.status = Status::Removed;
            diff.functions.push_back(std::move(change));
            continue;
        }
        matched_new.insert(new_function->qualified_name);
        change.new_signature = signature(new_schema, *new_function);
        bool same_signature = comparer.identical(old_function.return_type, new_function->return_type) &&
                              old_function.params.size() == new_function->params.size() &&
                              old_function.variadic == new_function->variadic;
        for (std::size_t i = 0; same_signature && i < old_function.params.size(); ++i)
            same_signature = comparer.identical(old_function.params[i].type, new_function->params[i].type);
        change.status = same_signature ? Status::Unchanged : Status::Changed;
        diff.functions.push_back(std::move(change));
    }
    for (const Function &new_function : new_schema.functions) {
        if (matched_new.count(new_function.qualified_name))
            continue;
        diff.functions.push_back({Status::Added, new_function.qualified_name, "", signature(new_schema, new_function)});
    }
}

// The types copied as bytes (MOLT_OPAQUE) in the new version, by the names the diff gives them: a
// typedef's name stands for the struct it names too, which the diff lists by its tag.
std::set<std::string> opaque_type_names(const Schema &schema)
{
    std::set<std::string> names;
    for (const Transformer &transformer : schema.transformers)
        if (transformer.kind == Transformer::Kind::Opaque)
            names.insert(transformer.name);
    if (names.empty())
        return names;
    for (TypeId id = 0; id < schema.types.size(); ++id)
        if (schema.types[id].kind == TypeKind::Typedef && names.count(qualified_type_name(schema, id)))
            names.insert(qualified_type_name(schema, strip_typedefs_and_qualifiers(schema, id)));
    return names;
}

}  // namespace

const char *verdict_word(Verdict verdict)
{
    switch (verdict) {
    case Verdict::Identical: return "identical";
    case Verdict::Convertible: return "convertible";
    case Verdict::NeedsTransformer: return "needs a transformer";
    }
    return "?";
}

std::string Finding::to_string() const
{
    if (old_type == new_type)  // the change is inside the type: the reason says what it is
        return where + ": needs a transformer (" + reason + ")";
    return where + ": " + old_type + " -> " + new_type + ": needs a transformer (" + reason + ")";
}

Verdict SchemaDiff::verdict() const
{
    Verdict result = Verdict::Identical;
    for (const VariableChange &change : variables)
        if (!change.read_only)
            result = std::max(result, change.verdict);
    for (const TypeChange &change : types)
        result = std::max(result, change.verdict);
    if (!needs_transformer.empty() || !annotation_problems.empty())
        return Verdict::NeedsTransformer;
    return std::min(result, Verdict::Convertible);  // what needed one is covered
}

std::pair<std::string, std::string> split_place(const std::string &where)
{
    if (where.rfind("variable ", 0) == 0)
        return {where, ""};
    std::size_t slash = where.rfind('/');
    std::size_t dot = where.find('.', slash == std::string::npos ? 0 : slash);
    if (dot == std::string::npos)
        return {where, ""};
    return {where.substr(0, dot), where.substr(dot + 1)};
}

bool place_within(const std::string &inner, const std::string &outer)
{
    if (inner.compare(0, outer.size(), outer) != 0)
        return false;
    return inner.size() == outer.size() || std::string_view(".[-").find(inner[outer.size()]) != std::string_view::npos;
}

std::string MemberChange::move() const
{
    if (bit_field)
        return "bit " + std::to_string(old_bit_offset) + " -> " + std::to_string(new_bit_offset);
    return "offset " + std::to_string(old_offset) + " -> " + std::to_string(new_offset);
}

namespace {

// MOLT_UNION_CASEs cover a union's change at `member` of struct `type` only where each case's
// member converts by the default rules, as the update plans them: a case whose member needs a
// transformer itself (a float that became an int) leaves the change uncovered. What does not
// convert, in words, or "".
std::string union_case_gap(const Schema &old_schema, const Schema &new_schema, Comparer &comparer, const Names &names,
                           const std::string &type, const std::string &member)
{
    auto old_struct = names.old_types.find(new_schema.old_name(Transformer::Kind::RenameType, type));
    auto new_struct = names.new_types.find(type);
    if (old_struct == names.old_types.end() || new_struct == names.new_types.end())
        return "";
    const Member *old_union = member_named(layout(old_schema, old_struct->second), member);
    const Member *new_union = member_named(layout(new_schema, new_struct->second), member);
    if (!old_union || !new_union)
        return "";  // molt check names the annotation's mistake
    for (const Transformer &annotation : new_schema.transformers) {
        if (annotation.kind != Transformer::Kind::UnionCase || annotation.name != type || annotation.member != member)
            continue;
        const Member *old_case = member_named(layout(old_schema, old_union->type), annotation.case_member);
        const Member *new_case = member_named(layout(new_schema, new_union->type), annotation.case_member);
        if (!old_case || !new_case)
            continue;
        std::string where = type + "." + member + "." + annotation.case_member;
        if (comparer.compare_quietly(old_case->type, new_case->type, where).verdict == Verdict::NeedsTransformer)
            return "its case " + annotation.case_member + " (" + type_to_c(old_schema, old_case->type) + " -> " +
                   type_to_c(new_schema, new_case->type) + ") needs a transformer itself";
    }
    return "";
}

}  // namespace

SchemaDiff diff_schemas(const Schema &old_schema, const Schema &new_schema)
{
    SchemaDiff diff;
    Comparer comparer(old_schema, new_schema);
    std::map<std::string, std::string> unit_renames = match_renamed_units(old_schema, new_schema);
    for (const auto &[from, to] : unit_renames)
        diff.unit_renames.push_back(from + " -> " + to);
    const Names names{named_types(old_schema), named_types(new_schema), opaque_type_names(new_schema)};
    diff_types(old_schema, new_schema, comparer, unit_renames, names, diff);
    diff_variables(old_schema, new_schema, comparer, unit_renames, names, diff);
    diff_functions(old_schema, new_schema, comparer, unit_renames, diff);
    // A finding is covered by a transformer of the new version: a variable's by a transformer of
    // that variable, a type's ("struct entry.value", "union value") by a transformer of the type.
    // Annotations cover what they speak for: a union with its cases, a type copied as bytes.
    for (Finding &finding : comparer.take_findings()) {
        auto [type, member] = split_place(finding.where);
        if (finding.where.rfind("variable ", 0) == 0) {
            if (new_schema.find_transformer(Transformer::Kind::Variable, finding.where.substr(9)))
                finding.covered_by = "a transformer";
        } else if (new_schema.find_transformer(Transformer::Kind::Type, type)) {
            finding.covered_by = "a transformer";
        } else if (names.opaque.count(type)) {
            finding.covered_by = "MOLT_OPAQUE";
        } else if (new_schema.find_annotation(Transformer::Kind::UnionCase, type, member)) {
            std::string gap = union_case_gap(old_schema, new_schema, comparer, names, type, member);
            if (gap.empty())
                finding.covered_by = "MOLT_UNION_CASE";
            else
                finding.reason += "; MOLT_UNION_CASE does not cover it: " + gap;
        }
        (finding.covered_by.empty() ? diff.needs_transformer : diff.covered).push_back(std::move(finding));
    }
    for (TypeChange &change : diff.types)
        if (change.status == Status::Changed)
            change.carried_by = new_schema.find_transformer(Transformer::Kind::Type, change.name) ? TypeChange::Carrier::Transformer
                                : names.opaque.count(change.name) ? TypeChange::Carrier::Bytes
                                                                  : TypeChange::Carrier::Defaults;
    return diff;
}

namespace {

// Bytes copied as they lie lose what moved under them: a member that kept its name but not its
// offset is filled from the old bytes at its new place, and a type that shrank loses its last
// bytes. (Members renamed or replaced, sixteen bytes for four words, are what MOLT_OPAQUE is for;
// a member that changed type in place takes its old bytes, which may be what was meant.)
std::vector<std::string> opaque_copy_warnings(const TypeChange &type)
{
    std::vector<std::string> warnings;
    std::string moved;
    for (const MemberChange &member : type.members)
        if (member.status == Status::Changed && member.moved)
            moved += (moved.empty() ? "" : ", ") + member.name + " (" + member.move() + ")";
    std::string copied = "MOLT_OPAQUE(\"" + type.name + "\") copies each object's bytes as they lie";
    if (!moved.empty())
        warnings.push_back(copied + ", but members kept their names and moved: " + moved +
                           "; each is filled from the old bytes at its new place, not converted (a type transformer "
                           "converts them)");
    if (type.new_size < type.old_size)
        warnings.push_back(copied + ", the first " + std::to_string(type.new_size) + " of them: the type shrank from " +
                           std::to_string(type.old_size) + " bytes, so the last " +
                           std::to_string(type.old_size - type.new_size) + " of each object are dropped");
    return warnings;
}

}  // namespace

std::vector<std::string> value_loss_warnings(const SchemaDiff &diff)
{
    std::vector<std::string> warnings;
    for (const TypeChange &type : diff.types) {
        if (type.status != Status::Changed || type.carried_by == TypeChange::Carrier::Transformer)
            continue;
        if (type.carried_by == TypeChange::Carrier::Bytes) {
            for (std::string &warning : opaque_copy_warnings(type))
                warnings.push_back(std::move(warning));
            continue;
        }
        if (std::any_of(diff.covered.begin(), diff.covered.end(),
                        [&](const Finding &finding) { return place_within(finding.where, type.name); }))
            continue;
        for (const MemberChange &member : type.members)
            if (member.status == Status::Removed)
                warnings.push_back(type.name + "." + member.name +
                                   " is removed: its values are dropped (a type transformer or MOLT_RENAME_MEMBER keeps them)");
    }
    return warnings;
}

}  // namespace molt::schema
