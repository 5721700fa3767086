// Thread tracking: pthread_create and pthread_cond_wait are interposed (the runtime library is
// linked before libc, so the program's calls land here), the wake signal, the main thread.
#include "threads.h"

#include "transformer_guard.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "gate.h"
#include "molt/molt.h"

namespace molt::runtime {
namespace {

thread_local ThreadRecord *t_current = nullptr;

using CreateFunction = int (*)(pthread_t *, const pthread_attr_t *, StartRoutine, void *);
using CondWaitFunction = int (*)(pthread_cond_t *, pthread_mutex_t *);
using CondTimedWaitFunction = int (*)(pthread_cond_t *, pthread_mutex_t *, const struct timespec *);

template <typename Function>
Function next_symbol(const char *name, const char *version = nullptr)
{
    void *symbol = version ? dlvsym(RTLD_NEXT, name, version) : nullptr;
    if (!symbol)
        symbol = dlsym(RTLD_NEXT, name);
    if (!symbol)
        std::abort();  // libc without pthread_create: the process cannot run at all
    return reinterpret_cast<Function>(symbol);
}

#if defined(__SANITIZE_ADDRESS__)
extern "C" int __interceptor_pthread_create(pthread_t *, const pthread_attr_t *, StartRoutine, void *);
#endif

CreateFunction real_create()
{
#if defined(__SANITIZE_ADDRESS__)
    // The sanitizer must still see every thread start (it sets up each thread's shadow state);
    // libmolt is preloaded ahead of it, so its pthread_create is the next one, not libc's.
    return __interceptor_pthread_create;
#else
    static CreateFunction function = next_symbol<CreateFunction>("pthread_create", "GLIBC_2.34");
    return function;
#endif
}

CondWaitFunction real_cond_wait()
{
    static CondWaitFunction function = next_symbol<CondWaitFunction>("pthread_cond_wait", "GLIBC_2.3.2");
    return function;
}

CondTimedWaitFunction real_cond_timedwait()
{
    static CondTimedWaitFunction function = next_symbol<CondTimedWaitFunction>("pthread_cond_timedwait", "GLIBC_2.3.2");
    return function;
}

pid_t current_tid() { return static_cast<pid_t>(syscall(SYS_gettid)); }

// The bottom of every thread the program creates: registers it, runs the start routine, and is
// where a start routine restarted in a new version returns to (exit_context).
// Unregisters a thread that leaves by pthread_exit or cancellation, which unwind past
// thread_entry's own cleanup. (Its record and stacks are left: it may be running on one.)
pthread_key_t &exit_key()
{
    static pthread_key_t key = [] {
        pthread_key_t made;
        pthread_key_create(&made, [](void *value) {
            auto *record = static_cast<ThreadRecord *>(value);
            registry().remove(record);
            set_current_thread(nullptr);
            notify_thread_change();
        });
        return made;
    }();
    return key;
}

void *thread_entry(void *argument)
{
    auto *record = static_cast<ThreadRecord *>(argument);
    record->tid = current_tid();
    set_current_thread(record);
    pthread_setspecific(exit_key(), record);
    volatile bool started = false;
    getcontext(&record->exit_context);
    record->has_exit_context = true;
    if (!started) {
        started = true;
        // Registered by pthread_create already (so that an update starting now waits for it);
        // if an update is pending, this is its first update point, before its version runs.
        if (__atomic_load_n(&molt_pending_update, __ATOMIC_SEQ_CST))
            molt_update_point_slow("thread start");
        if (record->current_state() == ThreadState::Running)
            record->result = record->start(record->arg);
    }
    // Back on the thread's own stack, whichever version's start routine returned.
    void *result = record->result;
    pthread_setspecific(exit_key(), nullptr);
    registry().remove(record);
    set_current_thread(nullptr);
    release_stack(record->stack_in_use);
    release_stack(record->previous_stack);
    notify_thread_change();
    delete record;
    return result;
}

void wake_handler(int number, siginfo_t *, void *)
{
    transform::escape_hung_transformer(number);  // returns unless a transformer call was given up on
    int saved_errno = errno;
    ThreadRecord *record = t_current;
    // A rollback of a restart that outlived its deadline: leave the new code where it is.
    if (record && record->rollback_requested.exchange(0) &&
        record->current_state() == ThreadState::Restarting) {
        errno = saved_errno;
        return_to_old_frames(*record);
    }
    if (record && record->capture_requested.load()) {
        record->frame_count.store(backtrace(record->frames, 32));
        record->capture_requested.store(0);
    }
    errno = saved_errno;
}

// Waits on `condition` as an update point: when an update is pending, the mutex is released,
// the thread parks (and may restart in the new version), and on resume it takes the mutex again
// and returns 0, a spurious wakeup that every correct caller already handles.
template <typename Wait>
int wait_as_update_point(pthread_cond_t *condition, pthread_mutex_t *mutex, Wait &&wait)
{
    ThreadRecord *record = t_current;
    if (!record)
        return wait();
    // kick() may broadcast `condition` only while this thread is inside the wait: clearing
    // waiting_on takes the same flag, so the condition is never touched after it may be destroyed.
    auto stop_waiting = [record] {
        while (record->waiting_lock.test_and_set(std::memory_order_acquire)) {
        }
        record->waiting_on.store(nullptr);
        record->waiting_lock.clear(std::memory_order_release);
    };
    auto park_here = [&] {
        pthread_mutex_unlock(mutex);
        molt_update_point_slow("pthread_cond_wait");
        pthread_mutex_lock(mutex);
    };
    if (__atomic_load_n(&molt_pending_update, __ATOMIC_ACQUIRE)) {
        park_here();
        return 0;
    }
    record->waiting_on.store(condition);
    int result = wait();
    stop_waiting();
    if (__atomic_load_n(&molt_pending_update, __ATOMIC_ACQUIRE) && result == 0)
        park_here();
    return result;
}

}  // namespace

ThreadRecord *current_thread() { return t_current; }
void set_current_thread(ThreadRecord *record) { t_current = record; }

void Registry::add(ThreadRecord *record)
{
    std::lock_guard lock(m_mutex);
    m_threads.push_back(record);
}

void Registry::remove(ThreadRecord *record)
{
    std::lock_guard lock(m_mutex);
    m_threads.erase(std::remove(m_threads.begin(), m_threads.end(), record), m_threads.end());
}

void Registry::reset_after_fork(ThreadRecord *survivor)
{
    new (&m_mutex) std::mutex;
    m_threads.clear();
    if (survivor)
        m_threads.push_back(survivor);
}

Registry &registry()
{
    static Registry *instance = new Registry;  // never destroyed: threads may outlive exit handlers
    return *instance;
}

std::atomic<int> &update_generation()
{
    static std::atomic<int> generation{0};
    return generation;
}

std::atomic<int> &committed_generation()
{
    static std::atomic<int> generation{0};
    return generation;
}

std::atomic<int> &thread_changes()
{
    static std::atomic<int> changes{0};
    return changes;
}

void notify_thread_change()
{
    thread_changes().fetch_add(1);
    futex_wake_all(thread_changes());
}

ProcessArguments &process_arguments()
{
    static ProcessArguments arguments;
    return arguments;
}

int wake_signal()
{
    static int signal_number = [] {
        const char *chosen = std::getenv("MOLT_SIGNAL");
        int number = chosen ? std::atoi(chosen) : 0;
        return number > 0 && number < NSIG ? number : SIGRTMIN + 7;
    }();
    return signal_number;
}

void install_wake_signal()
{
    struct sigaction action {};
    action.sa_sigaction = wake_handler;
    action.sa_flags = SA_SIGINFO;  // no SA_RESTART: blocking calls return EINTR
    sigemptyset(&action.sa_mask);
    sigaction(wake_signal(), &action, nullptr);
    void *warm[1];
    backtrace(warm, 1);  // loads libgcc now: backtrace() in the handler must not allocate
}

constexpr int crash_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
struct sigaction g_previous_crash_actions[std::size(crash_signals)];

// Runs the handler the program had before Molt's as the kernel would have run it: with its mask
// (and the signal itself, unless SA_NODEFER) blocked, after resetting the disposition if it asked
// for SA_RESETHAND. The default action (a core dump) is taken by raising the signal again.
void call_previous_handler(int number, siginfo_t *info, void *context, const struct sigaction &previous)
{
    bool has_function = (previous.sa_flags & SA_SIGINFO) ||
                        (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN);
    if (!has_function || (previous.sa_flags & SA_RESETHAND)) {
        struct sigaction reset = previous;
        if (has_function) {
            reset.sa_handler = SIG_DFL;
            reset.sa_flags &= ~SA_SIGINFO;
        }
        sigaction(number, &reset, nullptr);
    }
    if (!has_function) {
        raise(number);
        return;
    }
    sigset_t blocked = previous.sa_mask, was;
    if (!(previous.sa_flags & SA_NODEFER))
        sigaddset(&blocked, number);
    pthread_sigmask(SIG_BLOCK, &blocked, &was);
    if (previous.sa_flags & SA_SIGINFO)
        previous.sa_sigaction(number, info, context);
    else
        previous.sa_handler(number);
    pthread_sigmask(SIG_SETMASK, &was, nullptr);
}

void crash_handler(int number, siginfo_t *info, void *context)
{
    transform::escape_transformer_crash(number);  // returns unless a transformer crashed
    ThreadRecord *record = t_current;
    if (record && record->current_state() == ThreadState::Restarting) {
        record->crash_signal.store(number);
        return_to_old_frames(*record);
    }
    // Not a restarting thread: what the program would have had without Molt.
    for (std::size_t i = 0; i < std::size(crash_signals); ++i)
        if (crash_signals[i] == number) {
            call_previous_handler(number, info, context, g_previous_crash_actions[i]);
            return;
        }
}

void kick(ThreadRecord &record)
{
    while (record.waiting_lock.test_and_set(std::memory_order_acquire)) {
    }
    if (pthread_cond_t *condition = record.waiting_on.load())
        pthread_cond_broadcast(condition);
    record.waiting_lock.clear(std::memory_order_release);
    if (record.tid)
        syscall(SYS_tgkill, getpid(), record.tid, wake_signal());
}

void install_crash_handlers()
{
    for (std::size_t i = 0; i < std::size(crash_signals); ++i) {
        struct sigaction action {};
        action.sa_sigaction = crash_handler;
        // NODEFER: the old frames may crash again later. ONSTACK: a stack overflow leaves no
        // stack to run the handler on but the alternate one.
        action.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
        sigemptyset(&action.sa_mask);
        sigaction(crash_signals[i], &action, &g_previous_crash_actions[i]);
    }
}

void remove_crash_handlers()
{
    for (std::size_t i = 0; i < std::size(crash_signals); ++i)
        sigaction(crash_signals[i], &g_previous_crash_actions[i], nullptr);
}

namespace {

// Blocks the wake signal on this thread for its lifetime.
class WakeSignalWaits {
public:
    WakeSignalWaits()
    {
        sigset_t wake;
        sigemptyset(&wake);
        sigaddset(&wake, wake_signal());
        pthread_sigmask(SIG_BLOCK, &wake, &m_was);
    }
    ~WakeSignalWaits() { pthread_sigmask(SIG_SETMASK, &m_was, nullptr); }
    WakeSignalWaits(const WakeSignalWaits &) = delete;
    WakeSignalWaits &operator=(const WakeSignalWaits &) = delete;

private:
    sigset_t m_was;
};

}  // namespace

MoltLockHeld::MoltLockHeld(ThreadRecord &record, std::mutex &lock) : m_record(record), m_lock(lock)
{
    WakeSignalWaits waits;  // a return between the two would keep the lock for good
    m_lock.lock();
    m_record.molt_lock_held.store(&m_lock);
}

MoltLockHeld::~MoltLockHeld()
{
    WakeSignalWaits waits;  // a return between the two, or inside unlock(), would unlock it twice
    m_record.molt_lock_held.store(nullptr);
    m_lock.unlock();
}

void return_to_old_frames(ThreadRecord &record)
{
    transform::abandon_transformer_calls();
    // This thread holds it, and is not inside its lock or unlock (the wake signal waits there; a
    // crash cannot come from them): letting go of it here is as safe as anywhere on the thread.
    if (std::mutex *lock = record.molt_lock_held.exchange(nullptr))
        lock->unlock();
    // The signal masks saved in the old context come back with it (the crash signal unblocked).
    setcontext(&record.parked_context);
    std::abort();  // setcontext does not return
}

// Every thread Molt may take back from a crash gets an alternate signal stack (when it first
// restarts into a new version, not when it is created: creating threads costs nothing more), so
// that a stack overflow in the new code (a runaway recursion hits the guard page) still reaches
// the crash handler instead of killing the process. A thread that has its own keeps it. Freed
// when the thread ends.
void ensure_alternate_signal_stack()
{
    constexpr std::size_t size = 64 * 1024;
    struct AlternateStack {
        void *memory = nullptr;
        ~AlternateStack()
        {
            if (!memory)
                return;
            stack_t off{};
            off.ss_flags = SS_DISABLE;
            sigaltstack(&off, nullptr);
            munmap(memory, size);
        }
    };
    static thread_local AlternateStack stack;
    stack_t current{};
    if (stack.memory || (sigaltstack(nullptr, &current) == 0 && !(current.ss_flags & SS_DISABLE)))
        return;
    void *memory = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (memory == MAP_FAILED)
        return;  // without one, a stack overflow kills the process, as it would without Molt
    stack_t alternate{};
    alternate.ss_sp = memory;
    alternate.ss_size = size;
    if (sigaltstack(&alternate, nullptr) == 0)
        stack.memory = memory;
    else
        munmap(memory, size);
}

void register_main_thread()
{
    auto *record = new ThreadRecord;
    record->is_main = true;
    record->tid = current_tid();
    set_current_thread(record);
    registry().add(record);
}

int create_internal_thread(pthread_t *thread, void *(*start)(void *), void *arg, bool joinable)
{
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    pthread_attr_setdetachstate(&attributes, joinable ? PTHREAD_CREATE_JOINABLE : PTHREAD_CREATE_DETACHED);
    int result = real_create()(thread, &attributes, start, arg);
    pthread_attr_destroy(&attributes);
    return result;
}

}  // namespace molt::runtime

using namespace molt::runtime;

extern "C" {

__attribute__((visibility("default"))) int pthread_create(pthread_t *thread, const pthread_attr_t *attributes,
                                                          StartRoutine start, void *arg)
{
    auto *record = new (std::nothrow) ThreadRecord;
    if (!record)
        return EAGAIN;
    record->start = start;
    record->arg = arg;
    registry().add(record);  // now: an update that starts before the thread runs waits for it
    int result = real_create()(thread, attributes, thread_entry, record);
    if (result != 0) {
        registry().remove(record);
        delete record;
    }
    return result;
}

__attribute__((visibility("default"))) int pthread_cond_wait(pthread_cond_t *condition, pthread_mutex_t *mutex)
{
    return wait_as_update_point(condition, mutex, [&] { return real_cond_wait()(condition, mutex); });
}

__attribute__((visibility("default"))) int pthread_cond_timedwait(pthread_cond_t *condition, pthread_mutex_t *mutex,
                                                                  const struct timespec *deadline)
{
    return wait_as_update_point(condition, mutex, [&] { return real_cond_timedwait()(condition, mutex, deadline); });
}

}  // extern "C"
