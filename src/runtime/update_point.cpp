// The application's side of an update: the C API of molt/molt.h. A thread that reaches an
// update point while an update is pending parks here; on the coordinator's command it resumes
// the old version or restarts in the new one on a fresh stack of the same OS thread.
#include <stdlib.h>
#include <ucontext.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>

#include "gate.h"
#include "molt/molt.h"
#include "threads.h"
#include "transaction.h"

namespace molt::runtime {
namespace {

// Consumes `command` (a Restart must not be seen again at the next update point), unless the
// coordinator replaced it first: a rollback withdraws the Restarts no thread has taken yet.
// A Restart is taken as Switching, before the exchange: the rollback counts a Parked thread as
// back on its old frames, and one still Parked with a Restart in hand would be about to run on
// the new stack that the rollback frees.
bool take_command(ThreadRecord &thread, int command, int generation)
{
    bool leaving = command_of(command) == Command::Restart;
    int before = thread.state.load();
    if (leaving)
        thread.state.store(static_cast<int>(ThreadState::Switching));
    if (thread.command.compare_exchange_strong(command, encode_command(Command::None, generation)))
        return true;
    if (leaving) {  // withdrawn: this thread stays at its old update point
        thread.state.store(before);
        notify_thread_change();
    }
    return false;
}

// Waits for the coordinator's command of update `generation`.
Command wait_for_command(ThreadRecord &thread, int generation)
{
    for (;;) {
        int command = thread.command.load();
        if (command_of(command) != Command::None && generation_of(command) == generation &&
            take_command(thread, command, generation))
            return command_of(command);
        futex_wait(thread.command, command);
    }
}

// Runs on the new stack: the thread's entry in the new version. Never returns.
void restart_trampoline()
{
    ThreadRecord &thread = *current_thread();
    // On the new stack now: parked_context holds the old frames, so a rollback can go back.
    thread.state.store(static_cast<int>(ThreadState::Restarting));
    if (thread.is_main) {
        ProcessArguments &arguments = process_arguments();
        exit(thread.restart_main(arguments.argc, arguments.argv, arguments.envp));
    }
    // thread.start stays the old routine until the commit (a rollback must find it unchanged).
    thread.result = thread.restart_start(thread.restart_arg);
    if (thread.has_exit_context)
        setcontext(&thread.exit_context);  // back to thread_entry, on the thread's own stack
    pthread_exit(thread.result);
}

void restart(ThreadRecord &thread, int generation)
{
    thread.restart_generation = generation;
    ucontext_t next;
    getcontext(&next);
    next.uc_stack.ss_sp = thread.stack_in_use.base;
    next.uc_stack.ss_size = thread.stack_in_use.size;
    next.uc_link = nullptr;
    makecontext(&next, restart_trampoline, 0);
    thread.crash_signal.store(0);
    ensure_alternate_signal_stack();  // the crash handler's, should the new code overflow its stack
    // Switching since the command was taken (take_command).
    swapcontext(&thread.parked_context, &next);
    // Only a rollback comes back here (the old frames are intact until the commit): parked
    // again, until the coordinator has put everything back and resumes the old version.
    thread.state.store(static_cast<int>(ThreadState::Parked));
    notify_thread_change();
    while (wait_for_command(thread, generation) != Command::Resume) {
        // a Rollback repeated while this thread was on its way back: already done
    }
    thread.state.store(static_cast<int>(ThreadState::Running));
}

void park(ThreadRecord &thread, const char *name)
{
    int generation;
    for (;;) {
        generation = update_generation().load();
        thread.parked_at = name;
        thread.parked_generation = generation;
        thread.parked_stack_pointer = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
        thread.state.store(static_cast<int>(ThreadState::Parked));
        // The coordinator lowers the flag before it releases parked threads: a thread that parks
        // after that sees the flag down and leaves by itself (both sides are sequentially
        // consistent). The coordinator counts only threads parked for its own generation; one
        // that read an older generation parks again for the current one.
        if (!__atomic_load_n(&molt_pending_update, __ATOMIC_SEQ_CST)) {
            thread.state.store(static_cast<int>(ThreadState::Running));
            return;
        }
        if (update_generation().load() == generation)
            break;
        thread.state.store(static_cast<int>(ThreadState::Running));
    }
    notify_thread_change();
    switch (wait_for_command(thread, generation)) {
    case Command::Restart:
        restart(thread, generation);
        return;
    default:
        thread.state.store(static_cast<int>(ThreadState::Running));
        return;
    }
}

void arrive(ThreadRecord &thread, int generation)
{
    thread.state.store(static_cast<int>(ThreadState::Arrived));
    notify_thread_change();
    if (committed_generation().load() < generation &&
        wait_for_command(thread, generation) == Command::Rollback)
        return_to_old_frames(thread);  // another thread failed: back to the old version
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
        arrive(*thread, thread->restart_generation);
        return;
    }
    if (__atomic_load_n(&molt_pending_update, __ATOMIC_ACQUIRE))
        park(*thread, name);
}

// Restarting, and its update not committed without it (a restart that outlived the deadline).
static bool restarting(const ThreadRecord *thread)
{
    return thread && thread->current_state() == ThreadState::Restarting &&
           committed_generation().load() < thread->restart_generation;
}

__attribute__((visibility("default"))) int molt_is_updating(void) { return restarting(current_thread()); }

__attribute__((visibility("default"))) int molt_is_updating_from(const char *name)
{
    ThreadRecord *thread = current_thread();
    return name && restarting(thread) && thread->parked_at == name;
}

__attribute__((visibility("default"))) int molt_wake_fd(void) { return wake_fd(); }

__attribute__((visibility("default"))) size_t molt_update_history(char *buffer, size_t size)
{
    std::string text;
    char line[512];
    for (const UpdateReport &report : update_history()) {
        std::string to = report.to_path.substr(report.to_path.rfind('/') + 1);
        if (report.ok)
            std::snprintf(line, sizeof line, "committed %s pause_ms=%.3f converted_objects=%zu\n", to.c_str(),
                          report.pause_ms, report.heap_objects_converted);
        else
            std::snprintf(line, sizeof line, "rolled-back %s phase=%s error=%s\n", to.c_str(), report.phase.c_str(),
                          report.error.c_str());
        text += line;
    }
    if (buffer && size > 0) {
        std::size_t copied = std::min(text.size(), size - 1);
        std::memcpy(buffer, text.data(), copied);
        buffer[copied] = '\0';
    }
    return text.size();
}

__attribute__((visibility("default"))) int molt_local(const char *function, const char *name, void *address, size_t size)
{
    ThreadRecord *thread = current_thread();
    if (!thread || !function || !name || !address)
        return 0;
    bool carried = restarting(thread) && carry_local(*thread, function, name, address, size);
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
