// Spelling a schema type as a C declaration: the one routine for declarators
// (pointer to array, array of function pointers, const placement).
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "schema.h"

namespace molt::schema {

// Gives the spelling of a named or aggregate type (`struct node`, `point_t`, `int`), or the
// inline body of an anonymous aggregate. Called for Base, Struct, Union, Enum and Typedef.
using TypeNamer = std::function<std::string(TypeId)>;

// `declarator` is the name being declared (may be empty): ("int[3]", "p") -> "int p[3]",
// (pointer to function (int) returning void, "cb") -> "void (*cb)(int)".
std::string c_declaration(const Schema &schema, TypeId id, std::string_view declarator,
                          const TypeNamer &namer);

}  // namespace molt::schema
