// The transform phase's watchdog thread (transformer_watchdog.h).
#include "transformer_watchdog.h"

#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>

#include "threads.h"
#include "transformer_guard.h"

namespace molt::runtime {

using Clock = std::chrono::steady_clock;

struct TransformerWatchdog::Shared {
    std::mutex mutex;
    std::condition_variable changed;
    bool armed = false, stopping = false;
    std::chrono::milliseconds limit;
};

namespace {

// Samples the calls in progress a few times per limit (at least every 250 ms): a call seen in
// progress for the limit is expired, and its thread signalled at each sample until it leaves.
// Nothing here allocates: it runs in the pause, perhaps after an abandoned transformer left the
// allocator locked (the escape avoids that, but a transformer's own locks are its own).
void watch(TransformerWatchdog::Shared &shared, std::unique_lock<std::mutex> &lock)
{
    constexpr int most = transform::max_watched_calls;
    auto period = std::clamp(shared.limit / 8, std::chrono::milliseconds(1), std::chrono::milliseconds(250));
    transform::TransformerCall seen[most], now_in[most];
    Clock::time_point seen_since[most], now_since[most];
    int seen_count = 0;
    while (shared.armed && !shared.stopping) {
        shared.changed.wait_for(lock, period);
        if (!shared.armed || shared.stopping)
            return;
        auto now = Clock::now();
        int count = transform::transformer_calls_in_progress(now_in);
        for (int i = 0; i < count; ++i) {
            now_since[i] = now;
            for (int j = 0; j < seen_count; ++j)
                if (seen[j].tid == now_in[i].tid && seen[j].call == now_in[i].call)
                    now_since[i] = seen_since[j];
            if (now - now_since[i] >= shared.limit) {
                transform::expire_transformer_call(now_in[i], static_cast<long>(shared.limit.count()));
                syscall(SYS_tgkill, getpid(), now_in[i].tid, wake_signal());
            }
        }
        for (int i = 0; i < count; ++i) {
            seen[i] = now_in[i];
            seen_since[i] = now_since[i];
        }
        seen_count = count;
    }
}

void *watchdog_thread(void *argument)
{
    auto *held = static_cast<std::shared_ptr<TransformerWatchdog::Shared> *>(argument);
    std::shared_ptr<TransformerWatchdog::Shared> shared = std::move(*held);
    delete held;
    std::unique_lock lock(shared->mutex);
    while (!shared->stopping) {
        shared->changed.wait(lock, [&] { return shared->armed || shared->stopping; });
        watch(*shared, lock);
        // Disarmed: wait to be armed again (or stopped).
        shared->changed.wait(lock, [&] { return !shared->armed || shared->stopping; });
    }
    return nullptr;
}

}  // namespace

TransformerWatchdog::TransformerWatchdog(std::chrono::milliseconds limit) : m_shared(std::make_shared<Shared>())
{
    m_shared->limit = limit;
    auto *held = new std::shared_ptr<Shared>(m_shared);
    if (create_internal_thread(&m_thread, watchdog_thread, held, true) != 0) {
        delete held;
        m_shared.reset();  // no watchdog: a hung transformer then holds the pause, as before
    }
}

TransformerWatchdog::~TransformerWatchdog()
{
    if (!m_shared)
        return;
    {
        std::lock_guard lock(m_shared->mutex);
        m_shared->stopping = true;
        m_shared->changed.notify_all();
    }
    // A thread that outlived the update would be counted as the update's by whoever compares
    // the process's threads before and after (molt status, a leak check): it wakes at once.
    pthread_join(m_thread, nullptr);
}

void TransformerWatchdog::arm() { set_armed(true); }

void TransformerWatchdog::disarm() { set_armed(false); }

void TransformerWatchdog::set_armed(bool armed)
{
    if (!m_shared)
        return;
    transform::watch_transformer_calls(armed);
    std::lock_guard lock(m_shared->mutex);
    m_shared->armed = armed;
    m_shared->changed.notify_all();
}

}  // namespace molt::runtime
