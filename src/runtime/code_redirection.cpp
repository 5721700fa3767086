// Entry jumps (x86-64) and signal handlers moved to the new version.
#include "code_redirection.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <set>

namespace molt::runtime {
namespace {

// The jump to write at an old function's entry: `jmp rel32` (5 bytes) when the new function is
// within 2 GiB, else `movabs r11, target; jmp r11` (13 bytes; r11 is scratch in the SysV ABI and
// never carries an argument, unlike rax which holds the vector count of variadic calls).
std::vector<unsigned char> entry_jump(std::uintptr_t from, std::uintptr_t to)
{
    std::int64_t distance = static_cast<std::int64_t>(to) - static_cast<std::int64_t>(from + 5);
    if (distance >= INT32_MIN && distance <= INT32_MAX) {
        auto relative = static_cast<std::int32_t>(distance);
        std::vector<unsigned char> code{0xe9, 0, 0, 0, 0};
        std::memcpy(&code[1], &relative, 4);
        return code;
    }
    std::vector<unsigned char> code{0x49, 0xbb, 0, 0, 0, 0, 0, 0, 0, 0, 0x41, 0xff, 0xe3};
    std::memcpy(&code[2], &to, 8);
    return code;
}

}  // namespace

RedirectionReport redirect_old_code(const std::map<std::uintptr_t, std::uintptr_t> &remap,
                                    const std::map<std::uintptr_t, std::uint64_t> &sizes, int wake_signal)
{
    RedirectionReport report;
#if defined(__x86_64__)
    std::uintptr_t page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
    // Pages first: each made writable once (and executable all along, so that a thread running
    // elsewhere on the page never faults), then restored.
    std::set<std::uintptr_t> pages;
    std::vector<std::pair<std::uintptr_t, std::vector<unsigned char>>> jumps;
    for (const auto &[from, to] : remap) {
        auto size = sizes.find(from);
        if (from == to || size == sizes.end())
            continue;
        std::vector<unsigned char> code = entry_jump(from, to);
        if (size->second < code.size())
            continue;  // too small to hold the jump (a few-byte function): left as it is
        for (std::uintptr_t at = from & ~(page - 1); at < from + code.size(); at += page)
            pages.insert(at);
        jumps.emplace_back(from, std::move(code));
    }
    std::set<std::uintptr_t> writable;
    for (std::uintptr_t at : pages) {
        if (mprotect(reinterpret_cast<void *>(at), page, PROT_READ | PROT_WRITE | PROT_EXEC) == 0)
            writable.insert(at);
    }
    if (writable.size() != pages.size())
        report.warnings.push_back(std::to_string(pages.size() - writable.size()) +
                                  " pages of old code could not be made writable: their functions are not redirected");
    for (const auto &[from, code] : jumps) {
        bool can_write = true;
        for (std::uintptr_t at = from & ~(page - 1); at < from + code.size(); at += page)
            can_write &= writable.count(at) > 0;
        if (!can_write)
            continue;
        std::memcpy(reinterpret_cast<void *>(from), code.data(), code.size());
        ++report.functions_redirected;
    }
    for (std::uintptr_t at : writable)
        mprotect(reinterpret_cast<void *>(at), page, PROT_READ | PROT_EXEC);
#else
    report.warnings.push_back("old functions are not redirected on this architecture");
#endif
    for (int number = 1; number < NSIG; ++number) {
        if (number == wake_signal || number == SIGKILL || number == SIGSTOP)
            continue;
        struct sigaction current {};
        if (sigaction(number, nullptr, &current) != 0)
            continue;
        auto handler = reinterpret_cast<std::uintptr_t>(current.sa_flags & SA_SIGINFO
                                                            ? reinterpret_cast<void *>(current.sa_sigaction)
                                                            : reinterpret_cast<void *>(current.sa_handler));
        auto moved = remap.find(handler);
        if (moved == remap.end())
            continue;  // SIG_DFL, SIG_IGN, or not a function of the old version
        if (current.sa_flags & SA_SIGINFO)
            current.sa_sigaction = reinterpret_cast<void (*)(int, siginfo_t *, void *)>(moved->second);
        else
            current.sa_handler = reinterpret_cast<void (*)(int)>(moved->second);
        if (sigaction(number, &current, nullptr) == 0)
            ++report.signal_handlers_moved;
    }
    return report;
}

}  // namespace molt::runtime
