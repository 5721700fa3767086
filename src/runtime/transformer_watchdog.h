// The watchdog of the transform phase: a transformer call that does not return within the
// update's --timeout is abandoned (transformer_guard.h), and the update fails and rolls back,
// instead of every thread of the program staying parked behind it for ever.
#pragma once

#include <pthread.h>

#include <chrono>
#include <memory>

namespace molt::runtime {

class TransformerWatchdog {
public:
    // Starts its thread, idle (in prepare: a thread made in the pause would lengthen it).
    explicit TransformerWatchdog(std::chrono::milliseconds limit);
    ~TransformerWatchdog();  // stops and joins the thread: gone before the update answers
    TransformerWatchdog(const TransformerWatchdog &) = delete;
    TransformerWatchdog &operator=(const TransformerWatchdog &) = delete;

    // Watches the transformer calls from now until disarm(): one in progress for longer than the
    // limit has its thread signalled (the wake signal) until it leaves the call.
    void arm();
    void disarm();

    struct Shared;

private:
    void set_armed(bool armed);

    std::shared_ptr<Shared> m_shared;
    pthread_t m_thread{};
};

}  // namespace molt::runtime
