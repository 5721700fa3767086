// Reading a version's schema from its ELF file and DWARF (elfutils libdw). Never prints.
#pragma once

#include <libelf.h>

#include <cstddef>
#include <string>

#include "result.h"
#include "schema.h"

namespace molt::schema {

// Reads the schema of an ELF executable (PIE or not) or shared object built with -g.
// Refuses, with a one-line reason, what it cannot read faithfully: not ELF, truncated, another
// architecture, no DWARF, split DWARF (.dwo), dwz alternate files, corrupt DWARF.
Result<Schema> read_schema(const std::string &path);

// The file's GNU build-id ("" when it has none), once it has passed the checks read_schema makes
// before it reads the DWARF (not ELF, truncated, another architecture, no DWARF...), without
// reading the DWARF; or why it did not pass.
Result<std::string> checked_build_id(const std::string &path);

// The GNU build-id of an ELF file in lower-case hex, or "" when it has none.
std::string gnu_build_id_hex(Elf *elf);

// The same from bytes in memory; `name` stands for the file in messages (used by the fuzzer).
Result<Schema> read_schema_from_memory(const std::string &name, const void *data, std::size_t size);

}  // namespace molt::schema
