// Which types of two schemas have the same layout and meaning, so that their bits can be copied.
#pragma once

#include <cstdint>
#include <vector>

#include "schema.h"

namespace molt::schema {

// All pairs at once: both type graphs go through one partition refinement, with typedefs and
// qualifiers seen through (they do not change the bits) and names kept only where they matter
// (struct and union tags). No recursion, whatever the length of pointer chains.
class LayoutIdentity {
public:
    LayoutIdentity(const Schema &old_schema, const Schema &new_schema);

    // `a` of the old schema and `b` of the new one hold the same bits with the same meaning.
    bool identical(TypeId a, TypeId b) const;

private:
    const Schema &m_old;
    const Schema &m_new;
    TypeId m_new_offset;
    std::vector<std::uint32_t> m_classes;
};

}  // namespace molt::schema
