// The molt subcommands: one handler each, over the libraries. Handlers return the exit code.
#pragma once

#include <string>
#include <vector>

#include "result.h"
#include "schema.h"

namespace molt::cli {

// Exit codes, documented in `molt --help` and the README.
inline constexpr int exit_ok = 0;
inline constexpr int exit_check_failed = 1;  // `check`: some change needs a transformer
inline constexpr int exit_error = 2;         // bad input or usage: nothing was done

struct Options {
    std::string file;        // schema, old-types
    std::string old_file;    // diff, check
    std::string new_file;
    bool json = false;
    bool stable = false;
    bool no_cache = false;
    std::string prefix = "molt_old_";
    std::string output;      // old-types: file to write instead of stdout
    std::string pid;         // update, status, cancel
    double timeout_seconds = 5;  // update: quiescence and restart deadline
    bool keep_old_state = false;  // update: do not free the old copies of converted heap objects
    bool verify = false;          // update: scan for pointers still leading to replaced objects
    bool heap = false;            // status: ask the allocator for the heap in use (stalls its arenas)
};

int run_schema(const Options &options);
int run_diff(const Options &options);
int run_check(const Options &options);
int run_old_types(const Options &options);
int run_update(const Options &options);
int run_status(const Options &options);
int run_cancel(const Options &options);
int run_ps(const Options &options);
int run_run(const Options &options, const std::vector<std::string> &arguments);

// Prints `molt: error: <what>` on stderr and returns exit_error.
int report_error(const std::string &what);

// The schema of `file`, through the build-id cache unless --no-cache (which `options` carries).
Result<schema::Schema> load_schema(const Options &options, const std::string &file);

// Prints what the reader skipped or may have misread in `file` (a static the optimizer split, a
// C++ unit), `molt: warning: FILE: ...` on stderr.
void print_reader_warnings(const std::string &file, const schema::Schema &schema);

}  // namespace molt::cli
