// Text and JSON forms of a schema diff.
#include "diff_format.h"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <nlohmann/json.hpp>

#include <string_view>

namespace molt::schema {
namespace {

const char *status_word(Status status)
{
    switch (status) {
    case Status::Unchanged: return "unchanged";
    case Status::Changed: return "changed";
    case Status::Added: return "added";
    case Status::Removed: return "removed";
    }
    return "?";
}

// One-character marks, as in a patch: + added, - removed, ~ changed, = unchanged.
char status_mark(Status status)
{
    switch (status) {
    case Status::Unchanged: return '=';
    case Status::Changed: return '~';
    case Status::Added: return '+';
    case Status::Removed: return '-';
    }
    return '?';
}

std::string type_transition(const std::string &old_type, const std::string &new_type)
{
    if (old_type.empty())
        return new_type;
    if (new_type.empty() || new_type == old_type)
        return old_type;
    return old_type + " -> " + new_type;
}

// The JSON's words for what carries a type's objects ("" for the default rules alone).
const char *carrier_word(TypeChange::Carrier carrier)
{
    switch (carrier) {
    case TypeChange::Carrier::Transformer: return "a transformer";
    case TypeChange::Carrier::Bytes: return "MOLT_OPAQUE";
    default: return "";
    }
}

void write_member(const MemberChange &member, const std::string &covered_by, TypeChange::Carrier carried_by,
                  std::ostream &out)
{
    std::string details = type_transition(member.old_type, member.new_type);
    if (member.status == Status::Changed && member.moved)
        details += ", " + member.move();
    else if (member.status == Status::Added)
        details += fmt::format(", offset {}", member.new_offset);
    fmt::print(out, "    {} member {}: {}: {}", status_mark(member.status), member.name, details, verdict_word(member.verdict));
    if (member.status == Status::Removed && carried_by == TypeChange::Carrier::Transformer)
        fmt::print(out, " (member removed: the transformer reads it from the old object)");
    else if (!member.reason.empty())
        fmt::print(out, " ({})", member.reason);
    if (!covered_by.empty())
        fmt::print(out, ", covered by {}", covered_by);
    fmt::print(out, "\n");
}

}  // namespace

void write_diff_text(const SchemaDiff &diff, std::ostream &out)
{
    // What of the new version covers a finding inside `place` (a member, a type, a variable), or "".
    auto covered_by = [&](const std::string &place) {
        for (const Finding &finding : diff.covered)
            if (place_within(finding.where, place))
                return finding.covered_by;
        return std::string();
    };
    // A line that "needs a transformer" is covered when no finding inside its place is left
    // uncovered and one is covered, or (a variable whose type's findings lie under the type's
    // name) when no finding at all is left uncovered.
    auto needs = [&](Verdict verdict, const std::string &place) {
        std::string word = verdict_word(verdict);
        if (verdict != Verdict::NeedsTransformer)
            return word;
        for (const Finding &finding : diff.needs_transformer)
            if (place_within(finding.where, place))
                return word;
        if (std::string by = covered_by(place); !by.empty())
            return word + ", covered by " + by;
        return diff.needs_transformer.empty() ? word + ", covered" : word;
    };
    for (const std::string &rename : diff.unit_renames)
        fmt::print(out, "statics matched across a renamed file: {}\n", rename);

    std::size_t unchanged = 0;
    fmt::print(out, "variables:\n");
    for (const VariableChange &change : diff.variables) {
        if (change.status == Status::Unchanged) {
            ++unchanged;
            continue;
        }
        std::string name = change.new_name.empty() ? change.name : change.name + " (now " + change.new_name + ")";
        fmt::print(out, "  {} {}: {}: {}", status_mark(change.status), name,
                   type_transition(change.old_type, change.new_type),
                   change.read_only ? "not state" : needs(change.verdict, "variable " + change.name));
        if (!change.reason.empty())
            fmt::print(out, " ({})", change.reason);
        fmt::print(out, "\n");
    }
    fmt::print(out, "  {} unchanged\n", unchanged);
    for (const RenameCandidate &rename : diff.renames)
        fmt::print(out, "  ? {} -> {}: renamed? (same type {}; a transformer can carry the value over)\n",
                   rename.old_name, rename.new_name, rename.type);

    fmt::print(out, "types:\n");
    for (const TypeChange &change : diff.types) {
        fmt::print(out, "  {} {}", status_mark(change.status), change.name);
        if (change.status == Status::Changed) {
            if (change.old_size != change.new_size)
                fmt::print(out, " (size {} -> {})", change.old_size, change.new_size);
            if (change.carried_by == TypeChange::Carrier::Bytes)
                fmt::print(out, ": copied as bytes (MOLT_OPAQUE)");
            else
                fmt::print(out, ": {}", needs(change.verdict, change.name));
            if (change.carried_by == TypeChange::Carrier::Transformer)  // the defaults first: it gets the new object so far
                fmt::print(out, " (members by default, then a transformer of the new version)");
            else if (change.carried_by == TypeChange::Carrier::Defaults && !change.reason.empty() && change.members.empty())
                fmt::print(out, " ({})", change.reason);
        } else {
            fmt::print(out, ": {}", change.reason);
        }
        fmt::print(out, "\n");
        if (change.carried_by != TypeChange::Carrier::Bytes)  // as bytes, members are not matched by name
            for (const MemberChange &member : change.members)
                write_member(member, covered_by(change.name + "." + member.name), change.carried_by, out);
    }
    if (diff.types.empty())
        fmt::print(out, "  no named type changed\n");

    unchanged = 0;
    fmt::print(out, "functions:\n");
    for (const FunctionChange &change : diff.functions) {
        if (change.status == Status::Unchanged) {
            ++unchanged;
            continue;
        }
        fmt::print(out, "  {} {}: {}\n", status_mark(change.status), change.name,
                   type_transition(change.old_signature, change.new_signature));
    }
    fmt::print(out, "  {} unchanged\n", unchanged);

    fmt::print(out, "verdict: {}", verdict_word(diff.verdict()));
    if (diff.needs_transformer.empty() && !diff.covered.empty())
        fmt::print(out, " (with the new version's transformers and annotations, which {} {})", diff.covered.size(),
                   diff.covered.size() == 1 ? "change needs" : "changes need");
    fmt::print(out, "\n");
    for (const Finding &finding : diff.needs_transformer)
        fmt::print(out, "  {}\n", finding.to_string());
    for (const std::string &problem : diff.annotation_problems)
        fmt::print(out, "  annotation: {}\n", problem);
    for (const std::string &warning : diff.warnings)
        fmt::print(out, "warning: {}\n", warning);
}

void write_diff_json(const SchemaDiff &diff, std::ostream &out)
{
    using nlohmann::json;
    json variables = json::array();
    for (const VariableChange &change : diff.variables)
        variables.push_back({{"name", change.name}, {"new_name", change.new_name.empty() ? change.name : change.new_name},
                             {"status", status_word(change.status)}, {"old_type", change.old_type},
                             {"new_type", change.new_type}, {"verdict", verdict_word(change.verdict)},
                             {"reason", change.reason}, {"read_only", change.read_only}});
    json types = json::array();
    for (const TypeChange &change : diff.types) {
        // Copied as bytes, a type's members are not converted by name: none is "copied to its
        // new offset" or "zeroed" (the warnings say what moved under the bytes).
        bool bytes = change.carried_by == TypeChange::Carrier::Bytes;
        const char *as_bytes = "copied as bytes (MOLT_OPAQUE)";
        json members = json::array();
        for (const MemberChange &member : change.members)
            members.push_back({{"name", member.name}, {"status", status_word(member.status)},
                               {"old_type", member.old_type}, {"new_type", member.new_type},
                               {"old_offset", member.old_offset}, {"new_offset", member.new_offset},
                               {"bit_field", member.bit_field},
                               {"old_bit_offset", member.old_bit_offset}, {"new_bit_offset", member.new_bit_offset},
                               {"old_size", member.old_size}, {"new_size", member.new_size},
                               {"moved", member.moved}, {"retyped", member.retyped}, {"resized", member.resized},
                               {"verdict", verdict_word(member.verdict)},
                               {"reason", bytes ? as_bytes : member.reason}});
        types.push_back({{"name", change.name}, {"status", status_word(change.status)},
                         {"old_size", change.old_size}, {"new_size", change.new_size},
                         {"verdict", verdict_word(change.verdict)}, {"reason", bytes ? as_bytes : change.reason},
                         {"carried_by", carrier_word(change.carried_by)}, {"members", members}});
    }
    json functions = json::array();
    for (const FunctionChange &change : diff.functions)
        functions.push_back({{"name", change.name}, {"status", status_word(change.status)},
                             {"old_signature", change.old_signature}, {"new_signature", change.new_signature}});
    json renames = json::array();
    for (const RenameCandidate &rename : diff.renames)
        renames.push_back({{"old_name", rename.old_name}, {"new_name", rename.new_name}, {"type", rename.type}});
    json findings = json::array();
    for (const Finding &finding : diff.needs_transformer)
        findings.push_back({{"where", finding.where}, {"old_type", finding.old_type}, {"new_type", finding.new_type},
                            {"reason", finding.reason}, {"message", finding.to_string()}});
    json covered = json::array();
    for (const Finding &finding : diff.covered)
        covered.push_back({{"where", finding.where}, {"old_type", finding.old_type}, {"new_type", finding.new_type},
                           {"reason", finding.reason}, {"covered_by", finding.covered_by}});
    json document = {{"verdict", verdict_word(diff.verdict())}, {"unit_renames", diff.unit_renames},
                     {"variables", variables}, {"rename_candidates", renames}, {"types", types},
                     {"functions", functions}, {"needs_transformer", findings}, {"covered", covered},
                     {"annotation_problems", diff.annotation_problems}, {"warnings", diff.warnings}};
    out << document.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";  // names from DWARF may be invalid UTF-8
}

}  // namespace molt::schema
