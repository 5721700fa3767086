// Process handling for the runtime tests.
#include "live_process.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "fixture_build.h"

extern char **environ;

namespace molt::testing {
namespace {

int count_entries(const std::string &directory)
{
    DIR *listing = opendir(directory.c_str());
    if (!listing)
        return -1;
    int count = 0;
    while (dirent *entry = readdir(listing))
        count += entry->d_name[0] != '.';
    closedir(listing);
    return count;
}

std::string quote(const std::string &text)
{
    std::string quoted = "'";
    for (char c : text)
        quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return quoted + "'";
}

// In a sanitizer build libmolt is preloaded ahead of the sanitizers: its pthread_create and
// malloc must come first, and call theirs (tests/CMakeLists.txt sets both variables).
// ASAN_OPTIONS that the test run has (log_path=..., say) follow, and win.
std::vector<std::string> make_sanitizer_variables()
{
#if defined(MOLT_SANITIZER_PRELOAD)
    const char *options = std::getenv("ASAN_OPTIONS");
    return {"LD_PRELOAD=" MOLT_SANITIZER_PRELOAD,
            std::string("ASAN_OPTIONS=" MOLT_SANITIZER_OPTIONS) + (options ? std::string(":") + options : "")};
#else
    return {};
#endif
}
const std::vector<std::string> sanitizer_variables = make_sanitizer_variables();

// The environment a process starts with: the test's own, and for a program linked with the
// runtime the sanitizer variables instead of the test's own LD_PRELOAD and ASAN_OPTIONS.
std::vector<char *> process_environment(Program program)
{
    std::vector<char *> environment;
    bool replaced = program == Program::with_runtime && !sanitizer_variables.empty();
    if (replaced)
        for (const std::string &variable : sanitizer_variables)
            environment.push_back(const_cast<char *>(variable.c_str()));
    for (char **variable = environ; *variable; ++variable) {
        std::string_view entry(*variable);
        if (replaced && (entry.starts_with("LD_PRELOAD=") || entry.starts_with("ASAN_OPTIONS=")))
            continue;  // ours stand for them (ld.so would take the last LD_PRELOAD)
        environment.push_back(*variable);
    }
    environment.push_back(nullptr);
    return environment;
}

// Starts `argv` with `environment`, its stdout appended to `out` and its stderr to `err` (the
// same file or not); its pid, or -1. fork and exec (not posix_spawn) so that the process dies
// with the test process, even one killed or interrupted: a leftover fixture would go on using a
// core for nothing.
pid_t spawn(const std::vector<std::string> &argv, std::vector<char *> environment, const std::string &out,
            const std::string &err)
{
    std::vector<char *> arguments;
    for (const std::string &argument : argv)
        arguments.push_back(const_cast<char *>(argument.c_str()));
    arguments.push_back(nullptr);
    pid_t parent = getpid();
    pid_t child = fork();
    if (child == 0) {  // only async-signal-safe calls until exec
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);  // the test died before the line above
        int out_fd = open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        int err_fd = err == out ? out_fd : open(err.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (out_fd < 0 || err_fd < 0)
            _exit(127);
        dup2(out_fd, 1);
        dup2(err_fd, 2);
        close(out_fd);
        if (err_fd != out_fd)
            close(err_fd);
        execve(arguments[0], arguments.data(), environment.data());
        _exit(127);
    }
    return child > 0 ? child : -1;
}

}  // namespace

LiveProcess::LiveProcess(const std::vector<std::string> &argv, Program program)
{
    std::string output = scratch_directory() + "/process-output-" + std::to_string(getpid());
    m_pid = spawn(argv, process_environment(program), output, output);
}

LiveProcess::~LiveProcess()
{
    if (m_pid > 0) {
        kill(m_pid, SIGKILL);
        waitpid(m_pid, nullptr, 0);
    }
}

bool LiveProcess::alive() const
{
    if (m_pid <= 0)
        return false;
    int status = 0;
    return waitpid(m_pid, &status, WNOHANG) == 0;
}

int LiveProcess::threads() const { return count_entries("/proc/" + std::to_string(m_pid) + "/task"); }
int LiveProcess::open_fds() const { return count_entries("/proc/" + std::to_string(m_pid) + "/fd"); }

int LiveProcess::stack_mappings() const
{
    std::ifstream maps("/proc/" + std::to_string(m_pid) + "/maps");
    std::string line;
    int count = 0;
    while (std::getline(maps, line)) {
        std::istringstream fields(line);
        std::string range, permissions, offset, device, inode, path;
        fields >> range >> permissions >> offset >> device >> inode >> path;
        std::size_t dash = range.find('-');
        std::uint64_t start = std::stoull(range.substr(0, dash), nullptr, 16);
        std::uint64_t end = std::stoull(range.substr(dash + 1), nullptr, 16);
        count += path.empty() && permissions.rfind("rw", 0) == 0 && end - start == 8ull * 1024 * 1024;
    }
    return count;
}

std::string LiveProcess::fd_target(int fd) const
{
    char target[256];
    std::string link = "/proc/" + std::to_string(m_pid) + "/fd/" + std::to_string(fd);
    ssize_t length = readlink(link.c_str(), target, sizeof target - 1);
    return length > 0 ? std::string(target, static_cast<std::size_t>(length)) : std::string();
}

ToolResult molt_tool(const std::vector<std::string> &arguments)
{
    static int counter = 0;
    std::string base = scratch_directory() + "/tool-" + std::to_string(++counter);
    std::string command = quote(MOLT_TOOL);
    for (const std::string &argument : arguments)
        command += " " + quote(argument);
    ToolResult result;
    run(command + " > " + base + ".out 2> " + base + ".err", &result.status);
    result.out = read_text(base + ".out");
    result.err = read_text(base + ".err");
    return result;
}

BackgroundTool::BackgroundTool(const std::vector<std::string> &arguments)
{
    static int counter = 0;
    m_base = scratch_directory() + "/background-tool-" + std::to_string(getpid()) + "-" + std::to_string(++counter);
    std::vector<std::string> argv{MOLT_TOOL};
    argv.insert(argv.end(), arguments.begin(), arguments.end());
    m_pid = spawn(argv, process_environment(Program::plain), m_base + ".out", m_base + ".err");
}

BackgroundTool::~BackgroundTool()
{
    if (m_pid > 0) {
        kill(m_pid, SIGKILL);
        waitpid(m_pid, nullptr, 0);
    }
}

ToolResult BackgroundTool::wait(std::chrono::milliseconds timeout)
{
    ToolResult result;
    int status = 0;
    bool ended = m_pid > 0 && wait_until([&] { return waitpid(m_pid, &status, WNOHANG) == m_pid; }, timeout);
    if (ended) {
        result.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        m_pid = -1;
    }
    result.out = read_text(m_base + ".out");
    result.err = read_text(m_base + ".err");
    return result;
}

std::string BackgroundTool::errors() const { return read_text(m_base + ".err"); }

bool wait_until(const std::function<bool()> &condition, std::chrono::milliseconds timeout)
{
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (condition())
            return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return condition();
}

std::vector<std::string> split_lines(const std::string &text)
{
    std::vector<std::string> lines;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line))
        lines.push_back(line);
    return lines;
}

std::vector<std::string> read_lines(const std::string &path) { return split_lines(read_text(path)); }

std::string runtime_environment()
{
    std::string prefix;
    for (const std::string &variable : sanitizer_variables)
        prefix += (prefix.empty() ? "env " : "") + quote(variable) + " ";
    return prefix;
}

std::string runtime_flags()
{
    return std::string("-I") + MOLT_SOURCE_DIR + "/include -L" + MOLT_LIBRARY_DIR + " -lmolt -Wl,-rpath," +
           MOLT_LIBRARY_DIR + " -pthread";
}

std::string shared_object_flags() { return "-fPIC -shared -Wl,-Bsymbolic " + runtime_flags(); }

}  // namespace molt::testing
