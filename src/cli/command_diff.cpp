// `molt diff OLD NEW` and `molt check OLD NEW`.
#include <algorithm>
#include <iostream>

#include <fmt/format.h>

#include "annotations.h"
#include "commands.h"
#include "diff.h"
#include "diff_format.h"
#include "schema_cache.h"

namespace molt::cli {
namespace {

// The diff (with NEW's mistaken declarations and what the update loses), and for `check` the
// removed functions that may be a thread's start routine.
struct Compared {
    schema::SchemaDiff diff;  // with the mistakes in NEW's declarations and what the update loses
    std::vector<std::string> removed_start_routines;  // removed functions shaped like void *(void *)
};

bool is_void_pointer(const schema::Schema &schema, schema::TypeId id)
{
    const schema::Type &type = schema::layout(schema, id);
    return type.kind == schema::TypeKind::Pointer && schema::layout(schema, type.target).kind == schema::TypeKind::Void;
}

// The removed functions that could be a thread's start routine (pthread_create's prototype). A
// running process whose thread runs one cannot be updated (the thread would have no code to go
// on in), which only the process can tell: `check` says where to look.
std::vector<std::string> removed_start_routines(const schema::SchemaDiff &diff, const schema::Schema &old_schema)
{
    std::vector<std::string> names;
    for (const schema::FunctionChange &change : diff.functions) {
        if (change.status != schema::Status::Removed)
            continue;
        const schema::Function *function = old_schema.find_function(change.name);
        if (function && function->params.size() == 1 && is_void_pointer(old_schema, function->return_type) &&
            is_void_pointer(old_schema, function->params[0].type))
            names.push_back(change.name);
    }
    return names;
}

Result<Compared> diff_files(const Options &options)
{
    auto old_schema = load_schema(options, options.old_file);
    if (!old_schema)
        return old_schema.error();
    auto new_schema = load_schema(options, options.new_file);
    if (!new_schema)
        return new_schema.error();
    // What the reader left out is not in the verdict either: said before it.
    print_reader_warnings(options.old_file, *old_schema);
    print_reader_warnings(options.new_file, *new_schema);
    Compared compared{schema::diff_schemas(*old_schema, *new_schema), {}};
    compared.diff.annotation_problems = transform::Annotations(*old_schema, *new_schema).problems();
    compared.diff.warnings = schema::value_loss_warnings(compared.diff);
    compared.removed_start_routines = removed_start_routines(compared.diff, *old_schema);
    return compared;
}

// A warning when NEW looks like another program rather than a version of OLD: none of OLD's state
// variables is kept. Every change is then "convertible" (each variable removed or added), which
// would read as a safe update.
std::string unrelated_warning(const schema::SchemaDiff &diff)
{
    // (Functions tell little: main and molt.h's inline functions are in every program.)
    std::size_t variables = 0, variables_kept = 0;
    for (const schema::VariableChange &change : diff.variables) {
        if (change.read_only || change.status == schema::Status::Added)
            continue;
        ++variables;
        variables_kept += change.status != schema::Status::Removed;
    }
    if (variables == 0 || variables_kept > 0)
        return "";
    return fmt::format("the new version keeps none of the old one's {} variables: is it a version of the same program? "
                       "Every variable's value would be dropped",
                       variables);
}

}  // namespace

int run_diff(const Options &options)
{
    auto diffed = diff_files(options);
    if (!diffed)
        return report_error(diffed.error().to_string());
    const schema::SchemaDiff &diff = diffed->diff;
    if (options.json)
        schema::write_diff_json(diff, std::cout);
    else
        schema::write_diff_text(diff, std::cout);
    return exit_ok;
}

int run_check(const Options &options)
{
    auto diffed = diff_files(options);
    if (!diffed)
        return report_error(diffed.error().to_string());
    const schema::SchemaDiff &diff = diffed->diff;
    if (!diff.annotation_problems.empty()) {
        for (const std::string &problem : diff.annotation_problems)
            std::cout << "annotation: " << problem << "\n";
        std::cout << diff.annotation_problems.size()
                  << (diff.annotation_problems.size() == 1 ? " annotation is" : " annotations are") << " wrong: "
                  << options.new_file << " would be refused\n";
        return exit_check_failed;
    }
    if (diff.needs_transformer.empty()) {
        std::size_t variables = 0, types = 0, added = 0;
        for (const auto &change : diff.variables) {
            variables += !change.read_only && change.status == schema::Status::Changed;
            added += !change.read_only && change.status == schema::Status::Added;
        }
        for (const auto &change : diff.types)
            types += change.status == schema::Status::Changed;
        std::cout << "ok: " << options.old_file << " -> " << options.new_file
                  << ": every change is identical or convertible by default"
                  << (diff.covered.empty() ? "" : ", or covered by the new version's transformers and annotations") << " ("
                  << variables
                  << " variables and " << types << " types converted, " << added << " variables new)\n";
        if (std::string unrelated = unrelated_warning(diff); !unrelated.empty())
            std::cout << "warning: " << unrelated << "\n";
        for (const schema::Finding &finding : diff.covered)
            std::cout << "covered by " << finding.covered_by << ": " << finding.where << ": " << finding.old_type << " -> "
                      << finding.new_type << " (" << finding.reason << ")\n";
        for (const auto &change : diff.variables)
            if (change.status == schema::Status::Removed && !change.read_only)
                std::cout << "warning: variable " << change.name << " is removed: its value is dropped\n";
        for (const std::string &warning : diff.warnings)
            std::cout << "warning: " << warning << "\n";
        for (const std::string &name : diffed->removed_start_routines)
            std::cout << "warning: function " << name << " is removed and has a thread start routine's prototype "
                      << "(void *(void *)): the update will be refused while a thread of the process runs it\n";
        return exit_ok;
    }
    for (const schema::Finding &finding : diff.needs_transformer)
        std::cout << finding.to_string() << "\n";
    for (const schema::Finding &finding : diff.covered)
        std::cout << "covered by " << finding.covered_by << ": " << finding.where << "\n";
    std::cout << diff.needs_transformer.size() << (diff.needs_transformer.size() == 1 ? " change needs" : " changes need")
              << " a transformer: " << options.old_file << " -> " << options.new_file
              << " cannot be done by default rules alone\n";
    return exit_check_failed;
}

}  // namespace molt::cli
