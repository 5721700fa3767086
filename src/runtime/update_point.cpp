// The application's side of an update: the C API of molt/molt.h. A thread that reaches an
// update point while an update is pending parks here; on the coordinator's command it resumes
// the old version or restarts in the new one on a fresh stack of the same OS thread.
#include <stdlib.h>
#include <ucontext.h>

#include <cstring>

#include "gate.h"
#include "molt/molt.h"
#include "threads.h"
#include "transaction.h"

namespace molt::runtime {
namespace {

Command wait_for_command(ThreadRecord &thread)
{
    for (;;) {
        int command = thread.command.load();
        if (command != static_cast<int>(Command::None)) {
            thread.command.store(static_cast<int>(Command::None));
            return static_cast<Command>(command);
        }
        futex_wait(thread.command, command);
    }
}

// Runs on the new stack: the thread's entry in the new version. Never returns.
void restart_trampoline()
{
    ThreadRecord &thread = *current_thread();
    if (thread.is_main) {
        ProcessArguments &arguments = process_arguments();
        exit(thread.restart_main(arguments.argc, arguments.argv, arguments.envp));
    }
    thread.start = thread.restart_start;
    thread.result = thread.start(thread.arg);
    if (thread.has_exit_context)
        setcontext(&thread.exit_context);  // back to thread_entry, on the thread's own stack
    pthread_exit(thread.result);
}

void restart(ThreadRecord &thread)
{
    ucontext_t next;
    getcontext(&next);
    next.uc_stack.ss_sp = thread.stack_in_use.base;
    next.uc_stack.ss_size = thread.stack_in_use.size;
    next.uc_link = nullptr;
    makecontext(&next, restart_trampoline, 0);
    thread.state.store(static_cast<int>(ThreadState::Restarting));
    swapcontext(&thread.parked_context, &next);
    // Only a rollback comes back here (the old frames are intact until the commit).
    thread.state.store(static_cast<int>(ThreadState::Running));
}

void park(ThreadRecord &thread, const char *name)
{
    thread.parked_at = name;
    thread.command.store(static_cast<int>(Command::None));
    thread.state.store(static_cast<int>(ThreadState::Parked));
    notify_thread_change();
    switch (wait_for_command(thread)) {
    case Command::Restart:
        restart(thread);
        return;
    default:
        thread.state.store(static_cast<int>(ThreadState::Running));
        return;
    }
}

void arrive(ThreadRecord &thread)
{
    thread.state.store(static_cast<int>(ThreadState::Arrived));
    notify_thread_change();
    wait_for_command(thread);  // the commit
    thread.parked_at.clear();
    thread.state.store(static_cast<int>(ThreadState::Running));
}

}  // namespace
}  // namespace molt::runtime

using namespace molt::runtime;

extern "C" {

__attribute__((visibility("default"))) volatile int molt_pending_update = 0;

__attribute__((visibility("default"))) void molt_update_point_slow(const char *name)
{
    ThreadRecord *thread = current_thread();
    if (!thread)
        return;  // a thread Molt did not see start (made before the runtime, or by raw clone)
    thread->last_point.store(name);
    if (thread->current_state() == ThreadState::Restarting) {
        arrive(*thread);
        return;
    }
    if (__atomic_load_n(&molt_pending_update, __ATOMIC_ACQUIRE))
        park(*thread, name);
}

__attribute__((visibility("default"))) int molt_is_updating(void)
{
    ThreadRecord *thread = current_thread();
    return thread && thread->current_state() == ThreadState::Restarting;
}

__attribute__((visibility("default"))) int molt_is_updating_from(const char *name)
{
    ThreadRecord *thread = current_thread();
    return thread && name && thread->current_state() == ThreadState::Restarting && thread->parked_at == name;
}

__attribute__((visibility("default"))) int molt_wake_fd(void) { return wake_fd(); }

__attribute__((visibility("default"))) int molt_local(const char *function, const char *name, void *address, size_t size)
{
    ThreadRecord *thread = current_thread();
    if (!thread || !function || !name || !address)
        return 0;
    bool carried = thread->current_state() == ThreadState::Restarting &&
                   carry_local(*thread, function, name, address, size);
    for (LocalSlot &slot : thread->locals)
        if (slot.function == function && slot.name == name) {
            slot.address = address;
            slot.size = size;
            return carried;
        }
    thread->locals.push_back({function, name, address, size});
    return carried;
}

}  // extern "C"
