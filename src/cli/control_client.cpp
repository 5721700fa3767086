// Connecting to a process's control socket.
#include "control_client.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

namespace molt::cli {

namespace {

std::string seconds_text(std::chrono::milliseconds duration)
{
    char text[32];
    std::snprintf(text, sizeof text, "%g s", static_cast<double>(duration.count()) / 1000.0);
    return text;
}

// The process a thread id belongs to (its Tgid), or 0 when unknown.
pid_t thread_group_of(pid_t tid)
{
    std::ifstream status("/proc/" + std::to_string(tid) + "/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("Tgid:", 0) == 0)
            return static_cast<pid_t>(std::strtol(line.c_str() + 5, nullptr, 10));
    return 0;
}

}  // namespace

bool has_control_socket(pid_t pid)
{
    std::ifstream table("/proc/net/unix");
    std::string line, wanted = "@molt." + std::to_string(pid);
    while (std::getline(table, line))
        if (line.size() >= wanted.size() && line.compare(line.size() - wanted.size(), wanted.size(), wanted) == 0)
            return true;
    return false;
}

Result<nlohmann::json> control_request(pid_t pid, const nlohmann::json &request,
                                       const std::function<void(const nlohmann::json &)> &on_line,
                                       std::chrono::milliseconds first_answer, const std::function<void()> &on_wait)
{
    std::string who = "process " + std::to_string(pid);
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return Error{who, "no such process"};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return Error{who, std::string("cannot make a socket: ") + std::strerror(errno)};
    struct Closer {
        int fd;
        ~Closer() { close(fd); }
    } closer{fd};
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::string name = "molt." + std::to_string(pid);
    std::memcpy(address.sun_path + 1, name.data(), name.size());
    socklen_t length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    if (connect(fd, reinterpret_cast<sockaddr *>(&address), length) != 0) {
        if (pid_t process = thread_group_of(pid); process > 0 && process != pid)
            return Error{who, "is a thread of process " + std::to_string(process) + ": give that PID"};
        return Error{who, "does not run the Molt runtime (no control socket): link it with -lmolt, or start it with `molt run`"};
    }
    std::string line = request.dump() + "\n";
    if (send(fd, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size()))
        return Error{who, std::string("cannot send the request: ") + std::strerror(errno)};
    std::string buffer;
    nlohmann::json last;
    char chunk[4096];
    bool answered = false;
    auto give_up_at = std::chrono::steady_clock::now() + first_answer;
    for (;;) {
        std::size_t newline;
        while ((newline = buffer.find('\n')) != std::string::npos) {
            nlohmann::json message = nlohmann::json::parse(buffer.substr(0, newline), nullptr, false);
            buffer.erase(0, newline + 1);
            if (message.is_discarded())
                return Error{who, "sent a malformed answer"};
            if (on_line)
                on_line(message);
            last = message;
            if (message.value("event", "") == "result")
                return last;
        }
        // Waits in slices, so that on_wait sees a signal's flag soon even when the signal came
        // just before the wait began.
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(give_up_at - std::chrono::steady_clock::now());
        if (!answered && left.count() <= 0)
            return Error{who, "did not answer within " + seconds_text(first_answer) +
                                  ": it may be stopped (SIGSTOP, a debugger) or starved of CPU; nothing was done"};
        pollfd wait{fd, POLLIN, 0};
        int slice = on_wait ? 200 : -1;
        if (!answered)
            slice = static_cast<int>(slice < 0 ? left.count() : std::min<long>(slice, left.count()));
        int ready = poll(&wait, 1, slice);
        if (ready <= 0) {
            if (ready < 0 && errno != EINTR)
                return Error{who, std::string("cannot wait for the answer: ") + std::strerror(errno)};
            if (on_wait)
                on_wait();
            continue;
        }
        ssize_t got = recv(fd, chunk, sizeof chunk, 0);
        if (got < 0 && errno == EINTR)
            continue;
        answered = true;
        if (got <= 0)
            return Error{who, "closed the control connection without a result (did it exit?)"};
        buffer.append(chunk, static_cast<std::size_t>(got));
    }
}

}  // namespace molt::cli
