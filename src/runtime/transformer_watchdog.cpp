// The transform phase's watchdog thread (transformer_watchdog.h).
#include "transformer_watchdog.h"

#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <utility>

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
void watch(TransformerWatchdog::Shared &shared, std::unique_lock<std::mutex> &lock)
{
    auto period = std::clamp(shared.limit / 8, std::chrono::milliseconds(1), std::chrono::milliseconds(250));
    std::map<std::pair<pid_t, std::uint64_t>, Clock::time_point> first_seen;
    while (shared.armed && !shared.stopping) {
        shared.changed.wait_for(lock, period);
        if (!shared.armed || shared.stopping)
            return;
        auto now = Clock::now();
        std::map<std::pair<pid_t, std::uint64_t>, Clock::time_point> seen;
        for (const transform::TransformerCall &call : transform::transformer_calls_in_progress()) {
            auto key = std::pair{call.tid, call.call};
            auto earlier = first_seen.find(key);
            Clock::time_point since = earlier == first_seen.end() ? now : earlier->second;
            seen.emplace(key, since);
            if (now - since >= shared.limit) {
                transform::expire_transformer_call(call, static_cast<long>(shared.limit.count()));
                syscall(SYS_tgkill, getpid(), call.tid, wake_signal());
            }
        }
        first_seen = std::move(seen);
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
    pthread_t thread;
    if (create_internal_thread(&thread, watchdog_thread, held) != 0) {
        delete held;
        m_shared.reset();  // no watchdog: a hung transformer then holds the pause, as before
    }
}

TransformerWatchdog::~TransformerWatchdog()
{
    if (!m_shared)
        return;
    std::lock_guard lock(m_shared->mutex);
    m_shared->stopping = true;
    m_shared->changed.notify_all();
}

bool TransformerWatchdog::started() const { return m_shared != nullptr; }

void TransformerWatchdog::arm()
{
    if (!m_shared)
        return;
    std::lock_guard lock(m_shared->mutex);
    m_shared->armed = true;
    m_shared->changed.notify_all();
}

void TransformerWatchdog::disarm()
{
    if (!m_shared)
        return;
    std::lock_guard lock(m_shared->mutex);
    m_shared->armed = false;
    m_shared->changed.notify_all();
}

}  // namespace molt::runtime
