// A futex word to wait on and wake: the runtime's own waiting, which must not go through the
// pthread functions it interposes (pthread_cond_wait is an update point for the application).
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <climits>

namespace molt::runtime {

// Waits while `word` holds `expected`, at most `timeout` (or forever when zero).
inline void futex_wait(std::atomic<int> &word, int expected, std::chrono::nanoseconds timeout = {})
{
    timespec limit{};
    timespec *limit_pointer = nullptr;
    if (timeout.count() > 0) {
        limit.tv_sec = static_cast<time_t>(timeout.count() / 1000000000);
        limit.tv_nsec = static_cast<long>(timeout.count() % 1000000000);
        limit_pointer = &limit;
    }
    syscall(SYS_futex, reinterpret_cast<int *>(&word), FUTEX_WAIT_PRIVATE, expected, limit_pointer, nullptr, 0);
}

inline void futex_wake_all(std::atomic<int> &word)
{
    syscall(SYS_futex, reinterpret_cast<int *>(&word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
}

}  // namespace molt::runtime
