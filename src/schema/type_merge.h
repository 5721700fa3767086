// Raw types (one per DIE) and their merge into the schema's types by structural identity.
#pragma once

#include <string>
#include <vector>

#include "schema.h"

namespace molt::schema {

// Types as read, one per DIE: the same `struct node` appears once per compile unit.
struct RawTypes {
    std::vector<Type> types;         // references between them are raw ids
    std::vector<std::string> files;  // file that declares each type (to tell same-named types apart)
    std::vector<TypeId> roots;       // what the schema keeps: types of variables, functions, named types

    std::uint64_t size_of(TypeId id) const;
    bool is_const(TypeId id) const;           // const at the top, through typedefs
};

// Moves the distinct types of `raw` into `merged` and returns, for each raw id, its merged id.
// Two types are one when they have the same shape and refer to types that are one (computed
// as the coarsest stable partition, so recursive types merge too). An incomplete
// `struct node;` is the complete `struct node` when exactly one such definition exists.
// Throws std::runtime_error like structural_classes.
// Same-named distinct types get `Type::file` set so that their names stay apart. Types not
// reachable from `raw.roots` (compiler artefacts such as clang's __ARRAY_SIZE_TYPE__) are dropped.
std::vector<TypeId> merge_types(RawTypes &raw, std::vector<Type> &merged);

// Classes of structurally identical types: same shape (kind, name, size, members, ...) and
// references to types of the same classes, computed as the coarsest stable partition so that
// recursive types compare without recursion. Throws std::runtime_error when the graph needs
// more than a bounded number of rounds (only adversarial input does).
std::vector<std::uint32_t> structural_classes(const std::vector<Type> &types);

// Types nest by value (a struct holds its members, an array its elements, a typedef its
// target) in a finite, acyclic way in any real program. Returns why `types` break that (a type
// that contains itself, or nesting deeper than `max_depth`), or an empty string. Code that
// walks types by value recursively relies on this check.
std::string check_value_nesting(const std::vector<Type> &types, std::size_t max_depth);

}  // namespace molt::schema
