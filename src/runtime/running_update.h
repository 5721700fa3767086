// The update that is running in this process, if any: what `molt status` shows of it while it
// runs, and its cancellation (`molt cancel`, or `molt update` interrupted with Ctrl-C).
//
// An update can be cancelled while nothing has changed yet: during prepare (the new version is
// checked and loaded while the old one runs) and during quiesce (waiting for every thread to
// reach an update point, which can take up to --timeout). Once every thread is parked the state
// is transformed and the threads restart in the new code: that part is short, bounded by its own
// deadline, and ends in a commit or a rollback of its own, so a cancellation that comes then is
// answered "too late" and the update finishes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace molt::runtime {

struct RunningUpdate {
    std::uint64_t id = 0;  // this process's updates are numbered from 1 (a cancellation may name one)
    std::string to_path;
    std::string phase;              // prepare, quiesce, transform, restart, commit
    std::int64_t started_at_ms = 0;  // wall clock
    double elapsed_ms = 0, phase_elapsed_ms = 0;
    bool cancel_requested = false;
};

// The running update, or nothing.
std::optional<RunningUpdate> running_update();

enum class CancelAnswer {
    nothing_running,
    cancelling,  // it stops before the state is transformed, and the old version runs on
    too_late,    // the state is being transformed or the new code runs: it finishes
};

// Asks the running update to stop, or only the update numbered `id` (a client cancelling the
// update it asked for must not stop another client's later one); `phase` receives the phase it
// is in, and `running` its number (when one runs), so that the client finds its report.
CancelAnswer request_cancel(std::string &phase, std::uint64_t &running, std::optional<std::uint64_t> id = std::nullopt);

// ---- the transaction's side ---------------------------------------------------------------

// Registers the update to `to_path` as running (in prepare), under the next number, and
// unregisters it when destroyed.
class RunningUpdateScope {
public:
    RunningUpdateScope(const std::string &to_path, std::int64_t started_at_ms);
    ~RunningUpdateScope();
    std::uint64_t id() const { return m_id; }
    RunningUpdateScope(const RunningUpdateScope &) = delete;
    RunningUpdateScope &operator=(const RunningUpdateScope &) = delete;

private:
    std::uint64_t m_id;
};

// The running update enters `phase` (shown by status).
void enter_phase(const char *phase);

// Whether a cancellation was asked for (cheap: the quiescence loop asks it every millisecond).
bool cancel_requested();

// Ends the part that can be cancelled, as the pause leaves quiescence: false when a cancellation
// came first (the update must stop), true when none can come any more (later ones are too late).
bool close_cancellation();

}  // namespace molt::runtime
