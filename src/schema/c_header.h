// The C header writer behind `molt old-types`: a version's types as compilable C, renamed
// with a prefix, with the exact layout of the version asserted by _Static_assert.
#pragma once

#include <ostream>
#include <string>

#include "schema.h"

namespace molt::schema {

struct HeaderOptions {
    std::string prefix = "molt_old_";  // put before every tag, typedef name and enumerator
};

// Writes every named struct, union, enum and typedef of `schema` (and the anonymous ones they
// hold) so that the header compiles on its own beside the new version's own headers.
// Deterministic: the same schema always gives the same bytes, sorted by name.
void write_c_header(const Schema &schema, const HeaderOptions &options, std::ostream &out);

}  // namespace molt::schema
