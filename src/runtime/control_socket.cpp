// The control socket: a listener thread, one handler thread per connection, the protocol of
// control_protocol.h.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>

#include "control_protocol.h"
#include "heap_tracking.h"
#include "running_update.h"
#include "stacks.h"
#include "threads.h"
#include "transaction.h"
#include "versions.h"

namespace molt::runtime {
namespace {

using nlohmann::json;

bool send_line(int fd, const json &message)
{
    std::string line = message.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    std::size_t sent = 0;
    while (sent < line.size()) {
        ssize_t wrote = send(fd, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
        if (wrote < 0 && errno == EINTR)
            continue;
        if (wrote <= 0)
            return false;  // the client left: the work goes on, the history keeps the outcome
        sent += static_cast<std::size_t>(wrote);
    }
    return true;
}

json failure(const std::string &error) { return {{"event", "result"}, {"ok", false}, {"error", error}}; }

json report_json(const UpdateReport &report)
{
    json warnings = report.warnings, stragglers = report.stragglers;
    return {{"id", report.id},
            {"ok", report.ok},
            {"phase", report.phase},
            {"error", report.error},
            {"from", report.from_path},
            {"to", report.to_path},
            {"to_build_id", report.to_build_id},
            {"started_at_ms", report.started_at_ms},
            {"prepare_ms", report.times.prepare_ms},
            {"quiesce_ms", report.times.quiesce_ms},
            {"transform_ms", report.times.transform_ms},
            {"restart_ms", report.times.restart_ms},
            {"commit_ms", report.times.commit_ms},
            {"verify_ms", report.times.verify_ms},
            {"pause_ms", report.pause_ms},
            {"threads", report.threads},
            {"variables_copied", report.variables_copied},
            {"variables_converted", report.variables_converted},
            {"variables_new", report.variables_new},
            {"variables_dropped", report.variables_dropped},
            {"locals_carried", report.locals_carried},
            {"heap_objects_converted", report.heap_objects_converted},
            {"heap_bytes_converted", report.heap_bytes_converted},
            {"copy_bytes_prepared", report.copy_bytes_prepared},
            {"heap_discovery_ms", report.heap_discovery_ms},
            {"heap_conversion_ms", report.heap_conversion_ms},
            {"old_blocks_freed", report.old_blocks_freed},
            {"old_bytes_freed", report.old_bytes_freed},
            {"old_blocks_kept", report.old_blocks_kept},
            {"old_variable_bytes_released", report.old_variable_bytes_released},
            {"stale_pointers", report.stale_pointers},
            {"functions_redirected", report.functions_redirected},
            {"variables_transformed", report.variables_transformed},
            {"signal_handlers_moved", report.signal_handlers_moved},
            {"warnings", warnings},
            {"stragglers", stragglers}};
}

const char *state_word(ThreadState state)
{
    switch (state) {
    case ThreadState::Running: return "running";
    case ThreadState::Parked: return "parked";
    case ThreadState::Switching: return "switching";
    case ThreadState::Restarting: return "restarting";
    case ThreadState::Arrived: return "arrived";
    }
    return "?";
}

// The process's status. The allocator's count of the heap in use only when asked (`heap`): glibc
// takes it by walking every free chunk under each arena's lock, which stalls the program's
// allocations (for 0.17 s with a million keys after an update); the resident memory is the
// kernel's figure and costs nothing to the program.
json status_json(bool heap)
{
    Version &version = current_version();
    if (!version.schema)
        (void)version.load_schema();  // names for the thread list; outside any pause
    json threads = json::array();
    registry().for_each([&](ThreadRecord &thread) {
        const char *last = thread.last_point.load();
        threads.push_back({{"tid", thread.tid},
                           {"start", start_routine_name(thread)},
                           {"state", state_word(thread.current_state())},
                           {"last_update_point", last ? last : ""}});
    });
    // The running update before the history: one that ends in between is then in the history
    // (it is added before the update stops running), never in neither.
    std::optional<RunningUpdate> update = running_update();
    json history = json::array();
    for (const UpdateReport &report : update_history())
        history.push_back(report_json(report));
    transform::ResidentMemory memory = transform::resident_memory();
    json status = {{"pid", getpid()},
                   {"stacks", live_stacks().load()},
                   {"memory", {{"resident_bytes", memory.bytes}, {"resident_anonymous_bytes", memory.anonymous_bytes}}},
                   {"updates_attempted", updates_attempted()},
                   {"version", {{"path", version.path}, {"build_id", version.build_id}}},
                   {"threads", threads},
                   {"history", history}};
    if (update)
        status["update"] = {{"id", update->id},
                            {"to", update->to_path},
                            {"phase", update->phase},
                            {"started_at_ms", update->started_at_ms},
                            {"elapsed_ms", update->elapsed_ms},
                            {"phase_elapsed_ms", update->phase_elapsed_ms},
                            {"cancel_requested", update->cancel_requested}};
    if (heap) {
        transform::HeapUse use = transform::heap_use();
        status["heap"] = {{"bytes_in_use", use.bytes_in_use}, {"allocator", use.allocator}};
    }
    return status;
}

bool peer_allowed(int fd)
{
    ucred credentials{};
    socklen_t length = sizeof credentials;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0)
        return false;
    return credentials.uid == 0 || credentials.uid == geteuid();
}

// Reads one line (the request), at most max_request_bytes.
bool read_request(int fd, std::string &line, std::string &error)
{
    char buffer[4096];
    while (line.find('\n') == std::string::npos) {
        ssize_t got = recv(fd, buffer, sizeof buffer, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            error = "the request ended before its newline";
            return false;
        }
        line.append(buffer, static_cast<std::size_t>(got));
        if (line.size() > max_request_bytes) {
            error = "request longer than " + std::to_string(max_request_bytes) + " bytes";
            return false;
        }
    }
    line.resize(line.find('\n'));
    return true;
}

void handle(int fd)
{
    if (!peer_allowed(fd)) {
        send_line(fd, failure("permission denied: only the process's own user or root may control it"));
        return;
    }
    std::string line, error;
    if (!read_request(fd, line, error)) {
        send_line(fd, failure(error));
        return;
    }
    json request = json::parse(line, nullptr, false);
    if (request.is_discarded() || !request.is_object()) {
        send_line(fd, failure("malformed request: not a JSON object"));
        return;
    }
    if (request.value("protocol", 0) != control_protocol_version) {
        send_line(fd, failure("unsupported protocol version (this process speaks " +
                              std::to_string(control_protocol_version) + ")"));
        return;
    }
    std::string command = request.value("command", "");
    if (command == "status") {
        send_line(fd, {{"event", "result"}, {"ok", true}, {"status", status_json(request.value("heap", false))}});
        return;
    }
    if (command == "update") {
        std::string path = request.value("path", "");
        long timeout = request.value("timeout_ms", 5000L);
        if (path.empty() || path.front() != '/') {
            send_line(fd, failure("update needs an absolute \"path\""));
            return;
        }
        if (timeout <= 0 || timeout > 3600 * 1000) {
            send_line(fd, failure("\"timeout_ms\" must be between 1 and 3600000"));
            return;
        }
        // A request the process read too late (it was stopped, say) is not started: its client
        // has given up and told its user that nothing was done.
        if (long start_by = request.value("start_by_ms", 0L); start_by > 0) {
            long now = static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                             std::chrono::system_clock::now().time_since_epoch())
                                             .count());
            if (now > start_by) {
                send_line(fd, failure("the request was read " + std::to_string(now - start_by) +
                                      " ms after its deadline (was the process stopped?): not started"));
                return;
            }
        }
        UpdateOptions options;
        options.accepted = [fd](std::uint64_t id) { send_line(fd, {{"event", "accepted"}, {"id", id}}); };
        options.timeout = std::chrono::milliseconds(timeout);
        options.keep_old_state = request.value("keep_old_state", false);
        options.verify = request.value("verify", false);
        UpdateReport report = update_to(path, options,
                                        [fd](const std::string &phase, double ms, const std::string &detail) {
                                            send_line(fd, {{"event", "phase"}, {"phase", phase}, {"ms", ms}, {"detail", detail}});
                                        });
        send_line(fd, {{"event", "result"}, {"ok", report.ok}, {"error", report.error}, {"report", report_json(report)}});
        return;
    }
    if (command == "cancel") {
        std::optional<std::uint64_t> id;
        if (request.contains("id")) {
            if (!request["id"].is_number_unsigned()) {
                send_line(fd, failure("\"id\" must be an update's number (the \"id\" of its \"accepted\")"));
                return;
            }
            id = request["id"].get<std::uint64_t>();
        }
        std::string phase;
        std::uint64_t running = 0;
        CancelAnswer answer = request_cancel(phase, running, id);
        const char *word = answer == CancelAnswer::cancelling ? "cancelling"
                           : answer == CancelAnswer::too_late ? "too_late"
                                                              : "nothing_running";
        json result = {{"event", "result"}, {"ok", true}, {"cancel", word}, {"phase", phase}};
        if (answer != CancelAnswer::nothing_running)
            result["id"] = running;  // the update's number: its report in the history carries it
        send_line(fd, result);
        return;
    }
    send_line(fd, failure("unknown command \"" + command + "\" (commands: status, update, cancel)"));
}

void *connection_thread(void *argument)
{
    int fd = static_cast<int>(reinterpret_cast<std::intptr_t>(argument));
    timeval receive_timeout{10, 0};  // a silent client does not hold a thread forever
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &receive_timeout, sizeof receive_timeout);
    try {
        handle(fd);
    } catch (const std::exception &exception) {  // a value of the wrong JSON type, say: never fatal
        send_line(fd, failure(std::string("malformed request: ") + exception.what()));
    }
    close(fd);
    return nullptr;
}

void *listener_thread(void *argument)
{
    int listener = static_cast<int>(reinterpret_cast<std::intptr_t>(argument));
    for (;;) {
        int fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE || errno == ENOMEM) {
                if (errno != EINTR && errno != ECONNABORTED)
                    usleep(10000);
                continue;
            }
            return nullptr;
        }
        pthread_t thread;
        if (create_internal_thread(&thread, connection_thread, reinterpret_cast<void *>(static_cast<std::intptr_t>(fd))) != 0)
            close(fd);
    }
}

}  // namespace

void start_control_socket()
{
    int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener < 0)
        return;
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::string name = control_socket_name(getpid());
    std::memcpy(address.sun_path + 1, name.data(), name.size());  // abstract: leading NUL
    socklen_t length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    if (bind(listener, reinterpret_cast<sockaddr *>(&address), length) != 0 || listen(listener, 16) != 0) {
        close(listener);
        return;
    }
    pthread_t thread;
    if (create_internal_thread(&thread, listener_thread, reinterpret_cast<void *>(static_cast<std::intptr_t>(listener))) != 0)
        close(listener);
}

}  // namespace molt::runtime
