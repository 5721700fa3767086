// After a commit, no old code may run again, even through pointers Molt cannot see (callbacks
// kept by libraries, signal handlers, function pointers hidden in void *): each old function that
// has a counterpart in the new version jumps to it from its first instruction, and signal
// handlers of the old version are registered anew with the new version's functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace molt::runtime {

struct RedirectionReport {
    std::size_t functions_redirected = 0;
    std::size_t signal_handlers_moved = 0;
    std::vector<std::string> warnings;
};

// `remap`: old function entry (run-time address) -> new function entry; `sizes`: each old
// function's size in bytes (a jump is written only where it fits). `wake_signal` is left alone.
RedirectionReport redirect_old_code(const std::map<std::uintptr_t, std::uintptr_t> &remap,
                                    const std::map<std::uintptr_t, std::uint64_t> &sizes, int wake_signal);

}  // namespace molt::runtime
