// Transformer calls that a crash does not escape (transformer_guard.h).
#include "transformer_guard.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <csetjmp>
#include <csignal>
#include <pthread.h>
#include <cstring>

#include "heap_tracking.h"

namespace molt::transform {
namespace {

// initial-exec, as heap tracking's flags: libmolt is loaded with the program, and these are read
// twice per transformer call (a million calls for a million objects; the general model made each
// read a call to __tls_get_addr).
__attribute__((tls_model("initial-exec"))) thread_local sigjmp_buf *t_guard = nullptr;  // set while this thread runs a transformer
__attribute__((tls_model("initial-exec"))) thread_local int t_crash_signal = 0;
__attribute__((tls_model("initial-exec"))) thread_local int t_escape_signal = 0;  // the handler's, blocked in it

void unblock_crash_signals()
{
    sigset_t crash;
    sigemptyset(&crash);
    for (int number : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT})
        sigaddset(&crash, number);
    if (t_escape_signal > 0)
        sigaddset(&crash, t_escape_signal);
    t_escape_signal = 0;
    pthread_sigmask(SIG_UNBLOCK, &crash, nullptr);
}

// One per thread that runs transformers (the update's, its helper; a restarting thread's
// MOLT_LOCAL): what the watchdog samples. Only its thread writes `call` and `inside`, at every
// call: a cache line of its own, or two threads converting at once would pass it back and forth.
struct alignas(64) CallSlot {
    std::atomic<pid_t> tid{0};               // 0: free
    std::atomic<std::uint64_t> call{0};      // calls begun
    std::atomic<bool> inside{false};
    std::atomic<std::uint64_t> expired{0};   // the call the watchdog gave up on
};
constexpr int call_slots = max_watched_calls;
CallSlot g_slots[call_slots];
std::atomic<bool> g_watching{false};
CallSlot g_unwatched;  // for a thread that found every slot taken: counted, never sampled
std::atomic<long> g_hang_limit_ms{0};
__attribute__((tls_model("initial-exec"))) thread_local CallSlot *t_slot = nullptr;

// Gives the slot back when its thread ends (a helper thread per update would use them all up).
struct SlotRelease {
    CallSlot *slot = nullptr;
    ~SlotRelease()
    {
        if (slot)
            slot->tid.store(0, std::memory_order_release);
    }
};
thread_local SlotRelease t_slot_release;

// In a child of fork(), only the forking thread goes on: the slots of its parent's threads are
// free, and its own (its parent's tid in it) is claimed again at its next call.
void forget_slots_after_fork()
{
    for (CallSlot &slot : g_slots) {
        slot.tid.store(0, std::memory_order_relaxed);
        slot.inside.store(false, std::memory_order_relaxed);
    }
    t_slot = nullptr;
    t_slot_release.slot = nullptr;
}
[[maybe_unused]] const int g_fork_handler = pthread_atfork(nullptr, nullptr, forget_slots_after_fork);

[[gnu::noinline, gnu::cold]] CallSlot *claim_slot()
{
    if (!g_watching.load(std::memory_order_acquire))
        return &g_unwatched;  // not kept: the thread takes a slot when a watched call comes
    auto self = static_cast<pid_t>(syscall(SYS_gettid));
    for (CallSlot &slot : g_slots) {
        pid_t free = 0;
        if (slot.tid.compare_exchange_strong(free, self)) {
            slot.inside.store(false, std::memory_order_relaxed);
            t_slot_release.slot = &slot;
            return t_slot = &slot;
        }
    }
    return t_slot = &g_unwatched;
}

}  // namespace

const char *call_transformer(TransformerFunction function, void *to, const void *from, int &crash_signal)
{
    sigjmp_buf here;
    sigjmp_buf *outer = t_guard;
    crash_signal = 0;
    // The signal mask is not saved (that is a system call, a million of them for a million
    // objects): a thread comes back from a crash with the crash signals unblocked instead, as
    // they were (Molt's handler is SA_NODEFER, and abort() unblocks SIGABRT itself).
    CallSlot *slot = t_slot ? t_slot : claim_slot();
    if (sigsetjmp(here, 0)) {
        unblock_crash_signals();
        if (in_allocator_for_transformer())
            mark_allocator_possibly_locked();
        record_transformer_allocations(false);
        slot->inside.store(outer != nullptr, std::memory_order_release);
        t_guard = outer;
        crash_signal = t_crash_signal;
        return nullptr;
    }
    // Only this thread writes its slot: plain stores, no locked instruction per call. (A call
    // inside a call, when a transformer converts through Molt, leaves the outer one inside, and
    // counts as the outer one: the watchdog times the outermost call, which a loop of inner calls
    // would otherwise keep young for ever.)
    bool was_inside = slot->inside.load(std::memory_order_relaxed);
    if (!was_inside)
        slot->call.store(slot->call.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    else if (slot->expired.load(std::memory_order_acquire) == slot->call.load(std::memory_order_relaxed)) {
        crash_signal = transformer_hung;  // the outer call was given up on: each inner one fails at once
        return nullptr;
    }
    slot->inside.store(true, std::memory_order_release);
    t_guard = &here;
    record_transformer_allocations(true);  // what it allocates, a rollback frees
    const char *answer = function(to, from);
    record_transformer_allocations(false);
    t_guard = outer;
    slot->inside.store(was_inside, std::memory_order_release);
    return answer;
}

std::optional<std::string> transformer_failure(TransformerFunction function, void *to, const void *from)
{
    int crash = 0;
    const char *message = call_transformer(function, to, from, crash);
    if (!crash && !message)
        return std::nullopt;
    return describe_transformer_failure(message, crash);
}

std::string describe_transformer_failure(const char *message, int crash)
{
    if (crash == transformer_hung)
        return "transformer did not return within " + std::to_string(g_hang_limit_ms.load()) +
               " ms (the update's --timeout) and was abandoned (a lock it held may stay held)" +
               (allocator_may_be_locked() ? "; it was inside malloc or free, so later updates are refused" : "");
    if (crash && allocator_may_be_locked())
        return "transformer crashed with " + std::string(sigabbrev_np(crash) ? sigabbrev_np(crash) : "a signal") +
               " inside malloc or free: the heap may be corrupt, so what the update allocated is left allocated and "
               "later updates are refused (restart the process when you can)";
    if (crash)
        return "transformer crashed with " + std::string(sigabbrev_np(crash) ? sigabbrev_np(crash) : "a signal") +
               " (a lock it held may stay held)";
    return std::string("transformer failed: ") + (message ? message : "");
}

void abandon_transformer_calls()
{
    t_guard = nullptr;
    if (t_slot)
        t_slot->inside.store(false, std::memory_order_release);
    record_transformer_allocations(false);
}

void watch_transformer_calls(bool on) { g_watching.store(on, std::memory_order_release); }

int transformer_calls_in_progress(TransformerCall (&calls)[max_watched_calls])
{
    int count = 0;
    for (CallSlot &slot : g_slots) {
        pid_t tid = slot.tid.load(std::memory_order_acquire);
        if (tid != 0 && slot.inside.load(std::memory_order_acquire))
            calls[count++] = {tid, slot.call.load(std::memory_order_relaxed)};
    }
    return count;
}

void expire_transformer_call(const TransformerCall &call, long limit_ms)
{
    g_hang_limit_ms.store(limit_ms);
    for (CallSlot &slot : g_slots)
        if (slot.tid.load() == call.tid)
            slot.expired.store(call.call, std::memory_order_release);
}

void escape_hung_transformer(int signal)
{
    CallSlot *slot = t_slot;
    sigjmp_buf *guard = t_guard;
    if (!slot || !guard || !slot->inside.load(std::memory_order_acquire) ||
        slot->expired.load(std::memory_order_acquire) != slot->call.load(std::memory_order_relaxed) ||
        in_allocator_for_transformer())
        return;
    t_crash_signal = transformer_hung;
    t_escape_signal = signal;
    siglongjmp(*guard, 1);
}

void escape_transformer_crash(int signal)
{
    if (sigjmp_buf *guard = t_guard) {
        t_crash_signal = signal;
        siglongjmp(*guard, 1);
    }
}

}  // namespace molt::transform
