// The threads Molt knows: every thread made with pthread_create (interposed here) and the main
// thread, each with where it runs, where it parked, and what an update does with it.
#pragma once

#include <pthread.h>
#include <sys/types.h>
#include <ucontext.h>

#include <atomic>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "stacks.h"

namespace molt::runtime {

enum class ThreadState : int {
    Running,     // in its version's code
    Parked,      // at an update point of the old version, waiting for a command
    Switching,   // took its Restart, leaving the old frames for its new stack (a few instructions)
    Restarting,  // in the new version, on its way to an update point
    Arrived,     // at an update point of the new version, waiting for the commit
};

enum class Command : int { None, Resume, Restart, Commit, Rollback };

// Commands carry the generation of the update they belong to (generation * 8 + command), so
// that a command of an update that ended can never release a thread parked for the next one.
std::atomic<int> &update_generation();
// The last generation committed: a restarting thread that arrives after the commit (it was late)
// goes on at once instead of waiting for a commit that has happened.
std::atomic<int> &committed_generation();
inline int encode_command(Command command, int generation) { return generation * 8 + static_cast<int>(command); }
inline Command command_of(int encoded) { return static_cast<Command>(encoded & 7); }
inline int generation_of(int encoded) { return encoded >> 3; }

// A local registered with MOLT_LOCAL.
struct LocalSlot {
    std::string function, name;
    void *address = nullptr;
    std::size_t size = 0;
};

using StartRoutine = void *(*)(void *);
using MainFunction = int (*)(int, char **, char **);

struct ThreadRecord {
    pid_t tid = 0;
    bool is_main = false;
    StartRoutine start = nullptr;  // in the version the thread runs now (null for main)
    void *arg = nullptr;

    std::atomic<int> state{static_cast<int>(ThreadState::Running)};
    std::atomic<int> command{static_cast<int>(Command::None)};
    std::atomic<const char *> last_point{nullptr};  // the last update point reached (status)
    std::string parked_at;                            // where the old version parked
    std::atomic<pthread_cond_t *> waiting_on{nullptr};  // inside pthread_cond_wait
    std::atomic_flag waiting_lock = ATOMIC_FLAG_INIT;    // kick() broadcasts only while it is set
    int parked_generation = 0;                           // the update this thread parked for
    std::uintptr_t parked_stack_pointer = 0;             // MOLT_LOCALs below it are in dead frames

    // Restart: where to go, and where the old version waits (kept until the commit).
    StartRoutine restart_start = nullptr;
    void *restart_arg = nullptr;  // `arg`, redirected into the new version (a pointer to an old global...)
    MainFunction restart_main = nullptr;
    int restart_generation = 0;  // the update this thread is restarting for
    std::atomic<int> crash_signal{0};        // the signal that ended its restart in the new code
    std::atomic<int> rollback_requested{0};  // the wake signal takes it back to its old frames
    // A lock of Molt's it holds while it runs new code (MoltLockHeld): taken back to its old
    // frames from there, it lets go of it, or Molt would wait for it for good.
    std::atomic<std::mutex *> molt_lock_held{nullptr};
    ucontext_t parked_context{};
    ucontext_t exit_context{};  // bottom of a thread Molt started: a restarted start routine returns here
    bool has_exit_context = false;
    Stack stack_in_use, previous_stack;  // ours; the thread's original stack is not listed
    void *result = nullptr;

    std::vector<LocalSlot> locals;      // registered by the version running now
    std::vector<LocalSlot> old_locals;  // the old version's, during a restart

    // Backtrace on request (a thread that did not reach an update point in time).
    std::atomic<int> capture_requested{0};
    void *frames[32]{};
    std::atomic<int> frame_count{0};

    ThreadState current_state() const { return static_cast<ThreadState>(state.load()); }
};

// The thread record of the calling thread, or null for threads Molt did not see start.
ThreadRecord *current_thread();
void set_current_thread(ThreadRecord *record);

// All known threads, under one mutex.
class Registry {
public:
    void add(ThreadRecord *record);
    void remove(ThreadRecord *record);
    template <typename Visit>
    void for_each(Visit &&visit)
    {
        std::lock_guard lock(m_mutex);
        for (ThreadRecord *record : m_threads)
            visit(*record);
    }
    // In the child of fork(): only the forking thread exists (the mutex may have been held by a
    // thread that is gone, so it is made anew).
    void reset_after_fork(ThreadRecord *survivor);

private:
    std::mutex m_mutex;
    std::vector<ThreadRecord *> m_threads;
};

Registry &registry();

// Bumped (and futex-woken) whenever a thread parks, arrives or exits: the coordinator waits on it.
std::atomic<int> &thread_changes();
void notify_thread_change();

// The process's arguments, captured before main, for restarting main in a new version.
struct ProcessArguments {
    int argc = 0;
    char **argv = nullptr;
    char **envp = nullptr;
};
ProcessArguments &process_arguments();

// Signals a thread so that a blocking system call returns EINTR; wakes pthread_cond_wait.
void kick(ThreadRecord &record);

// During a restart: a crash (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) in a restarting thread
// takes it back to its old version's frames instead of killing the process. Installed for the
// restart phase only; the previous dispositions come back after it.
void install_crash_handlers();
void remove_crash_handlers();

// Back to the old version's frames (from arrive(), or from a signal handler).
[[noreturn]] void return_to_old_frames(ThreadRecord &record);
int wake_signal();

// A lock of Molt's that a thread holds while it may run new code (around a MOLT_LOCAL's
// conversion, which may run a transformer), for the object's lifetime: recorded in its
// ThreadRecord, so that a forced return to its old frames lets go of it (return_to_old_frames).
// The wake signal, which forces that return, waits while the lock and its record change together.
class MoltLockHeld {
public:
    MoltLockHeld(ThreadRecord &record, std::mutex &lock);
    ~MoltLockHeld();
    MoltLockHeld(const MoltLockHeld &) = delete;
    MoltLockHeld &operator=(const MoltLockHeld &) = delete;

private:
    ThreadRecord &m_record;
    std::mutex &m_lock;
};
void install_wake_signal();

// Registers the main thread (from the runtime's constructor).
void register_main_thread();

// The real pthread_create, for the runtime's own threads (never registered): detached, unless
// `joinable` (a thread that must be gone when the update answers its client).
int create_internal_thread(pthread_t *thread, void *(*start)(void *), void *arg, bool joinable = false);

// Gives the calling thread an alternate signal stack unless it has one (see threads.cpp).
void ensure_alternate_signal_stack();

}  // namespace molt::runtime
