// `molt update PID NEW`, `molt status PID`, `molt ps`.
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <fmt/format.h>
#include <fstream>
#include <iostream>
#include <string_view>
#include <thread>

#include "commands.h"
#include "control_client.h"
#include "schema_cache.h"

namespace molt::cli {
namespace {

using nlohmann::json;

double number(const json &object, const char *key) { return object.value(key, 0.0); }

void print_report(const json &report)
{
    std::string verify = number(report, "verify_ms") > 0 ? fmt::format(" + verify {:.3f}", number(report, "verify_ms")) : "";
    std::cout << fmt::format("pause {:.3f} ms (quiesce {:.3f} + transform {:.3f}{} + restart {:.3f} + commit {:.3f}); "
                             "prepare {:.1f} ms before it\n",
                             number(report, "pause_ms"), number(report, "quiesce_ms"), number(report, "transform_ms"),
                             verify, number(report, "restart_ms"), number(report, "commit_ms"), number(report, "prepare_ms"));
    std::cout << fmt::format("threads {}; variables: {} copied, {} converted, {} new, {} dropped; locals carried {}; "
                             "heap: {} objects converted ({} bytes)\n",
                             report.value("threads", 0), report.value("variables_copied", 0),
                             report.value("variables_converted", 0), report.value("variables_new", 0),
                             report.value("variables_dropped", 0), report.value("locals_carried", 0),
                             report.value("heap_objects_converted", 0), report.value("heap_bytes_converted", 0));
    for (const auto &warning : report.value("warnings", json::array()))
        std::cout << "warning: " << warning.get<std::string>() << "\n";
}

// Digits only: strtol alone takes " 12" and "+12" too.
std::optional<pid_t> parse_pid(const std::string &text)
{
    if (text.empty() || text.size() > 10 || text.find_first_not_of("0123456789") != std::string::npos)
        return std::nullopt;
    long value = std::strtol(text.c_str(), nullptr, 10);
    if (value <= 0 || value > INT_MAX)
        return std::nullopt;
    return static_cast<pid_t>(value);
}

// Ctrl-C (SIGINT) or SIGTERM while `molt update` waits: the first asks the process to cancel the
// update, the second leaves it to finish on its own.
volatile sig_atomic_t g_interrupts = 0;
volatile sig_atomic_t g_last_signal = 0;

void note_interrupt(int signal_number)
{
    g_interrupts = g_interrupts + 1;
    g_last_signal = signal_number;
}

// Catches SIGINT and SIGTERM. SA_RESTART keeps connect, send and the writes to stdout from
// failing with EINTR; poll, which the wait for the answer uses, is never restarted, so the
// signal still cuts the wait short. One that is ignored already (nohup, a script's background
// job) stays ignored.
void catch_interrupts()
{
    struct sigaction action {};
    action.sa_flags = SA_RESTART;
    action.sa_handler = note_interrupt;
    sigemptyset(&action.sa_mask);
    for (int number : {SIGINT, SIGTERM}) {
        struct sigaction before {};
        if (sigaction(number, nullptr, &before) == 0 && before.sa_handler == SIG_IGN)
            continue;
        sigaction(number, &action, nullptr);
    }
}

// What becomes of an update that is past cancelling, for the "too late" messages.
constexpr const char *ends_by_itself =
    "ends by itself, committed or rolled back (a transformer call or a restart that outlasts --timeout is given up)";

// What a process answers to a cancellation: its word (cancelling, too_late, nothing_running),
// the phase the update is in, and the update's number (runtimes before cancel ids send none).
struct CancelReply {
    std::string word, phase;
    std::optional<std::uint64_t> id;
};

// Asks process `pid` to cancel its running update, or only the one numbered `id`.
Result<CancelReply> ask_to_cancel(pid_t pid, std::optional<std::uint64_t> id = std::nullopt)
{
    json request = {{"protocol", 1}, {"command", "cancel"}};
    if (id)
        request["id"] = *id;
    auto answer = control_request(pid, request, {}, std::chrono::seconds(2));
    if (!answer)
        return answer.error();
    if (!answer->value("ok", false))
        return Error{"process " + std::to_string(pid), answer->value("error", "cancel refused")};
    CancelReply reply{answer->value("cancel", ""), answer->value("phase", ""), std::nullopt};
    if (answer->contains("id") && (*answer)["id"].is_number_unsigned())
        reply.id = (*answer)["id"].get<std::uint64_t>();
    return reply;
}

// The running update of a status, in words ("" when none runs).
std::string running_update_line(const json &status)
{
    if (!status.contains("update"))
        return "";
    const json update = status["update"];
    return fmt::format("update in progress: to {}, in {} for {:.1f} s (started {:.1f} s ago){}", update.value("to", "?"),
                       update.value("phase", "?"), number(update, "phase_elapsed_ms") / 1000,
                       number(update, "elapsed_ms") / 1000,
                       update.value("cancel_requested", false) ? ", cancelling" : "");
}

}  // namespace

int run_update(const Options &options)
{
    // With --json, every outcome is JSON on stdout, errors before the process answered too.
    auto fail = [&](const std::string &message) {
        if (!options.json)
            return report_error(message);
        std::cout << json{{"event", "result"}, {"ok", false}, {"error", message}}.dump(2) << "\n";
        return exit_error;
    };
    auto pid = parse_pid(options.pid);
    if (!pid)
        return fail("PID must be a process id, got \"" + options.pid + "\"");
    char resolved[PATH_MAX];
    if (!realpath(options.new_file.c_str(), resolved))
        return fail(options.new_file + ": " + std::strerror(errno));
    if (std::string_view(resolved).find_first_of("\n\r") != std::string_view::npos)
        return fail(options.new_file + ": a path with a line break (the update history is one line per update)");
    // Check the file here too, so that a bad NEW is told without disturbing the process; through
    // the cache, where the process then finds the schema instead of reading the DWARF again.
    if (auto schema = load_schema(options, resolved); !schema)
        return fail(schema.error().to_string());
    // A process that does not read the request in time (stopped, say) must not start the update
    // later, when the user has been told nothing was done: the request says by when to start
    // (the wall clock: processes in other time namespaces share it), and this side waits a
    // second longer for the process's "accepted".
    auto first_answer = std::chrono::milliseconds(std::max(1000L, static_cast<long>(options.timeout_seconds * 1000)));
    auto start_by = std::chrono::duration_cast<std::chrono::milliseconds>(
                        (std::chrono::system_clock::now() + first_answer).time_since_epoch())
                        .count();
    json request = {{"protocol", 1}, {"command", "update"}, {"path", resolved},
                    {"timeout_ms", static_cast<long>(options.timeout_seconds * 1000)},
                    {"keep_old_state", options.keep_old_state},
                    {"verify", options.verify}, {"start_by_ms", start_by}};
    // Ctrl-C: the cancellation is asked for once the process has accepted the update (before,
    // there is nothing to cancel yet; the process refuses a request it reads too late anyway).
    catch_interrupts();
    bool accepted = false, cancel_asked = false;
    std::optional<std::uint64_t> update_id;  // from "accepted": a Ctrl-C cancels this update, no later one
    auto cancel_if_interrupted = [&] {
        if (g_interrupts >= 2) {
            std::cerr << "molt: left waiting; the update goes on in process " << *pid << ": `molt status " << *pid
                      << "` tells how it ends\n";
            signal(g_last_signal, SIG_DFL);
            raise(g_last_signal);
        }
        if (g_interrupts == 0 || cancel_asked || !accepted)
            return;
        cancel_asked = true;
        auto answer = ask_to_cancel(*pid, update_id);
        if (!answer)
            std::cerr << "molt: interrupted, but the cancellation could not be asked for: " << answer.error().to_string() << "\n";
        else if (answer->word == "cancelling")
            std::cerr << "molt: interrupted: cancelling the update in " << answer->phase
                      << " (nothing has changed yet); Ctrl-C again to stop waiting\n";
        else if (answer->word == "too_late")
            std::cerr << "molt: interrupted, but too late to cancel: the update is in " << answer->phase << " and "
                      << ends_by_itself << "; Ctrl-C again to stop waiting\n";
    };
    auto result = control_request(*pid, request, [&](const json &line) {
        if (line.value("event", "") == "accepted") {
            accepted = true;
            if (line.contains("id") && line["id"].is_number_unsigned())  // runtimes before cancel ids send none
                update_id = line["id"].get<std::uint64_t>();
            if (!options.json)
                std::cout << "molt: updating process " << *pid << " to " << resolved << std::endl;
            cancel_if_interrupted();
        }
        if (!options.json && line.value("event", "") == "phase")
            std::cout << fmt::format("  {:<10} {:9.3f} ms  {}\n", line.value("phase", ""), number(line, "ms"),
                                     line.value("detail", "")) << std::flush;
    }, first_answer + std::chrono::seconds(1), cancel_if_interrupted);
    if (!result)
        return fail(result.error().to_string());
    if (options.json) {
        std::cout << result->dump(2) << "\n";
        return result->value("ok", false) ? exit_ok : exit_check_failed;
    }
    const json report = result->value("report", json::object());
    if (!result->value("ok", false)) {
        std::string phase = report.value("phase", "");
        std::cerr << "molt: update failed" << (phase.empty() ? "" : " in " + phase) << ": "
                  << result->value("error", "unknown error") << "\n";
        for (const auto &straggler : report.value("stragglers", json::array()))
            std::cerr << "  " << straggler.get<std::string>() << "\n";
        return exit_check_failed;
    }
    std::cout << "updated: process " << *pid << " runs " << report.value("to", "") << " (build-id "
              << report.value("to_build_id", "?") << ")\n";
    print_report(report);
    return exit_ok;
}

int run_status(const Options &options)
{
    auto pid = parse_pid(options.pid);
    if (!pid)
        return report_error("PID must be a process id, got \"" + options.pid + "\"");
    auto result = control_request(*pid, {{"protocol", 1}, {"command", "status"}, {"heap", options.heap}});
    if (!result)
        return report_error(result.error().to_string());
    if (!result->value("ok", false))
        return report_error("process " + options.pid + ": " + result->value("error", "status refused"));
    const json status = result->value("status", json::object());
    if (options.json) {
        std::cout << status.dump(2) << "\n";
        return exit_ok;
    }
    const json version = status.value("version", json::object());
    std::cout << "process " << *pid << " runs " << version.value("path", "?") << " (build-id "
              << version.value("build_id", "?") << ")\n";
    if (std::string running = running_update_line(status); !running.empty())
        std::cout << running << "\n";
    std::cout << "threads:\n";
    for (const auto &thread : status.value("threads", json::array()))
        std::cout << fmt::format("  {:>7}  {:<11} {:<28} last update point: {}\n", thread.value("tid", 0),
                                 thread.value("state", ""), thread.value("start", ""),
                                 thread.value("last_update_point", "").empty() ? std::string("-")
                                                                                 : thread.value("last_update_point", ""));
    if (status.contains("memory")) {  // (a runtime before the tenth session sent the heap instead)
        const json memory = status["memory"];
        std::cout << fmt::format("memory: {:.1f} MB resident, {:.1f} MB of it anonymous (heaps, stacks)\n",
                                 memory.value("resident_bytes", std::size_t{0}) / 1e6,
                                 memory.value("resident_anonymous_bytes", std::size_t{0}) / 1e6);
    }
    if (status.contains("heap")) {
        const json heap = status["heap"];
        std::cout << fmt::format("heap in use: {:.1f} MB ({} allocator)\n",
                                 heap.value("bytes_in_use", std::size_t{0}) / 1e6, heap.value("allocator", "?"));
    }
    const json history = status.value("history", json::array());
    std::size_t attempted = status.value("updates_attempted", history.size());
    std::cout << "updates: " << attempted
              << (attempted > history.size() ? fmt::format(" (the last {} listed)", history.size()) : "") << "\n";
    for (const auto &report : history) {
        if (report.value("ok", false))
            std::cout << fmt::format("  ok      {} -> {}  pause {:.3f} ms\n", report.value("from", ""),
                                     report.value("to", ""), number(report, "pause_ms"));
        else
            std::cout << fmt::format("  failed  {} -> {}  in {}: {}\n", report.value("from", ""), report.value("to", ""),
                                     report.value("phase", ""), report.value("error", ""));
    }
    return exit_ok;
}

int run_cancel(const Options &options)
{
    auto pid = parse_pid(options.pid);
    if (!pid)
        return report_error("PID must be a process id, got \"" + options.pid + "\"");
    auto answer = ask_to_cancel(*pid);
    if (!answer)
        return report_error(answer.error().to_string());
    const auto &[word, phase, id] = *answer;
    if (word == "nothing_running") {
        std::cerr << "molt: process " << *pid << " runs no update: nothing to cancel\n";
        return exit_check_failed;
    }
    if (word == "too_late") {
        std::cerr << "molt: too late to cancel: the update of process " << *pid << " is in " << phase
                  << " (its state is being changed) and " << ends_by_itself << "\n";
        return exit_check_failed;
    }
    // It stops at its next check (within a few milliseconds while it waits for the threads, or
    // at the end of prepare's current step): the outcome is its report in the history, the one
    // with its number (another client's update may have started and ended since), or the last
    // one from a runtime that sends no number.
    std::cout << "molt: cancelling the update of process " << *pid << " (in " << phase << ")" << std::endl;
    auto report_of_ours = [&](const json &history) -> std::optional<json> {
        for (auto report = history.rbegin(); report != history.rend(); ++report)
            if (!id || (report->contains("id") && (*report)["id"] == *id))
                return *report;
        return std::nullopt;
    };
    for (int waited_ms = 0; waited_ms < 60'000; waited_ms += 20) {
        auto status = control_request(*pid, {{"protocol", 1}, {"command", "status"}});
        if (!status)
            return report_error(status.error().to_string());
        const json state = status->value("status", json::object());
        bool ours_runs = state.contains("update") && (!id || state["update"].value("id", std::uint64_t{0}) == *id);
        std::optional<json> found = ours_runs ? std::nullopt : report_of_ours(state.value("history", json::array()));
        if (found) {
            const json &last = *found;
            if (last.value("ok", false)) {
                std::cerr << "molt: the update ended before the cancellation reached it: process " << *pid << " runs "
                          << last.value("to", "?") << "\n";
                return exit_check_failed;
            }
            if (last.value("error", "").rfind("cancelled", 0) != 0) {
                std::cerr << "molt: the update failed before the cancellation reached it (in " << last.value("phase", "?")
                          << ": " << last.value("error", "") << ")\n";
                return exit_check_failed;
            }
            std::cout << "cancelled in " << last.value("phase", "?") << ": process " << *pid << " runs "
                      << last.value("from", "?") << " as before\n";
            return exit_ok;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return report_error("process " + std::to_string(*pid) + " still runs its update a minute after the cancellation: "
                        "`molt status " + std::to_string(*pid) + "` tells how it ends");
}

int run_ps(const Options &)
{
    DIR *processes = opendir("/proc");
    if (!processes)
        return report_error(std::string("/proc: ") + std::strerror(errno));
    std::cout << fmt::format("{:>7}  {}\n", "PID", "VERSION");
    while (dirent *entry = readdir(processes)) {
        auto pid = parse_pid(entry->d_name);
        if (!pid || !has_control_socket(*pid))
            continue;
        struct stat owner {};
        if (stat(("/proc/" + std::string(entry->d_name)).c_str(), &owner) != 0 || (owner.st_uid != geteuid() && geteuid() != 0))
            continue;
        auto status = control_request(*pid, {{"protocol", 1}, {"command", "status"}}, {}, std::chrono::seconds(2));
        std::string version = "(not answering)";
        if (status && status->value("ok", false)) {
            const json state = status->value("status", json::object());
            version = state.value("version", json::object()).value("path", "?");
            if (state.contains("update"))
                version += fmt::format("  (updating to {}, in {})", state["update"].value("to", "?"),
                                       state["update"].value("phase", "?"));
        }
        std::cout << fmt::format("{:>7}  {}\n", *pid, version);
    }
    closedir(processes);
    return exit_ok;
}

}  // namespace molt::cli
