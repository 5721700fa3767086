// `molt old-types FILE`: FILE's types as a C header for transformers.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "c_header.h"
#include "commands.h"
#include "schema_cache.h"

namespace molt::cli {

int run_old_types(const Options &options)
{
    if (options.prefix.empty() || !(std::isalpha(static_cast<unsigned char>(options.prefix[0])) || options.prefix[0] == '_'))
        return report_error("--prefix must start a C identifier (a letter or _), got \"" + options.prefix + "\"");
    for (char c : options.prefix)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_')
            return report_error("--prefix must be a C identifier part (letters, digits, _), got \"" + options.prefix + "\"");
    auto schema = load_schema(options, options.file);
    if (!schema)
        return report_error(schema.error().to_string());
    // A header of another language's types would not compile (templates, namespaces): said here,
    // not by the C compiler, later, about a file the user did not write.
    if (!schema->foreign_units.empty())
        return report_error(options.file + ": old-types writes C, and " + schema->foreign_units.front() +
                            (schema->foreign_units.size() > 1
                                 ? " and " + std::to_string(schema->foreign_units.size() - 1) + " more units are"
                                 : " is") +
                            " in another language, whose types have no C spelling");
    std::ostringstream header;
    schema::write_c_header(*schema, {options.prefix}, header);
    if (options.output.empty()) {
        std::cout << header.str();
        return exit_ok;
    }
    std::error_code ignored;
    if (std::filesystem::equivalent(options.output, options.file, ignored))
        return report_error(options.output + ": is FILE itself: give the header another name");
    std::ofstream out(options.output, std::ios::trunc);
    if (!out || !(out << header.str()) || !out.flush())
        return report_error(options.output + ": cannot write: " + std::strerror(errno));
    return exit_ok;
}

}  // namespace molt::cli
