// `molt schema FILE`: the schema as text or JSON.
#include <iostream>

#include "commands.h"
#include "schema_cache.h"
#include "schema_format.h"

namespace molt::cli {

int report_error(const std::string &what)
{
    std::cerr << "molt: error: " << what << "\n";
    return exit_error;
}

Result<schema::Schema> load_schema(const Options &options, const std::string &file)
{
    return schema::load_schema(file, options.no_cache ? schema::CacheUse::Bypass : schema::CacheUse::Use);
}

int run_schema(const Options &options)
{
    auto schema = load_schema(options, options.file);
    if (!schema)
        return report_error(schema.error().to_string());
    if (options.json)
        schema::write_schema_json(*schema, std::cout);
    else
        schema::write_schema_text(*schema, std::cout, options.stable ? schema::Addresses::Hide : schema::Addresses::Show);
    print_reader_warnings(options.file, *schema);
    return exit_ok;
}

void print_reader_warnings(const std::string &file, const schema::Schema &schema)
{
    for (const std::string &warning : schema.warnings)
        std::cerr << "molt: warning: " << file << ": " << warning << "\n";
}

}  // namespace molt::cli
