// The runtime's start: runs before main (a constructor of libmolt.so), and driver mode.
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include "molt/molt.h"
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "control_protocol.h"
#include "threads.h"
#include "transaction.h"
#include "versions.h"

namespace molt::runtime {
namespace {

// A forked child is a process of its own: the forking thread is its only thread (it becomes the
// child's main thread, restarted in `main` by an update), and it gets its own control socket.
void after_fork_in_child()
{
    ThreadRecord *survivor = current_thread();
    if (survivor) {
        survivor->tid = static_cast<pid_t>(syscall(SYS_gettid));
        survivor->is_main = true;
        survivor->state.store(static_cast<int>(ThreadState::Running));
    }
    registry().reset_after_fork(survivor);
    // Forked in the middle of an update: no coordinator here. The flag goes down, and the child
    // gets an eventfd of its own (same number), so that the parent's updates do not wake it.
    __atomic_store_n(&molt_pending_update, 0, __ATOMIC_SEQ_CST);
    int shared = wake_fd();
    int own = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (shared >= 0 && own >= 0) {
        dup3(own, shared, O_CLOEXEC);
        close(own);
    }
    start_control_socket();
}

// glibc passes a shared object's constructors the process's arguments.
__attribute__((constructor)) void initialise(int argc, char **argv, char **envp)
{
    ProcessArguments &arguments = process_arguments();
    arguments.argc = argc;
    arguments.argv = argv;
    arguments.envp = envp;
    register_main_thread();
    install_wake_signal();
    adopt_executable();
    wake_fd();  // made now, so that the process's fds do not change at the first update
    start_control_socket();
    pthread_atfork(nullptr, nullptr, after_fork_in_child);
}

}  // namespace
}  // namespace molt::runtime

using namespace molt::runtime;

// Driver mode (`molt run V.so ARGS`, see src/cli/molt_run.cpp): V.so becomes the first version
// and its main runs with ARGS. Returns main's result, or 2 (molt's "nothing done") when V.so cannot run.
extern "C" __attribute__((visibility("default"))) int molt_driver_main(const char *path, int argc, char **argv)
{
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        std::fprintf(stderr, "molt: error: %s: cannot load: %s\n", path, dlerror());
        return 2;
    }
    auto main_function = reinterpret_cast<MainFunction>(dlsym(handle, "main"));
    if (!main_function) {
        std::fprintf(stderr, "molt: error: %s: has no main: a version is a whole program\n", path);
        return 2;
    }
    adopt_shared_object(path, handle);
    ProcessArguments &arguments = process_arguments();
    arguments.argc = argc;
    arguments.argv = argv;
    return main_function(argc, argv, arguments.envp);
}
