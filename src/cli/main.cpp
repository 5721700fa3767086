// The molt command: parses the command line (CLI11) and dispatches to one handler per subcommand.
#include <CLI/CLI.hpp>

#include <cstdlib>
#include <iostream>
#include <set>
#include <string_view>
#include <vector>

#include "commands.h"

namespace {

constexpr const char *exit_codes =
    "Exit codes: 0 success; 1 `check` found a change that needs a transformer, `update` was refused "
    "or failed (the process keeps running its old version), or `cancel` found no update to cancel or "
    "came too late; 2 error (bad arguments, unreadable file, no DWARF, no such process): nothing was done.";

}  // namespace

int main(int argc, char **argv)
{
    using namespace molt::cli;
    Options options;
    CLI::App app{"molt: dynamic software updating for C programs.\n"
                 "Updates a running process to a new version of its program without a restart, and tells\n"
                 "beforehand, from the versions' DWARF, what such an update changes and whether it can be done."};
    app.footer(exit_codes);
    app.require_subcommand(1);
    app.set_version_flag("--version", "molt 0.2.0");
    auto add_cache_flag = [&](CLI::App *command) {
        command->add_flag("--no-cache", options.no_cache,
                          "Read the DWARF even when a cached schema for this build-id exists "
                          "(cache: $MOLT_CACHE_DIR, else $XDG_CACHE_HOME/molt, else ~/.cache/molt)");
    };

    CLI::App *schema = app.add_subcommand("schema", "Print what Molt knows about a version: variables that hold "
                                                    "state, functions with their parameters and locals, types");
    schema->add_option("FILE", options.file, "Executable or shared object built with -g")->required();
    auto *schema_json =
        schema->add_flag("--json", options.json, "Print JSON (ids, addresses, every type) instead of one fact per line");
    // JSON numbers its types, differently in each build: it cannot be made stable.
    schema->add_flag("--stable", options.stable, "Leave out addresses, so that two builds of one source compare equal "
                                                 "(text only)")
        ->excludes(schema_json);
    add_cache_flag(schema);

    CLI::App *diff = app.add_subcommand("diff", "Show what an update from OLD to NEW changes: variables, types "
                                                "(member by member) and functions, each classified as identical, "
                                                "convertible by default, or needing a transformer");
    diff->add_option("OLD", options.old_file, "The running version")->required();
    diff->add_option("NEW", options.new_file, "The version to update to")->required();
    diff->add_flag("--json", options.json, "Print JSON");
    add_cache_flag(diff);

    CLI::App *check = app.add_subcommand("check", "Tell whether every change of an update from OLD to NEW is covered "
                                                  "by default rules or by NEW's transformers; exit 1 and list each "
                                                  "change that still needs one");
    check->add_option("OLD", options.old_file, "The running version")->required();
    check->add_option("NEW", options.new_file, "The version to update to")->required();
    add_cache_flag(check);

    CLI::App *old_types = app.add_subcommand("old-types", "Write FILE's types as a compilable C header, renamed "
                                                          "with a prefix, for transformers that read old objects");
    old_types->add_option("FILE", options.file, "The old version (executable or shared object built with -g)")->required();
    old_types->add_option("--prefix", options.prefix, "Prefix for type, typedef and enumerator names")
        ->capture_default_str();
    old_types->add_option("-o,--output", options.output, "Write the header to this file instead of stdout");
    add_cache_flag(old_types);

    const std::set<std::string> commands = {"schema", "diff", "check", "old-types", "update", "cancel", "status", "ps", "run"};
    if (argc > 1 && argv[1][0] != '-' && !commands.count(argv[1])) {
        std::cerr << "molt: error: unknown command '" << argv[1]
                  << "' (commands: schema, diff, check, old-types, update, cancel, status, ps, run)\n"
                  << "Run `molt --help` for usage.\n";
        return exit_error;
    }
    CLI::App *update = app.add_subcommand("update", "Update running process PID to the version NEW, live: prints each "
                                                    "phase's time; exit 0 when updated, 1 when refused or failed "
                                                    "(the old version then keeps running)");
    update->add_option("PID", options.pid, "The process (it must run the Molt runtime)")->required();
    update->add_option("NEW", options.new_file, "The new version: a shared object built with -g -fPIC -shared")->required();
    update->add_option("--timeout", options.timeout_seconds,
                       "Seconds to wait for every thread to reach an update point, again for the restart, and "
                       "at most for any one transformer call")
        ->capture_default_str()
        ->check(CLI::Validator(
            [](const std::string &text) -> std::string {
                // Not CLI::Range: a NaN compares false both ways and passes it.
                char *end = nullptr;
                double seconds = std::strtod(text.c_str(), &end);
                if (text.empty() || *end != '\0' || !(seconds >= 0.001 && seconds <= 3600.0))
                    return text + " is not a number of seconds from 0.001 to 3600";
                return {};
            },
            "SECONDS in [0.001 - 3600]"));
    update->add_flag("--keep-old-state", options.keep_old_state,
                     "Keep the old version's converted heap objects and its variables' memory after the "
                     "commit (by default they are freed), for a program that may still reach them through "
                     "pointers Molt cannot see, such as void *");
    update->add_flag("--verify", options.verify,
                     "After the conversion, scan memory for words still pointing into the old copies of "
                     "converted objects (pointers Molt could not see): report each, and keep the old "
                     "objects if there is one");
    update->add_flag("--json", options.json, "Print the outcome as JSON");
    update->footer(std::string("Ctrl-C (or SIGTERM) while it waits cancels the update if nothing has changed yet (in "
                               "prepare, or while waiting for the threads); a second one leaves the update to end on "
                               "its own.\n\n") + exit_codes);

    CLI::App *cancel = app.add_subcommand("cancel", "Cancel the update running in process PID, if its state has not "
                                                    "started to change (it is in prepare, or waiting for its threads "
                                                    "to reach update points); waits for it to stop. Exit 0 when "
                                                    "cancelled, 1 when none runs or it is too late");
    cancel->add_option("PID", options.pid, "The process")->required();

    CLI::App *status = app.add_subcommand("status", "Show what process PID runs: its version, its threads and where "
                                                    "they last passed an update point, its resident memory, its "
                                                    "update history");
    status->add_option("PID", options.pid, "The process")->required();
    status->add_flag("--heap", options.heap,
                     "Also ask the allocator for the bytes of heap in use. glibc counts them by walking every "
                     "free block under each arena's lock: the program's allocations wait meanwhile (about 0.2 s "
                     "for kvd with a million keys after an update)");
    status->add_flag("--json", options.json, "Print JSON");

    app.add_subcommand("ps", "List your processes that run the Molt runtime, with their current version");

    std::vector<std::string> run_arguments;
    CLI::App *run = app.add_subcommand("run", "Run a version built as a shared object (driver mode), so that it "
                                              "can be updated like an executable linked with the runtime");
    run->add_option("VERSION", options.file, "The version to run: a shared object built with -g")->required();
    run->add_option("ARGS", run_arguments, "Arguments for its main, as they are (options and -- included)");

    // `molt run VERSION ARGS...`: what follows VERSION is the program's, verbatim (its options,
    // `--`, `--help`), so it is taken before CLI11, which would read those as molt's own.
    if (argc > 2 && std::string_view(argv[1]) == "run" && (argv[2][0] != '-' || std::string_view(argv[2]) == "--")) {
        int first = std::string_view(argv[2]) == "--" ? 3 : 2;
        if (first < argc) {
            options.file = argv[first];
            return run_run(options, std::vector<std::string>(argv + first + 1, argv + argc));
        }
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp &help) {
        return app.exit(help);
    } catch (const CLI::CallForAllHelp &help) {
        return app.exit(help);
    } catch (const CLI::CallForVersion &version) {
        return app.exit(version);
    } catch (const CLI::ParseError &error) {
        std::cerr << "molt: error: " << error.what() << "\n" << "Run `molt --help` for usage.\n";
        return exit_error;
    }

    if (schema->parsed())
        return run_schema(options);
    if (diff->parsed())
        return run_diff(options);
    if (check->parsed())
        return run_check(options);
    if (update->parsed())
        return run_update(options);
    if (status->parsed())
        return run_status(options);
    if (cancel->parsed())
        return run_cancel(options);
    if (app.got_subcommand("ps"))
        return run_ps(options);
    if (run->parsed())
        return run_run(options, run_arguments);
    return run_old_types(options);
}
