// Writing a schema diff as text (grouped: variables, types, functions) or JSON.
#pragma once

#include <ostream>

#include "diff.h"

namespace molt::schema {

void write_diff_text(const SchemaDiff &diff, std::ostream &out);
void write_diff_json(const SchemaDiff &diff, std::ostream &out);

}  // namespace molt::schema
