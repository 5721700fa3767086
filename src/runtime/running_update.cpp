// The running update's public face: its phase for `molt status`, its cancellation.
#include "running_update.h"

#include <atomic>
#include <chrono>
#include <mutex>

namespace molt::runtime {
namespace {

using Clock = std::chrono::steady_clock;

struct Board {
    std::mutex mutex;
    bool running = false;
    bool cancellable = false;
    RunningUpdate update;
    std::uint64_t numbered = 0;  // updates registered so far
    Clock::time_point started, phase_started;
};

Board &board()
{
    static Board *instance = new Board;  // never destroyed: a status may come during exit
    return *instance;
}

// Read without the lock by the quiescence loop.
std::atomic<bool> g_cancel{false};

double milliseconds_since(Clock::time_point start)
{
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

}  // namespace

std::optional<RunningUpdate> running_update()
{
    Board &b = board();
    std::lock_guard lock(b.mutex);
    if (!b.running)
        return std::nullopt;
    RunningUpdate update = b.update;
    update.elapsed_ms = milliseconds_since(b.started);
    update.phase_elapsed_ms = milliseconds_since(b.phase_started);
    update.cancel_requested = g_cancel.load();
    return update;
}

CancelAnswer request_cancel(std::string &phase, std::uint64_t &running, std::optional<std::uint64_t> id)
{
    Board &b = board();
    std::lock_guard lock(b.mutex);
    if (!b.running || (id && *id != b.update.id))
        return CancelAnswer::nothing_running;
    phase = b.update.phase;
    running = b.update.id;
    if (!b.cancellable)
        return CancelAnswer::too_late;
    g_cancel.store(true);
    return CancelAnswer::cancelling;
}

RunningUpdateScope::RunningUpdateScope(const std::string &to_path, std::int64_t started_at_ms)
{
    Board &b = board();
    std::lock_guard lock(b.mutex);
    b.running = true;
    b.cancellable = true;
    m_id = ++b.numbered;
    b.update = RunningUpdate{.id = m_id, .to_path = to_path, .phase = "prepare", .started_at_ms = started_at_ms};
    b.started = b.phase_started = Clock::now();
    g_cancel.store(false);
}

RunningUpdateScope::~RunningUpdateScope()
{
    Board &b = board();
    std::lock_guard lock(b.mutex);
    b.running = false;
    b.cancellable = false;
    g_cancel.store(false);  // a cancellation belongs to one update, never to the next
}

void enter_phase(const char *phase)
{
    Board &b = board();
    std::lock_guard lock(b.mutex);
    b.update.phase = phase;
    b.phase_started = Clock::now();
}

bool cancel_requested() { return g_cancel.load(std::memory_order_relaxed); }

bool close_cancellation()
{
    Board &b = board();
    std::lock_guard lock(b.mutex);
    b.cancellable = false;
    if (!g_cancel.load())
        b.update.phase = "transform";  // every thread is parked: a cancel now is told where it came
    return !g_cancel.load();
}

}  // namespace molt::runtime
