// The tool's side of the control protocol (src/runtime/control_protocol.h).
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "result.h"

namespace molt::cli {

// Sends one request to process `pid` and calls `on_line` for each JSON line of the answer;
// returns the last line (the result). Errors say what to do: no such process, no runtime in it,
// permission.
Result<nlohmann::json> control_request(pid_t pid, const nlohmann::json &request,
                                       const std::function<void(const nlohmann::json &)> &on_line = {});

// Whether process `pid` listens on a Molt control socket (from /proc/net/unix).
bool has_control_socket(pid_t pid);

}  // namespace molt::cli
