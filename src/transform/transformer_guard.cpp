// Transformer calls that a crash does not escape (transformer_guard.h).
#include "transformer_guard.h"

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

void unblock_crash_signals()
{
    sigset_t crash;
    sigemptyset(&crash);
    for (int number : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT})
        sigaddset(&crash, number);
    pthread_sigmask(SIG_UNBLOCK, &crash, nullptr);
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
    if (sigsetjmp(here, 0)) {
        unblock_crash_signals();
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
    if (!crash && !message)
        return std::nullopt;
    return describe_transformer_failure(message, crash);
}

std::string describe_transformer_failure(const char *message, int crash)
{
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
