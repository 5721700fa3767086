// A transformer is the programmer's code, run during the pause. If it crashes (SIGSEGV, SIGBUS,
// SIGFPE, SIGILL, abort()), the update must fail and the old version go on, not the process die:
// every transformer call goes through call_transformer, which the runtime's crash handler can
// jump back to (escape_transformer_crash). Nothing of the old version was written, so nothing
// is lost; a lock the transformer held when it crashed (malloc's, say) stays held, which the
// report says.
#pragma once

#include <optional>
#include <string>

namespace molt::transform {

using TransformerFunction = const char *(*)(void *to, const void *from);

// Runs `function(to, from)` and returns its answer; when it crashes, returns null and sets
// `crash_signal` to the signal's number (0 otherwise).
const char *call_transformer(TransformerFunction function, void *to, const void *from, int &crash_signal);

// Runs a transformer through call_transformer and says how it failed, if it did: "transformer
// failed: <its message>" or "transformer crashed with SEGV (...)". nullopt: it succeeded.
std::optional<std::string> transformer_failure(TransformerFunction function, void *to, const void *from);
// The same words for what call_transformer answered (a message, or a crash's signal), when it
// failed: for callers that call it themselves, a million times, and spell out only failures.
std::string describe_transformer_failure(const char *message, int crash_signal);

// From a crash handler: when this thread is inside call_transformer, jumps back to it (and does
// not return). Async-signal-safe.
void escape_transformer_crash(int signal);

// For a thread the rollback takes back to its old frames from wherever it was, a transformer
// perhaps (a MOLT_LOCAL's, in the restart): it is in none any more. Async-signal-safe.
void abandon_transformer_calls();

}  // namespace molt::transform
