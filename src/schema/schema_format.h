// Writing a schema as text (one fact per line) or JSON, to a stream the caller chooses.
#pragma once

#include <ostream>

#include "schema.h"

namespace molt::schema {

enum class Addresses { Show, Hide };

// One fact per line, sorted; with Addresses::Hide the output is the same for any build of
// the same source (the golden-fact tests compare it).
void write_schema_text(const Schema &schema, std::ostream &out, Addresses addresses);

void write_schema_json(const Schema &schema, std::ostream &out);

}  // namespace molt::schema
