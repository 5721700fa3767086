// The tool's side of the control protocol (src/runtime/control_protocol.h).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "result.h"

namespace molt::cli {

// Sends one request to process `pid` and calls `on_line` for each JSON line of the answer;
// returns the last line (the result). Errors say what to do: no such process, no runtime in it,
// permission. The first line must come within `first_answer` (a stopped process, SIGSTOP or a
// debugger, accepts the connection in the kernel and never reads it); later ones may take as
// long as the work they report. While it waits, `on_wait` is called at least every 0.2 s and
// after each signal that interrupts the wait (a Ctrl-C, say).
Result<nlohmann::json> control_request(pid_t pid, const nlohmann::json &request,
                                       const std::function<void(const nlohmann::json &)> &on_line = {},
                                       std::chrono::milliseconds first_answer = std::chrono::seconds(10),
                                       const std::function<void()> &on_wait = {});

// Whether process `pid` listens on a Molt control socket (from /proc/net/unix).
bool has_control_socket(pid_t pid);

}  // namespace molt::cli
