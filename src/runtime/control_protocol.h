// The control protocol between the `molt` tool and a process that runs the Molt runtime.
//
// Version 1.
//
// Transport. Each process listens on a Unix stream socket in the abstract namespace named
// "molt.<pid>" (no file: it disappears with the process). A connection is accepted only from the
// process's own user or root, checked with SO_PEERCRED; anyone else gets one error line and the
// connection is closed.
//
// Messages. One request per connection: a single line of JSON, at most 64 KiB, ending in "\n":
//     {"protocol": 1, "command": "status", "heap": false}
//     {"protocol": 1, "command": "update", "path": "/abs/path/v2.so", "timeout_ms": 5000,
//      "keep_old_state": false, "verify": false, "start_by_ms": 1795000000000}
//     {"protocol": 1, "command": "cancel", "id": 3}
// ("heap", "timeout_ms", "keep_old_state", "verify", "start_by_ms" and "id" may be left out:
// false, 5000, false, false, no deadline and whichever update runs. "heap": true asks the allocator for its count of the bytes
// in use, which glibc takes under its arenas' locks, stalling the program's allocations for a
// while. "start_by_ms", wall-clock milliseconds since the epoch: an update read after it is not
// started, since its client has given up waiting, as it does when the process is stopped.)
// The process answers with lines of JSON. For "update", first {"event": "accepted", "id": 3}
// as soon as the update has begun (it holds the process's update lock, and a "cancel" reaches it
// from then on; 3: its number, the process's updates counted from 1),
// then zero or more progress lines, one per phase that ended:
//     {"event": "phase", "phase": "quiesce", "ms": 0.41, "detail": "5 threads parked"}
// and always one last line:
//     {"event": "result", "ok": true|false, "error": "...", "report": {...}}
// "status" answers with the last line only, its "status" member holding the version, the update
// history (each report with its "id", the number "accepted" gave it), the threads, the resident memory ("memory") and, when asked, the heap in use ("heap";
// a runtime before the tenth session sent "heap" always, and no "memory"), and while an update
// runs, "update": {"id", "to", "phase", "started_at_ms", "elapsed_ms", "phase_elapsed_ms",
// "cancel_requested"}. "cancel" asks the running update to stop (running_update.h), or only the
// one numbered "id" (a client cancelling its own must not stop another client's), and answers
// {"event": "result", "ok": true, "cancel": "cancelling"|"too_late"|"nothing_running", "phase": ...,
// "id": the update's number, but for nothing_running}: a cancelled update then ends with a failed
// result, "cancelled in <phase>", its report in the history under that "id". A request that is not
// valid JSON, is too long, names another protocol version or an unknown command gets
// {"event": "result", "ok": false, "error": "..."}.
//
// A client that disconnects in the middle of an update does not stop it (only "cancel" does): the
// update runs to its end (committed or not), and its outcome is kept in the history that "status"
// shows.
#pragma once

#include <cstddef>
#include <string>
#include <sys/types.h>

namespace molt::runtime {

inline constexpr int control_protocol_version = 1;
inline constexpr std::size_t max_request_bytes = 64 * 1024;

// "molt.<pid>": the abstract socket name of a process (without the leading NUL).
inline std::string control_socket_name(pid_t pid) { return "molt." + std::to_string(pid); }

// Starts the listener thread (from the runtime's constructor).
void start_control_socket();

}  // namespace molt::runtime
