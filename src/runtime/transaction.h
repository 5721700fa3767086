// An update as a transaction (../shared/DESIGN.md, "the order of an update"): prepare while the
// old version runs, quiesce, transform, restart every thread in the new version, commit.
// Anything that fails before the restart leaves the old version running, untouched.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "threads.h"

namespace molt::runtime {

struct PhaseTimes {
    double prepare_ms = 0, quiesce_ms = 0, transform_ms = 0, restart_ms = 0, commit_ms = 0;
    double verify_ms = 0;  // --verify's scan, in the pause between transform and restart
};

struct UpdateReport {
    std::uint64_t id = 0;  // the process's number for it (running_update.h); 0: it never began
    bool ok = false;
    std::string phase;   // where it failed (prepare, quiesce, transform, restart)
    std::string error;   // one line a person can act on
    std::string from_path, to_path, to_build_id;
    std::int64_t started_at_ms = 0;  // wall clock, for the history
    PhaseTimes times;
    double pause_ms = 0;  // quiesce start to commit end: how long the program stood still
    std::size_t threads = 0;
    std::size_t variables_copied = 0, variables_converted = 0, variables_new = 0, variables_dropped = 0;
    std::size_t locals_carried = 0;
    std::size_t heap_objects_converted = 0, heap_bytes_converted = 0;
    std::size_t copy_bytes_prepared = 0;  // memory mapped and touched before the pause for the new copies
    // Of the transform phase: finding the heap objects to convert (one thread), and converting them.
    double heap_discovery_ms = 0, heap_conversion_ms = 0;
    // Given back after the commit (unless --keep-old-state): old heap blocks converted and freed,
    // blocks converted but not allocated through Molt (kept), pages of old variables released.
    std::size_t old_blocks_freed = 0, old_bytes_freed = 0, old_blocks_kept = 0;
    std::size_t old_variable_bytes_released = 0;
    std::size_t stale_pointers = 0;  // found by --verify
    std::size_t functions_redirected = 0, signal_handlers_moved = 0;
    std::size_t variables_transformed = 0;
    std::vector<std::string> warnings;
    std::vector<std::string> stragglers;  // threads that did not reach an update point in time
};

// Called as each phase ends: its name, its duration, a short detail.
using ProgressCallback = std::function<void(const std::string &phase, double ms, const std::string &detail)>;

struct UpdateOptions {
    std::chrono::milliseconds timeout{5000};  // bounds quiescence, again the restart, and each transformer call
    // Keep the old version's converted heap blocks and its variables' pages after the commit,
    // instead of giving them back: for a program that may still reach them through pointers Molt
    // cannot see (void *, integers).
    bool keep_old_state = false;
    // After the conversion, scan memory for words still pointing into replaced objects
    // (stale_pointers.h): each is reported, and if there is one the old state is kept.
    bool verify = false;
    // Called once the update holds the process's update lock and can be cancelled
    // (running_update.h), with its number: the control socket then tells its client "accepted".
    std::function<void(std::uint64_t id)> accepted;
};

// Runs one update to the version in `path`. Only one update runs at a time: a second caller gets
// a refusal at once.
UpdateReport update_to(const std::string &path, const UpdateOptions &options, const ProgressCallback &progress);

// The reports of the last kept_reports() update attempts, oldest first (a server that is updated
// for years must not grow by a report each time), and how many attempts there were in all.
// MOLT_HISTORY=N in the process's environment keeps N (at least 1); 100 by default.
std::size_t kept_reports();
std::vector<UpdateReport> update_history();
std::size_t updates_attempted();

// For MOLT_LOCAL in a restarting thread: takes the old version's value of the local `name` of
// `function` into `address`. False when there is nothing to take.
bool carry_local(ThreadRecord &thread, const char *function, const char *name, void *address, std::size_t size);

// The eventfd of molt_wake_fd(), made on first use.
int wake_fd();

// The qualified name of a thread's start routine in the current version ("main" for the main
// thread), or its address in hex when the version does not know it.
std::string start_routine_name(const ThreadRecord &thread);

}  // namespace molt::runtime
