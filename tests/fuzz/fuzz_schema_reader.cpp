// Fuzz target for the DWARF reader (libFuzzer entry point). Whatever the bytes, reading must
// return a schema or an error, never crash or hang; a schema that comes out is then pushed
// through everything built on it (text, JSON, diff, C header, cache round trip).
#include <cstddef>
#include <cstdint>
#include <sstream>

#include "c_header.h"
#include "diff.h"
#include "dwarf_reader.h"
#include "schema_cache.h"
#include "schema_format.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
    auto schema = molt::schema::read_schema_from_memory("fuzz-input", data, size);
    if (!schema)
        return 0;
    std::ostringstream sink;
    molt::schema::write_schema_text(*schema, sink, molt::schema::Addresses::Show);
    molt::schema::write_schema_json(*schema, sink);
    molt::schema::write_c_header(*schema, {}, sink);
    molt::schema::SchemaDiff diff = molt::schema::diff_schemas(*schema, *schema);
    (void)diff;
    auto again = molt::schema::deserialize_schema(molt::schema::serialize_schema(*schema));
    (void)again;
    return 0;
}
