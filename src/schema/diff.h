// What an update from one version to another changes, and how each change can be carried out.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "schema.h"

namespace molt::schema {

// Ordered: combining two changes takes the larger.
enum class Verdict : std::uint8_t {
    Identical,         // copied as is
    Convertible,       // converted by Molt's default rules
    NeedsTransformer,  // a programmer must write a transformer
};

const char *verdict_word(Verdict verdict);

enum class Status : std::uint8_t { Unchanged, Changed, Added, Removed };

struct MemberChange {
    Status status = Status::Unchanged;
    std::string name;
    std::string old_type, new_type;  // C spelling in each version
    std::uint64_t old_offset = 0, new_offset = 0;
    std::uint64_t old_size = 0, new_size = 0;
    // A bit-field (in either version) moves by bits: its first bit, from the struct's start (a
    // member that is not one counts its offset's bits).
    bool bit_field = false;
    std::uint64_t old_bit_offset = 0, new_bit_offset = 0;
    bool moved = false, retyped = false, resized = false;
    Verdict verdict = Verdict::Identical;
    std::string reason;
    // Where it moved, in words: "offset 0 -> 8", or "bit 1 -> 2" for a bit-field.
    std::string move() const;
};

struct TypeChange {
    Status status = Status::Changed;  // Changed, Added or Removed
    std::string name;                 // qualified type name (`struct entry`, `a.c/struct node`)
    std::uint64_t old_size = 0, new_size = 0;
    Verdict verdict = Verdict::Identical;
    std::string reason;
    std::vector<MemberChange> members;  // only the members that changed
    // What of the new version carries its objects besides the default rules.
    enum class Carrier : std::uint8_t {
        Defaults,     // members by name
        Transformer,  // members by name, then the new version's transformer of the type
        Bytes,        // MOLT_OPAQUE: copied as bytes, no member matched
    };
    Carrier carried_by = Carrier::Defaults;
};

struct VariableChange {
    Status status = Status::Unchanged;
    std::string name;      // qualified name in the old version (the new one for Added)
    std::string new_name;  // qualified name in the new version when it differs (file renamed)
    std::string old_type, new_type;
    Verdict verdict = Verdict::Identical;
    std::string reason;
    bool read_only = false;  // not state: never migrated
};

struct RenameCandidate {
    std::string old_name, new_name, type;
};

struct FunctionChange {
    Status status = Status::Unchanged;
    std::string name;
    std::string old_signature, new_signature;
};

// A change that needs a transformer, in a line a programmer can act on:
// `struct entry.value: int -> char *: needs a transformer (a scalar became a pointer)`.
struct Finding {
    std::string where;  // `struct entry.value`, `variable counter`
    std::string old_type, new_type;
    std::string reason;
    std::string covered_by;  // when covered: "a transformer", "MOLT_UNION_CASE", "MOLT_OPAQUE"
    std::string to_string() const;
};

struct SchemaDiff {
    std::vector<VariableChange> variables;  // every variable of either version
    std::vector<RenameCandidate> renames;
    std::vector<TypeChange> types;          // named types that changed, appeared or disappeared
    std::vector<FunctionChange> functions;  // every function of either version
    std::vector<Finding> needs_transformer; // what `molt check` lists
    std::vector<Finding> covered;           // changes a transformer of the new version takes care of
    std::vector<std::string> unit_renames;  // `kvd.c -> kvd2.c` when statics were matched across a file rename
    // The new version's mistaken declarations (a transformer naming no type...), one line each:
    // set by whoever checks them (transform::Annotations, in the tool); the update refuses them.
    std::vector<std::string> annotation_problems;
    // What the update loses of the values it carries (value_loss_warnings), set by the tool.
    std::vector<std::string> warnings;
    // The update's verdict: "needs a transformer" while a finding is left that nothing of the new
    // version covers, or a declaration of it is wrong; once its transformers and annotations
    // cover them all, "convertible".
    Verdict verdict() const;
};

SchemaDiff diff_schemas(const Schema &old_schema, const Schema &new_schema);

// A finding's place, split into its type and the member path inside it: "kvd.c/struct x.key[]"
// -> {"kvd.c/struct x", "key[]"} (a file's name has dots of its own); "variable n" -> {"variable n", ""}.
std::pair<std::string, std::string> split_place(const std::string &where);
// Whether place `inner` lies within `outer`: "struct shape.u" within "struct shape" (and itself),
// not within "struct shap", nor "struct shapes.u" within "struct shape".
bool place_within(const std::string &inner, const std::string &outer);

// What an update loses of the values it carries, one warning each, said by `molt check` and by the
// update's report alike:
// - members dropped with their values (`struct entry.value is removed: its values are dropped
//   ...`): a removed member counts as "convertible" (the rest converts), but what it held is lost,
//   unless a transformer of its type (which reads the old object) or a finding it covers keeps it;
// - a type copied as bytes (MOLT_OPAQUE) whose layout changed under it: a member that kept its
//   name but moved is filled from the wrong bytes, and a type that shrank loses its last bytes.
std::vector<std::string> value_loss_warnings(const SchemaDiff &diff);

}  // namespace molt::schema
