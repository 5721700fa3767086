// Transformer calls that a crash does not escape (transformer_guard.h).
#include "transformer_guard.h"

#include <csetjmp>
#include <cstring>

#include "heap_tracking.h"

namespace molt::transform {
namespace {

thread_local sigjmp_buf *t_guard = nullptr;  // set while this thread runs a transformer
thread_local int t_crash_signal = 0;

}  // namespace

const char *call_transformer(TransformerFunction function, void *to, const void *from, int &crash_signal)
{
    sigjmp_buf here;
    sigjmp_buf *outer = t_guard;
    crash_signal = 0;
    // The signal mask is saved: the crash handler runs with its signal blocked unless
    // SA_NODEFER, and the thread must not come back with it blocked.
    if (sigsetjmp(here, 1)) {
        if (in_allocator_for_transformer())
            mark_allocator_possibly_locked();
        record_transformer_allocations(false);
        t_guard = outer;
        crash_signal = t_crash_signal;
        return nullptr;
    }
    t_guard = &here;
    record_transformer_allocations(true);  // what it allocates, a rollback frees
    const char *answer = function(to, from);
    record_transformer_allocations(false);
    t_guard = outer;
    return answer;
}

std::optional<std::string> transformer_failure(TransformerFunction function, void *to, const void *from)
{
    int crash = 0;
    const char *message = call_transformer(function, to, from, crash);
    if (crash && allocator_may_be_locked())
        return "transformer crashed with " + std::string(sigabbrev_np(crash) ? sigabbrev_np(crash) : "a signal") +
               " inside malloc or free: the heap may be corrupt, so what the update allocated is left allocated and "
               "later updates are refused (restart the process when you can)";
    if (crash)
        return "transformer crashed with " + std::string(sigabbrev_np(crash) ? sigabbrev_np(crash) : "a signal") +
               " (a lock it held may stay held)";
    if (message)
        return std::string("transformer failed: ") + message;
    return std::nullopt;
}

void abandon_transformer_calls()
{
    t_guard = nullptr;
    record_transformer_allocations(false);
}

void escape_transformer_crash(int signal)
{
    if (sigjmp_buf *guard = t_guard) {
        t_crash_signal = signal;
        siglongjmp(*guard, 1);
    }
}

}  // namespace molt::transform
