// Real processes for the runtime tests: start a fixture, wait for its ready file, look at its
// threads, fds and mappings in /proc, run the molt tool against it, and always kill it at the end.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace molt::testing {

// Whether the tests run in a sanitizer build. There the fixtures start with libmolt preloaded
// ahead of the sanitizers, and AddressSanitizer's allocator keeps freed memory in quarantine and
// maps regions of its own: RSS and mapping counts say nothing about leaks.
#if defined(MOLT_SANITIZER_PRELOAD)
constexpr bool under_sanitizers = true;
#else
constexpr bool under_sanitizers = false;
#endif

// What a process is: a program linked with the runtime, or a plain one (no preload).
enum class Program { with_runtime, plain };

class LiveProcess {
public:
    // Starts `argv` with stdout and stderr into files of the scratch directory.
    explicit LiveProcess(const std::vector<std::string> &argv, Program program = Program::with_runtime);
    ~LiveProcess();
    LiveProcess(const LiveProcess &) = delete;
    LiveProcess &operator=(const LiveProcess &) = delete;

    pid_t pid() const { return m_pid; }
    bool alive() const;
    int threads() const;            // entries of /proc/PID/task
    int open_fds() const;           // entries of /proc/PID/fd
    int stack_mappings() const;     // anonymous read-write mappings of exactly 8 MiB: thread stacks
    std::string fd_target(int fd) const;  // readlink of /proc/PID/fd/FD ("socket:[inode]")

private:
    pid_t m_pid = -1;
};

struct ToolResult {
    int status = -1;
    std::string out, err;
};

// Runs build/bin/molt with `arguments` (each shell-quoted).
ToolResult molt_tool(const std::vector<std::string> &arguments);

// build/bin/molt with `arguments`, started in the background: it can be signalled while it runs,
// as a user's Ctrl-C would, and its outcome waited for. Killed at the end if it still runs.
class BackgroundTool {
public:
    explicit BackgroundTool(const std::vector<std::string> &arguments);
    ~BackgroundTool();
    BackgroundTool(const BackgroundTool &) = delete;
    BackgroundTool &operator=(const BackgroundTool &) = delete;

    pid_t pid() const { return m_pid; }
    // Its exit status and output once it has ended, within `timeout`; status -1 if it still runs,
    // 128 + N if signal N ended it (as a shell tells it).
    ToolResult wait(std::chrono::milliseconds timeout);
    std::string errors() const;  // what it printed on stderr so far

private:
    pid_t m_pid = -1;
    std::string m_base;  // its stdout and stderr go to m_base.out and m_base.err
};

// Polls `condition` every 5 ms until it holds or `timeout` passes.
bool wait_until(const std::function<bool()> &condition, std::chrono::milliseconds timeout = std::chrono::seconds(10));

std::vector<std::string> read_lines(const std::string &path);
std::vector<std::string> split_lines(const std::string &text);

// What a shell command puts before a program linked with the runtime ("env LD_PRELOAD=... "):
// empty except in a sanitizer build.
std::string runtime_environment();

// Flags to compile a fixture against the runtime of this build.
std::string runtime_flags();
std::string shared_object_flags();  // -fPIC -shared -Wl,-Bsymbolic + runtime_flags()

}  // namespace molt::testing
