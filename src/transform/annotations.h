// The annotations of a new version (MOLT_POINTS_TO, MOLT_VARIABLE_POINTS_TO, MOLT_LENGTH_IN,
// MOLT_UNION_CASE, MOLT_OPAQUE in include/molt/molt.h) resolved against both schemas: type names
// to type ids, member names to the old version's members, case values to numbers.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "layout_identity.h"
#include "result.h"
#include "schema.h"

namespace molt::transform {

struct PointeePair {
    schema::TypeId old_pointee = 0, new_pointee = 0;
};

struct UnionCase {
    __int128 value = 0;                         // of the old version's discriminant
    const schema::Member *old_member = nullptr;  // of the old union
    const schema::Member *new_member = nullptr;  // of the new union
};

class Annotations {
public:
    Annotations(const schema::Schema &old_schema, const schema::Schema &new_schema);

    bool empty() const { return m_empty; }

    // Every annotation resolved once, so that a mistake (a misspelt type or member, a member of
    // the wrong kind, a case value that is no enumerator) is told before the pause, and by
    // `molt check`, not only when an object it speaks for is met: one line per mistake.
    std::vector<std::string> problems() const;

    // What a void * member of new struct `y` points to (MOLT_POINTS_TO), or nullopt. An error
    // when the annotation names a type that does not exist.
    Result<std::optional<PointeePair>> points_to(const schema::Type &y, const std::string &member) const;
    // The same for a variable of the new version (MOLT_VARIABLE_POINTS_TO).
    Result<std::optional<PointeePair>> variable_points_to(const std::string &variable) const;

    // The member of old struct `x` that holds the length of pointer member `member` of new
    // struct `y` (MOLT_LENGTH_IN), or null.
    Result<const schema::Member *> length_member(const schema::Type &x, const schema::Type &y,
                                                 const std::string &member) const;

    // The cases of union member `member` of new struct `y` (MOLT_UNION_CASE), with the old
    // struct's discriminant member (`discriminant`, null when there are no cases).
    struct Cases {
        const schema::Member *discriminant = nullptr;  // of old struct x
        std::vector<UnionCase> cases;
    };
    Result<Cases> union_cases(const schema::Type &x, const schema::Type &y, const std::string &member) const;

    // Whether objects of this new type are copied as bytes (MOLT_OPAQUE).
    bool opaque(schema::TypeId new_type) const;

    // The new types whose objects an annotation speaks for, and whose conversion must therefore
    // look inside them even when their bits did not change: structs with a MOLT_POINTS_TO whose
    // pointee changed, or with a MOLT_UNION_CASE.
    std::vector<schema::TypeId> annotated_types(const std::function<bool(const PointeePair &)> &pointee_changed) const;

private:
    void declaration_problems(std::vector<std::string> &problems) const;
    // A type copied as bytes that holds a pointer to objects the update converts: they move, and
    // the copied pointer would lead to the old one, freed after the commit.
    // `identity` is made on first need (a partition of both schemas' types: once per problems()).
    std::optional<std::string> opaque_pointer_problem(const schema::Transformer &record,
                                                      std::optional<schema::LayoutIdentity> &identity) const;
    std::optional<schema::TypeId> find_type(const schema::Schema &schema, const std::string &name) const;
    Result<PointeePair> pointee_pair(const std::string &type_name, const std::string &annotation) const;

    const schema::Schema &m_old;
    const schema::Schema &m_new;
    bool m_empty = true;
    std::unordered_map<std::string, schema::TypeId> m_old_types, m_new_types;  // by qualified name
};

}  // namespace molt::transform
