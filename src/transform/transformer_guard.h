// A transformer is the programmer's code, run during the pause. If it crashes (SIGSEGV, SIGBUS,
// SIGFPE, SIGILL, abort()), the update must fail and the old version go on, not the process die:
// every transformer call goes through call_transformer, which the runtime's crash handler can
// jump back to (escape_transformer_crash). Nothing of the old version was written, so nothing
// is lost; a lock the transformer held when it crashed (malloc's, say) stays held, which the
// report says.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

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

// ---- a transformer that does not return --------------------------------------------------
// A transformer that loops or blocks would hold every thread of the program parked for ever. The
// runtime's watchdog samples the calls in progress (each thread that runs transformers counts its
// calls), and a call that stays in progress longer than the limit is expired: its thread is then
// signalled, and the signal's handler jumps back out of it (escape_hung_transformer), as from a
// crash. The call fails ("did not return within ..."), and with it the update.

// The crash_signal call_transformer reports for a call abandoned this way.
inline constexpr int transformer_hung = -1;

struct TransformerCall {
    pid_t tid = 0;
    std::uint64_t call = 0;  // which of that thread's calls
};

// Whether the watchdog watches now (the transform phase): only then does a thread take a slot.
// A program thread that runs a MOLT_LOCAL's transformer in the restart (which has its own
// deadline) takes none, so that the slots stay free for the update's own threads.
void watch_transformer_calls(bool on);

constexpr int max_watched_calls = 32;

// The transformer calls in progress now, one per thread inside one, into `calls`; how many.
// Allocates nothing: the watchdog samples in the pause, perhaps while a transformer it gave up
// on left the allocator locked.
int transformer_calls_in_progress(TransformerCall (&calls)[max_watched_calls]);

// Marks `call` as expired after `limit_ms`: if it is still in progress, the next
// escape_hung_transformer on its thread leaves it.
void expire_transformer_call(const TransformerCall &call, long limit_ms);

// From a signal handler (the runtime's wake signal): when this thread is inside an expired
// transformer call, jumps back out of it (does not return). Not from inside malloc or free (the
// allocator's lock would stay held, and the update's next allocation wait for ever): it returns,
// and the watchdog's next signal lands elsewhere. Async-signal-safe.
void escape_hung_transformer(int signal);

}  // namespace molt::transform
