// The update transaction. The coordinator (a control-socket thread) drives the phases; each
// application thread does its own part inside molt_update_point_slow (update_point.cpp).
#include "transaction.h"

#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <signal.h>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <set>

#include "code_redirection.h"
#include "diff.h"
#include "gate.h"
#include "molt/molt.h"
#include "running_update.h"
#include "schema_cache.h"
#include "heap_conversion.h"
#include "heap_tracking.h"
#include "stale_pointers.h"
#include "transformer_guard.h"
#include "transformer_watchdog.h"
#include "value_conversion.h"
#include "versions.h"

namespace molt::runtime {
namespace {

using Clock = std::chrono::steady_clock;

double milliseconds(Clock::time_point from, Clock::time_point to)
{
    return std::chrono::duration<double, std::milli>(to - from).count();
}

std::mutex &history_mutex()
{
    static std::mutex mutex;
    return mutex;
}

std::deque<UpdateReport> &history()
{
    static auto *reports = new std::deque<UpdateReport>;
    return *reports;
}

std::size_t g_attempts = 0;  // under history_mutex()

std::mutex &update_mutex()
{
    static std::mutex mutex;
    return mutex;
}

std::string format_ms(double ms)
{
    char text[32];
    std::snprintf(text, sizeof text, "%.1f", ms);
    return text;
}

std::string hex(std::uintptr_t value)
{
    char text[32];
    std::snprintf(text, sizeof text, "%#lx", static_cast<unsigned long>(value));
    return text;
}

// A global or static carried from the old version to the new one.
struct Migration {
    const schema::Variable *from = nullptr;
    const schema::Variable *to = nullptr;
    bool identical = false;
    bool transformer_only = false;  // no default conversion: the variable transformer does it all
    bool zero_already = false;  // the new variable held only zeros in prepare: the transform need not zero it
};

// Stands for a transformer while planning, before the new version is loaded.
const char *planned_transformer(void *, const void *) { return nullptr; }

// Fault injection (../shared/STYLE.md): MOLT_FAULT=<point> in the process's environment makes the
// first update that reaches that named point fail there, as a real failure would. Each point is
// one where everything so far must roll back; tests re-run updates under every point and check
// that the old version kept its state. Fires once, so that the next update can succeed; with
// MOLT_FAULT_REPEAT=1 it fires at every update that reaches it (the leak checks repeat a failure).
// Points: prepare.loaded, quiesce.parked, transform.heap_discovered, transform.out_of_memory
// (Molt's own allocation fails: std::bad_alloc), transform.globals (half the
// globals written), restart.stacks (just before any thread moves). And one that fails nothing:
// transform.no_helper_thread (no second thread can be made: the pause's halves run one after the
// other on the update's thread).

// Whether MOLT_FAULT names `point` (alone, or followed by ":argument") and has not fired yet in
// this process (or MOLT_FAULT_REPEAT=1); then what follows the point's name.
std::optional<std::string_view> fault_fires(std::string_view point)
{
    static std::atomic<bool> fired{false};
    static const bool repeat = std::getenv("MOLT_FAULT_REPEAT") && std::string_view(std::getenv("MOLT_FAULT_REPEAT")) == "1";
    const char *chosen = std::getenv("MOLT_FAULT");
    if (!chosen)
        return std::nullopt;
    std::string_view named(chosen);
    if (named.substr(0, point.size()) != point || (named.size() > point.size() && named[point.size()] != ':') ||
        (fired.exchange(true) && !repeat))
        return std::nullopt;
    return named.substr(point.size());
}

Result<bool> fault_point(const char *point)
{
    if (!fault_fires(point))
        return true;
    return Error{"", std::string("fault injected at ") + point + " (MOLT_FAULT)"};
}

// MOLT_FAULT=transform.allocation:N: the N-th new object of the first update's heap conversion
// cannot be allocated, as if memory had run out. 0: no such fault.
std::size_t allocation_fault()
{
    auto argument = fault_fires("transform.allocation");
    if (!argument || argument->size() < 2)
        return 0;
    return static_cast<std::size_t>(std::strtoull(std::string(argument->substr(1)).c_str(), nullptr, 10));
}

// Calls `pages(start, bytes)` for the whole pages that lie inside one writable variable of a
// version (a page shared with data no variable describes, the C library's say, is left out).
template <typename Pages>
void for_each_variable_pages(const schema::Schema &schema, std::uintptr_t bias, Pages &&pages,
                             const std::function<bool(const schema::Variable &)> &skip = {})
{
    static const std::uintptr_t page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
    for (const schema::Variable &variable : schema.variables) {
        if (variable.read_only || variable.thread_local_storage || variable.size < page || (skip && skip(variable)))
            continue;
        std::uintptr_t start = (bias + variable.address + page - 1) & ~(page - 1);
        std::uintptr_t end = (bias + variable.address + variable.size) & ~(page - 1);
        if (end > start)
            pages(start, end - start);
    }
}

// The old version's big variables go back to the system after the commit (a private mapping
// reads as zeros, or as the file's bytes, afterwards), but those something still points into.
std::size_t release_variable_pages(const schema::Schema &schema, std::uintptr_t bias,
                                   const std::function<bool(const schema::Variable &)> &kept)
{
    std::size_t released = 0;
    for_each_variable_pages(
        schema, bias,
        [&](std::uintptr_t start, std::size_t bytes) {
            if (madvise(reinterpret_cast<void *>(start), bytes, MADV_DONTNEED) == 0)
                released += bytes;
        },
        kept);
    return released;
}

// [start, start + bytes) given its pages now (page-aligned), for writing or for reading: writing
// each page's first byte back to itself, or reading it, changes nothing.
void populate_pages(std::uintptr_t start, std::size_t bytes, bool for_writing)
{
    static const std::uintptr_t page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
#if defined(MADV_POPULATE_WRITE) && defined(MADV_POPULATE_READ)
    if (madvise(reinterpret_cast<void *>(start), bytes, for_writing ? MADV_POPULATE_WRITE : MADV_POPULATE_READ) == 0)
        return;
#endif
    for (std::uintptr_t at = start; at < start + bytes; at += page) {
        auto *byte = reinterpret_cast<volatile unsigned char *>(at);
        if (for_writing)
            *byte = *byte;
        else
            (void)*byte;
    }
}

// A version's big variables get their pages before the pause, not inside it. The new version's
// for writing: a fresh copy of a version has never touched its .bss (a server's table of 65,536
// connections is 128 page faults at its first write). The old version's for reading: they are
// copied in the pause, and the pages the program never touched (most of that table) fault on
// their first read, a few hundred microseconds for 512 KiB on a virtual machine.
void populate_variable_pages(const schema::Schema &schema, std::uintptr_t bias, bool for_writing)
{
    for_each_variable_pages(schema, bias, [for_writing](std::uintptr_t start, std::size_t bytes) {
        populate_pages(start, bytes, for_writing);
    });
}

// A new thread starts on its creator's core, and the scheduler may leave it there for some
// milliseconds before it moves it to an idle one: the two halves then take turns on one core
// (kvd, 100,000 keys: each half of the conversion took 10 ms instead of 6, about one run in
// five). The helper leaves the caller's core before each piece of work (`cores`: those the
// process may use).
void leave_core(int core, cpu_set_t cores)
{
    if (core < 0 || !CPU_ISSET(core, &cores) || sched_getcpu() != core)
        return;  // (a system call that moves no thread still costs tens of microseconds on a VM)
    CPU_CLR(core, &cores);
    if (CPU_COUNT(&cores) > 0)
        sched_setaffinity(0, sizeof cores, &cores);
}

// Waits until `ticket` is no longer `seen`: looking for 50 µs first, with the processor's pause
// between looks, then asleep. The pause hands the helper a piece of work five or six times, and
// woken from its sleep, a thread took 10 to 30 µs to start here (a virtual machine's idle core):
// kvd v1 -> v2 with 10,000 keys, its transform 1.40 -> 1.29 and 1.62 -> 1.54 ms (medians of 10
// and 12 runs alternated). (A longer spin, tried before, measured no faster and slowed the
// pause's serial work on a core's other hardware thread; this one sleeps after 50 µs.)
void wait_for_ticket(const std::atomic<unsigned> &ticket, unsigned seen)
{
    auto until = Clock::now() + std::chrono::microseconds(50);
    for (unsigned spins = 0; ticket.load(std::memory_order_acquire) == seen; ++spins) {
#if defined(__x86_64__)
        __builtin_ia32_pause();
#endif
        if (spins % 64 == 63 && Clock::now() > until)
            break;
    }
    while (ticket.load(std::memory_order_acquire) == seen)
        ticket.wait(seen, std::memory_order_acquire);
}

// The next ticket, and a wake for the thread that may sleep on it.
void give_ticket(std::atomic<unsigned> &ticket)
{
    ticket.fetch_add(1, std::memory_order_release);
    ticket.notify_one();
}

// A runtime thread that runs the second half of pieces of work while the caller runs the first,
// for the pause's work while the program's threads are parked and the cores idle: made when first
// needed (or, by start(), at the end of prepare), and kept for the next pieces. An update keeps one
// for its transform (discovery, allocation, conversion, the globals' big arrays), so that the
// pause pays a thread's start once (30 to 90 µs each on this VM), not four times; an update that converts little never makes it,
// nor one that fails in prepare (a thread made and ended leaves a cached stack and a malloc
// arena behind, not a leak, but four mappings each time). When no thread can be made, both halves
// run on the caller, one after the other.
class HelperThread {
public:
    HelperThread() = default;
    HelperThread(const HelperThread &) = delete;
    HelperThread &operator=(const HelperThread &) = delete;
    ~HelperThread()
    {
        if (!m_started)
            return;
        m_shared->work = nullptr;  // it ends (it is detached)
        give_ticket(m_shared->go);
    }

    // Runs `here` on this thread and `there` on the helper at once, and returns when both have
    // ended; the first exception of the two (memory running out) is thrown again here. Called
    // again from inside one of the halves (a big array inside a big array), it runs both halves
    // there, one after the other: the helper is busy with the outer ones.
    void run(const std::function<void()> &here, const std::function<void()> &there)
    {
        start();
        if (!m_started || m_busy.exchange(true)) {
            here();
            there();
            return;
        }
        struct Free {
            std::atomic<bool> &busy;
            ~Free() { busy.store(false); }
        } free{m_busy};
        m_shared->work = &there;
        m_shared->caller_core.store(sched_getcpu(), std::memory_order_relaxed);
        m_shared->thrown = nullptr;
        unsigned done = m_shared->done.load(std::memory_order_relaxed);
        give_ticket(m_shared->go);
        std::exception_ptr thrown;
        try {
            here();
        } catch (...) {
            thrown = std::current_exception();
        }
        wait_for_ticket(m_shared->done, done);  // `there` is done with (the helper may still be ending)
        if (!thrown)
            thrown = m_shared->thrown;
        if (thrown)
            std::rethrow_exception(thrown);
    }

    // Makes the thread now, if it was not yet, without waiting for it: when it will be needed
    // soon, its start (and its first malloc, which makes its arena) overlaps the caller's work.
    void start()
    {
        if (m_started || m_failed)
            return;
        if (fault_fires("transform.no_helper_thread")) {  // (fault injection) as if none could be made
            m_failed = true;
            return;
        }
        auto *handed = new std::shared_ptr<Shared>(m_shared);
        m_shared->caller_core.store(sched_getcpu(), std::memory_order_relaxed);  // it leaves this core at once
        pthread_t thread;
        m_started = create_internal_thread(&thread, body, handed) == 0;
        m_failed = !m_started;
        if (m_failed)
            delete handed;
    }

private:
    // Owned by both threads: the helper may still be ending after its owner has gone.
    struct Shared {
        const std::function<void()> *work = nullptr;
        std::atomic<int> caller_core{-1};
        std::exception_ptr thrown;  // by `work`: thrown again by run()
        std::atomic<unsigned> go{0}, done{0};  // a ticket each: the caller's last piece, the helper's last done
    };
    static void *body(void *argument)
    {
        std::unique_ptr<std::shared_ptr<Shared>> mine(static_cast<std::shared_ptr<Shared> *>(argument));
        Shared &shared = **mine;
        ensure_alternate_signal_stack();  // a parallel transformer may crash here too
        std::free(std::malloc(1));  // its malloc arena made now, before its first piece of work
        cpu_set_t allowed;  // the process's cores: each run leaves out its caller's from these
        bool known = sched_getaffinity(0, sizeof allowed, &allowed) == 0;
        if (known)
            leave_core(shared.caller_core.load(std::memory_order_relaxed), allowed);
        for (unsigned seen = 0;;) {
            wait_for_ticket(shared.go, seen);
            ++seen;
            if (!shared.work)
                return nullptr;
            if (known)
                leave_core(shared.caller_core.load(std::memory_order_relaxed), allowed);
            try {  // an exception leaving a thread would end the process
                (*shared.work)();
            } catch (...) {
                shared.thrown = std::current_exception();
            }
            give_ticket(shared.done);
        }
    }
    std::shared_ptr<Shared> m_shared = std::make_shared<Shared>();
    bool m_started = false, m_failed = false;
    std::atomic<bool> m_busy{false};  // a run() is between its two halves
};

// Both halves at once, on a helper thread made for this one call.
void run_both(const std::function<void()> &here, const std::function<void()> &there)
{
    HelperThread helper;
    helper.run(here, there);
}

// Runs `work` on a runtime thread of the lowest priority (nice 19) and waits for it: for cleaning
// up after the commit, when the program's threads run again and should come first on a busy core
// (freeing a million old blocks takes tens of milliseconds, which its requests would otherwise
// wait for). When no thread can be made, it runs here, at this thread's priority. A program's
// thread that waits for a lock the work holds (an arena's, in free) sleeps, which gives the core
// to the work: the inversion ends by itself. Not for loading a version: the loader's lock is
// held for all of dlopen, and the program's threads take it to start threads.
void run_in_background(const std::function<void()> &work)
{
    auto caller = syscall(SYS_gettid);
    run_both([] {}, [&] {
        auto self = syscall(SYS_gettid);
        if (self != caller)
            setpriority(PRIO_PROCESS, static_cast<id_t>(self), 19);  // this thread only (Linux)
        work();
    });
}

// The cores the update's thread may run on (taskset, a container's cpuset: the program's, since
// the runtime's threads inherit its mask). Unknown (more than 1024 CPUs): more than one.
int usable_cores()
{
    cpu_set_t cores;
    if (sched_getaffinity(0, sizeof cores, &cores) != 0)
        return 2;
    return CPU_COUNT(&cores);
}

class Transaction;
// The transaction whose restart is running, for MOLT_LOCAL; used and cleared under the mutex, so
// that a late thread never reaches a transaction that has ended.
std::mutex g_active_mutex;
Transaction *g_active = nullptr;

void set_active(Transaction *transaction)
{
    std::lock_guard lock(g_active_mutex);
    g_active = transaction;
}

class Transaction {
public:
    void number(std::uint64_t id) { m_report.id = id; }

    Transaction(std::string path, const UpdateOptions &options, const ProgressCallback &progress)
        : m_path(std::move(path)), m_timeout(options.timeout), m_keep_old_state(options.keep_old_state),
          m_verify(options.verify), m_progress(progress)
    {
        m_report.to_path = m_path;
        m_report.started_at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count();
    }
    Transaction(const Transaction &) = delete;
    Transaction &operator=(const Transaction &) = delete;
    std::int64_t started_at_ms() const { return m_report.started_at_ms; }
    ~Transaction()
    {
        for (Stack &stack : m_spare_stacks)  // mapped in prepare and not needed (or the update failed)
            release_stack(stack);
    }

    UpdateReport run()
    {
        m_old = &current_version();
        m_report.from_path = m_old->path;
        auto start = Clock::now();
        if (!phase("prepare", start, [&] { return prepare(); }))
            return finish();
        m_pause_start = Clock::now();
        m_in_pause = true;
        if (!phase("quiesce", m_pause_start, [&] { return quiesce(); }))
            return finish();
        // Transformers run in the transform: a crash in one fails the update (transformer_guard.h).
        ensure_alternate_signal_stack();
        install_crash_handlers();
        if (m_watchdog)
            m_watchdog->arm();  // a transformer that never returns fails the update instead
        bool transformed = phase("transform", Clock::now(), [&] { return transform(); });
        if (m_watchdog)
            m_watchdog->disarm();
        remove_crash_handlers();
        if (!transformed) {
            m_second.reset();  // its work is done
            resume_old();
            return finish();
        }
        if (m_verify)
            verify_no_stale_pointers();  // still in the pause: the memory holds still
        m_second.reset();  // its work is done (not before the scan: a thread's end unmaps memory)
        set_active(this);
        if (!phase("restart", Clock::now(), [&] { return restart(); })) {
            set_active(nullptr);
            return finish();
        }
        auto commit_start = Clock::now();
        enter_phase("commit");
        // The new copies and what transformers allocated are the new version's state now: their
        // marks go while every thread still waits (once let go, the new code may free them).
        if (m_heap)
            m_heap->keep_new_blocks();
        commit();
        auto end = m_released_at;
        set_active(nullptr);
        m_report.times.commit_ms = milliseconds(commit_start, end);
        m_report.pause_ms = milliseconds(m_pause_start, end);
        // After the commit, outside the pause (every thread runs the new version already): old
        // code that anything still points to (callbacks, handlers, void *) leads to new code, at
        // once (a stale pointer to an old function would run old code on new state).
        auto redirect_start = Clock::now();
        RedirectionReport redirected = redirect_old_code(m_function_remap, m_old_function_sizes, wake_signal());
        double redirect_ms = milliseconds(redirect_start, Clock::now());
        m_report.functions_redirected = redirected.functions_redirected;
        m_report.signal_handlers_moved = redirected.signal_handlers_moved;
        for (const std::string &warning : redirected.warnings)
            m_report.warnings.push_back(warning);
        // The rest yields to the program's threads, on a runtime thread of the lowest priority:
        // the requests that queued during the pause come first on a busy core (the old stacks'
        // munmaps, the progress lines, the old state's release, the old schema's megabytes of
        // frees took the server's only core from them for a while after the pause).
        run_in_background([&] {
            for (Stack &stack : m_old_stacks)
                release_stack(stack);
            m_in_pause = false;
            report_progress("commit", m_report.times.commit_ms, "old stacks released");
            report_progress("redirect", redirect_ms,
                            std::to_string(m_report.functions_redirected) + " old functions jump to the new ones, " +
                                std::to_string(m_report.signal_handlers_moved) + " signal handlers moved");
            reclaim_old_state();
            forget_old_schema();
        });
        m_report.ok = true;
        return finish();
    }

    bool carry_local(ThreadRecord &thread, const char *function, const char *name, void *address, std::size_t size)
    {
        if (reinterpret_cast<std::uintptr_t>(address) == 0)
            return false;
        const LocalSlot *slot = nullptr;
        for (const LocalSlot &candidate : thread.old_locals)
            if (candidate.function == function && candidate.name == name)
                slot = &candidate;
        if (!slot)
            return false;
        const schema::Local *old_local = find_local(*m_old_schema, function, name);
        const schema::Local *new_local = find_local(*m_new_schema, function, name);
        std::string where = std::string(function) + "#" + name;
        if (!old_local || !new_local) {
            if (slot->size != size)
                return warn_local(where + ": not in the schema and sizes differ: not carried over");
            std::memcpy(address, slot->address, size);  // same size, no type known: bits as they are
        } else {
            // Into a copy first: a conversion that fails half-way (a dropped element not zero)
            // must leave the local as the new version set it, as "not carried over" says.
            std::vector<unsigned char> value(std::max<std::size_t>(size, schema::layout(*m_new_schema, new_local->type).size));
            auto converted = m_converter->convert(old_local->type, slot->address, new_local->type, value.data(), where);
            if (!converted)
                return warn_local(converted.error().message + ": not carried over");
            std::memcpy(address, value.data(), size);
        }
        ++m_report.locals_carried;  // one thread at a time: under carry_local's lock
        return true;
    }

private:
    template <typename Step>
    bool phase(const char *name, Clock::time_point start, Step &&step)
    {
        Result<bool> result = true;
        enter_phase(name);
        try {
            result = step();
        } catch (const std::exception &exception) {  // e.g. out of memory: the old version resumes
            if (__atomic_load_n(&molt_pending_update, __ATOMIC_SEQ_CST))
                resume_old();
            result = Error{"", std::string("internal failure (") + exception.what() + ")"};
        }
        double ms = milliseconds(start, Clock::now());
        if (std::string(name) == "prepare") m_report.times.prepare_ms = ms;
        if (std::string(name) == "quiesce") m_report.times.quiesce_ms = ms;
        if (std::string(name) == "transform") m_report.times.transform_ms = ms;
        if (std::string(name) == "restart") m_report.times.restart_ms = ms;
        if (!result) {
            m_report.phase = name;
            m_report.error = result.error().to_string();
            return false;
        }
        report_progress(name, ms, m_detail);
        return true;
    }

    // A phase's line goes to the tool at once, but those of the pause's phases wait for its end:
    // each is a write to the tool's socket, which wakes the tool to print it, on a core the pause
    // wants (a few hundredths of a millisecond each, a few milliseconds before it is read anyway).
    void report_progress(const std::string &name, double ms, const std::string &detail)
    {
        if (!m_progress)
            return;
        m_held_progress.push_back({name, ms, detail});
        if (!m_in_pause)
            send_held_progress();
    }
    void send_held_progress()
    {
        m_in_pause = false;
        for (const HeldProgress &line : m_held_progress)
            m_progress(line.name, line.ms, line.detail);
        m_held_progress.clear();
    }

    UpdateReport finish()
    {
        send_held_progress();  // the pause is over, whichever way
        // Every failure ends the same way, whichever phase it came from: the operator reads at
        // once that nothing changed.
        // (A rollback of the restart says itself what runs: every thread may not have come back.)
        if (!m_report.ok && !m_restart_rolled_back)
            m_report.error += ": the old version keeps running";
        if (!m_report.ok && m_new && !m_quarantined)
            unload_new_version();
        if (!m_report.ok && m_new && m_quarantined)
            m_new->schema.reset();  // it stays mapped, but nothing will ever read its types again
        std::lock_guard lock(history_mutex());
        history().push_back(m_report);
        if (history().size() > kept_reports())
            history().pop_front();
        ++g_attempts;
        return m_report;
    }

    bool warn_local(const std::string &message)  // under carry_local's lock
    {
        m_report.warnings.push_back("MOLT_LOCAL " + message);
        return false;
    }

    static const schema::Local *find_local(const schema::Schema &schema, const char *function, const char *name)
    {
        // __func__ gives the plain name: an external function first, else a static one.
        if (const schema::Local *local = schema.find_local(function, name))
            return local;
        for (const schema::Function &candidate : schema.functions)
            if (candidate.name == function)
                if (const schema::Local *local = schema.find_local(candidate.qualified_name, name))
                    return local;
        return nullptr;
    }

    // ---- prepare: everything that can be checked or loaded while the old version runs --------

    // An update is cancelled (running_update.h) between prepare's steps and while it waits for
    // quiescence: then nothing has changed yet.
    Error cancelled() const
    {
        return Error{"", "cancelled in " + running_update().value_or(RunningUpdate{}).phase +
                             " (molt cancel, or molt update interrupted)"};
    }

    Result<bool> check_file()
    {
        struct stat status {};
        if (stat(m_path.c_str(), &status) != 0)
            return Error{m_path, std::strerror(errno)};
        if (!S_ISREG(status.st_mode))
            return Error{m_path, "not a regular file"};
        if (status.st_mode & (S_IWGRP | S_IWOTH))
            return Error{m_path, "writable by other users: refused, it would run code inside this process"};
        if (status.st_uid != geteuid() && status.st_uid != 0)
            return Error{m_path, "owned by another user: refused, it would run code inside this process"};
        return true;
    }

    Result<bool> prepare()
    {
        if (transform::allocator_may_be_locked())
            return Error{"", "an earlier update's transformer crashed inside malloc or free: the heap may be corrupt, "
                             "restart the process before updating it"};
        MOLT_TRY(file_ok, check_file());
        (void)file_ok;
        MOLT_TRY(old_schema, m_old->load_schema());
        m_old_schema = old_schema;
        if (cancel_requested())
            return cancelled();
        for (const std::string &warning : m_old_schema->warnings)  // e.g. a static the optimizer split
            m_report.warnings.push_back(m_old->path + ": " + warning);
        auto new_schema = schema::load_schema(m_path);
        if (!new_schema)
            return new_schema.error();
        m_loaded_schema = std::make_unique<schema::Schema>(std::move(*new_schema));
        m_new_schema = m_loaded_schema.get();
        if (cancel_requested())  // reading the DWARF is prepare's longest step
            return cancelled();
        if (!m_new_schema->find_function("main"))
            return Error{m_path, "has no main: a version is a whole program"};

        schema::SchemaDiff diff = schema::diff_schemas(*m_old_schema, *m_new_schema);
        if (!diff.needs_transformer.empty())
            return Error{m_path, diff.needs_transformer.front().to_string() +
                                     (diff.needs_transformer.size() > 1
                                          ? " (and " + std::to_string(diff.needs_transformer.size() - 1) + " more: molt check)"
                                          : "")};
        MOLT_TRY(planned, plan_variables(diff));
        (void)planned;
        MOLT_TRY(threads_ok, check_start_routines());
        (void)threads_ok;
        if (cancel_requested())  // the last moment before new code runs
            return cancelled();

        // Last: loading runs the new version's constructors.
        MOLT_TRY(opened, open_version(m_path));
        m_new = opened;
        if (!m_new->refusal.empty())  // unloaded by finish(), as any failed version
            return Error{m_path, "its constructor refused the update: " + m_new->refusal};
        MOLT_TRY(loaded_fault, fault_point("prepare.loaded"));
        (void)loaded_fault;
        m_new->schema = std::move(*m_loaded_schema);  // vectors move: planned pointers stay valid
        m_new_schema = &*m_new->schema;
        m_new->build_id = m_new_schema->build_id;
        m_report.to_build_id = m_new->build_id;
        build_function_maps();
        populate_variable_pages(*m_new_schema, m_new->bias, true);
        populate_variable_pages(*m_old_schema, m_old->bias, false);
        find_zero_variables();
        m_converter = std::make_unique<transform::ValueConverter>(
            *m_old_schema, *m_new_schema, [this](std::uintptr_t address) -> std::optional<std::uintptr_t> {
                auto found = m_function_remap.find(address);
                if (found == m_function_remap.end())
                    return std::nullopt;
                return found->second;
            });
        MOLT_TRY(registered, register_transformers());
        (void)registered;
        if (m_converter->has_type_transformers() || !m_variable_transformers.empty())
            m_watchdog = std::make_unique<TransformerWatchdog>(m_timeout);
        bool converts = false;
        std::size_t root_pointers = 0;
        for (const Migration &migration : m_migrations)  // the conversion's programs, outside the pause
            if (!migration.transformer_only) {
                m_converter->precompile(migration.from->type, migration.to->type);
                converts = converts || !migration.identical;
                if (!migration.identical) {
                    const transform::ConversionProgram *annotated = m_converter->variable_program(migration.to->qualified_name);
                    root_pointers += transform::HeapConverter::pointer_slots(
                        annotated ? *annotated : m_converter->program(migration.from->type, migration.to->type));
                }
            }
        m_many_roots = root_pointers >= 4096;
        // The heap converter too, with its first memory touched: page faults in the pause cost a
        // microsecond or two each on a virtual machine, and a small heap's update is made of them.
        m_heap = std::make_unique<transform::HeapConverter>(transform::Image{m_old_schema, m_old->bias},
                                                            transform::Image{m_new_schema, m_new->bias}, *m_converter);
        if (converts && usable_cores() > 1) {  // on one core, a second thread would only take turns with the first
            m_second = std::make_unique<HelperThread>();  // started in the pause
            m_halves = [this](const std::function<void()> &here, const std::function<void()> &there) {
                m_second ? m_second->run(here, there) : run_both(here, there);
            };
            m_heap->set_parallel(m_halves);
        }
        m_heap->fail_allocation(allocation_fault());
        m_heap->fail_discovery(fault_fires("transform.discovery_out_of_memory").has_value());
        if (converts)
            m_report.copy_bytes_prepared = m_heap->prefault(root_pointers);
        prepare_stacks();
        m_detail = std::to_string(m_migrations.size()) + " variables planned, " + m_path + " loaded";
        if (m_report.copy_bytes_prepared)
            m_detail += ", " + std::to_string(m_report.copy_bytes_prepared >> 20) + " MB ready for the new copies";
        if (cancel_requested())
            return cancelled();
        // Discovery will want the helper: made last, so that prepare fails before it or not at
        // all (a thread made and ended would leave a cached stack and an arena behind), and so
        // that its start is done with before the pause. Made as the pause began, its 60-100 µs
        // came after the threads had parked, in a pause of 1.5 ms (kvd, 10,000 keys).
        if (m_second && m_many_roots)
            m_second->start();
        return true;
    }

    // The variables the transform writes whose new memory holds only zeros (a .bss table, as
    // kvd's store and its table of connections, a megabyte): the transform zeroes a variable
    // before it writes what it converts, and need not zero these ones in the pause. Only looked
    // at here: until the transform converts a variable, the new version's code (a transformer's
    // calls into it) sees its initial value, as before. (What such code writes into one of these
    // during the transform, where the conversion writes nothing, an empty slot or a new member,
    // now stays.) A variable written by two migrations (renames that meet) is zeroed before each
    // but the first.
    void find_zero_variables()
    {
        std::set<std::uintptr_t> targets;
        for (Migration &migration : m_migrations) {
            auto *bytes = reinterpret_cast<const unsigned char *>(m_new->address(migration.to->address));
            bool first = targets.insert(migration.to->address).second;
            migration.zero_already = first && std::all_of(bytes, bytes + migration.to->size, [](unsigned char byte) { return byte == 0; });
        }
    }

    Result<bool> plan_variables(const schema::SchemaDiff &diff)
    {
        transform::ValueConverter planner(*m_old_schema, *m_new_schema, [](std::uintptr_t) { return std::nullopt; });
        if (std::vector<std::string> problems = planner.annotations().problems(); !problems.empty())
            return Error{m_path, problems.front() + (problems.size() > 1 ? " (and " + std::to_string(problems.size() - 1) +
                                                                              " more: molt check)"
                                                                        : "")};
        for (const schema::Transformer &transformer : m_new_schema->transformers)
            if (transformer.kind == schema::Transformer::Kind::Type)
                planner.add_type_transformer(transformer.name, planned_transformer);
        for (std::string &warning : schema::value_loss_warnings(diff))
            m_report.warnings.push_back(std::move(warning));
        for (const schema::VariableChange &change : diff.variables) {
            if (change.read_only)
                continue;
            if (change.status == schema::Status::Added) {
                ++m_report.variables_new;
                continue;
            }
            if (change.status == schema::Status::Removed) {
                ++m_report.variables_dropped;
                m_report.warnings.push_back("variable " + change.name + " is not in the new version: its value is dropped");
                continue;
            }
            const schema::Variable *from = m_old_schema->find_variable(change.name);
            const schema::Variable *to =
                m_new_schema->find_variable(change.new_name.empty() ? change.name : change.new_name);
            if (!from || !to)
                continue;
            if (from->thread_local_storage || to->thread_local_storage) {
                m_report.warnings.push_back("thread-local " + change.name + " keeps the new version's initial value");
                continue;
            }
            auto planned = planner.plan(from->type, to->type, "variable " + change.name);
            bool has_transformer = m_new_schema->find_transformer(schema::Transformer::Kind::Variable, to->qualified_name);
            if (!planned && !has_transformer)
                return Error{m_path, planned.error().message};
            // A void * variable that MOLT_VARIABLE_POINTS_TO types: what it points to is planned.
            auto pointee = planner.annotations().variable_points_to(to->qualified_name);
            if (!pointee)
                return Error{m_path, pointee.error().message};
            if (*pointee) {
                auto pointee_planned = planner.plan((*pointee)->old_pointee, (*pointee)->new_pointee,
                                                    "variable " + change.name + "->");
                if (!pointee_planned)
                    return Error{m_path, pointee_planned.error().message};
            }
            bool identical = planned && !*pointee && !planner.changed(from->type, to->type);
            m_migrations.push_back({from, to, identical, !planned});
        }
        return true;
    }

    // Threads whose start routine is code of the old version take part in the update; each must
    // find its start routine, by qualified name, in the new version.
    Result<bool> check_start_routines()
    {
        std::map<std::uintptr_t, std::string> old_functions;
        for (const schema::Function &function : m_old_schema->functions)
            old_functions.emplace(m_old->address(function.address), function.qualified_name);
        std::string missing;
        registry().for_each([&](ThreadRecord &thread) {
            if (thread.is_main || !missing.empty())
                return;
            auto found = old_functions.find(reinterpret_cast<std::uintptr_t>(thread.start));
            if (found != old_functions.end() && !m_new_schema->find_function(found->second))
                missing = "thread " + std::to_string(thread.tid) + " runs " + found->second +
                          ", which the new version does not have";
        });
        if (!missing.empty())
            return Error{m_path, missing};
        return true;
    }

    // The records of the new version's molt_transformers section, now relocated in memory.
    Result<bool> register_transformers()
    {
        for (const schema::Transformer &transformer : m_new_schema->transformers) {
            if (transformer.kind != schema::Transformer::Kind::Type &&
                transformer.kind != schema::Transformer::Kind::Variable)
                continue;  // renames: used by the diff and the conversions, nothing to call
            const auto *record = reinterpret_cast<const molt_transformer_record *>(m_new->address(transformer.record_address));
            if (record->magic != MOLT_TRANSFORMER_MAGIC || !record->function)
                return Error{m_path, "transformer record for " + transformer.name + " is damaged"};
            if (transformer.kind == schema::Transformer::Kind::Type)
                m_converter->add_type_transformer(transformer.name, record->function, transformer.parallel);
            else
                m_variable_transformers[transformer.name] = record->function;
        }
        return true;
    }

    void build_function_maps()
    {
        for (const schema::Function &function : m_old_schema->functions) {
            std::uintptr_t old_address = m_old->address(function.address);
            m_old_function_names.emplace(old_address, function.qualified_name);
            m_old_function_sizes.emplace(old_address, function.size);
            if (const schema::Function *counterpart = m_new_schema->find_function(function.qualified_name))
                m_function_remap.emplace(old_address, m_new->address(counterpart->address));
        }
    }

    // ---- quiesce: every participating thread parked at an update point -----------------------

    bool participates(const ThreadRecord &thread) const
    {
        return thread.is_main || m_old_function_names.count(reinterpret_cast<std::uintptr_t>(thread.start));
    }

    // MOLT_LOCALs registered by frames that have returned since point into dead stack: only
    // slots at or above the parked frame are live.
    static std::vector<LocalSlot> live_locals(const ThreadRecord &thread)
    {
        std::vector<LocalSlot> live;
        for (const LocalSlot &slot : thread.locals)
            if (reinterpret_cast<std::uintptr_t>(slot.address) >= thread.parked_stack_pointer)
                live.push_back(slot);
        return live;
    }

    void send(ThreadRecord &thread, Command command)
    {
        thread.command.store(encode_command(command, m_generation));
        futex_wake_all(thread.command);
    }

    Result<bool> quiesce()
    {
        m_generation = update_generation().fetch_add(1) + 1;
        __atomic_store_n(&molt_pending_update, 1, __ATOMIC_SEQ_CST);
        std::uint64_t one = 1;
        if (write(wake_fd(), &one, sizeof one) < 0) {
            // the eventfd only helps event loops; the signal reaches every thread anyway
        }
        auto deadline = Clock::now() + m_timeout;
        auto next_kick = Clock::now();
        // A signal that lands just before its thread blocks (between its last update point and
        // its nanosleep, say) is lost, and the thread sleeps on: it is kicked again, soon at first
        // (0.1 ms), then less and less often (up to every 2 ms), so that a thread busy in long
        // work is not showered with signals.
        auto kick_interval = std::chrono::microseconds(100);
        for (;;) {
            int seen = thread_changes().load();
            std::vector<ThreadRecord *> waiting;
            m_parked.clear();
            auto now = Clock::now();
            bool kick_now = now >= next_kick;
            registry().for_each([&](ThreadRecord &thread) {
                if (!participates(thread))
                    return;
                if (thread.current_state() == ThreadState::Parked && thread.parked_generation == m_generation) {
                    m_parked.push_back(&thread);
                    return;
                }
                waiting.push_back(&thread);
                if (kick_now)
                    kick(thread);  // under the registry lock: the thread cannot exit meanwhile
            });
            if (kick_now) {
                next_kick = now + kick_interval;
                kick_interval = std::min<std::chrono::microseconds>(kick_interval * 2, std::chrono::milliseconds(2));
            }
            if (waiting.empty() || cancel_requested())
                break;
            if (now >= deadline) {
                report_stragglers(waiting);
                resume_old();
                std::string first = m_report.stragglers.empty() ? std::string("they exited meanwhile")
                                                                : m_report.stragglers.front();
                return Error{"", std::to_string(waiting.size()) + " of " + std::to_string(waiting.size() + m_parked.size()) +
                                     " threads did not reach an update point within " +
                                     std::to_string(m_timeout.count()) + " ms (" + first + ")"};
            }
            auto until_kick = std::chrono::duration_cast<std::chrono::microseconds>(next_kick - Clock::now());
            futex_wait(thread_changes(), seen,
                       std::clamp(until_kick, std::chrono::microseconds(50), std::chrono::microseconds(1000)));
        }
        // Past here the state changes: a cancellation that comes later is answered "too late".
        if (!close_cancellation()) {
            resume_old();
            return cancelled();
        }
        m_report.threads = m_parked.size();
        m_detail = std::to_string(m_parked.size()) + " threads parked";
        if (auto fault = fault_point("quiesce.parked"); !fault) {
            resume_old();
            return fault.error();
        }
        return true;
    }

    void report_stragglers(const std::vector<ThreadRecord *> &waiting)
    {
        registry().for_each([&](ThreadRecord &thread) {
            if (std::find(waiting.begin(), waiting.end(), &thread) == waiting.end())
                return;
            thread.frame_count.store(0);
            thread.capture_requested.store(1);
            kick(thread);
        });
        auto limit = Clock::now() + std::chrono::milliseconds(100);
        registry().for_each([&](ThreadRecord &thread) {
            if (std::find(waiting.begin(), waiting.end(), &thread) == waiting.end())
                return;
            while (thread.capture_requested.load() && Clock::now() < limit)
                usleep(1000);
            std::string line = "thread " + std::to_string(thread.tid) + " (" + start_routine_name(thread) + ")";
            const char *last = thread.last_point.load();
            line += last ? ", last update point \"" + std::string(last) + "\"" : ", no update point reached yet";
            std::string frames = symbolise(thread);
            if (!frames.empty())
                line += ", in " + frames;
            m_report.stragglers.push_back(line);
        });
    }

    // The thread's backtrace as function names of the old version (others as addresses). A
    // frame in a part gcc split from its function (`name.cold`) is that function's.
    std::string symbolise(const ThreadRecord &thread) const
    {
        std::string text;
        int count = thread.frame_count.load();
        for (int i = 0; i < count; ++i) {
            auto address = reinterpret_cast<std::uintptr_t>(thread.frames[i]) - m_old->bias;  // link-time
            std::string name;
            for (const schema::Function &function : m_old_schema->functions) {
                if (function.holds(address)) {
                    name = function.qualified_name;
                    break;
                }
            }
            if (name.empty())
                continue;  // runtime and library frames say little to the programmer
            text += (text.empty() ? "" : " <- ") + name;
        }
        return text;
    }

    // The flag goes down first: a thread parking after that leaves by itself (see park()).
    void resume_old()
    {
        end_pending();
        registry().for_each([&](ThreadRecord &thread) {
            if (thread.current_state() == ThreadState::Parked)
                send(thread, Command::Resume);
        });
    }

    static void end_pending()
    {
        __atomic_store_n(&molt_pending_update, 0, __ATOMIC_SEQ_CST);
        std::uint64_t drained;
        while (read(wake_fd(), &drained, sizeof drained) > 0) {
        }
    }

    // ---- transform: globals and statics into the new version ---------------------------------

    // Heap objects first: every block that a global, a static or a MOLT_LOCAL reaches through a
    // pointer whose pointee changed gets its new copy; then the roots are converted, their
    // pointers redirected to the copies. Nothing of the old version is written.
    Result<bool> transform()
    {
        auto discovery_start = Clock::now();
        // The roots' pointers queued; meanwhile, when there are many, the second core takes the
        // snapshot of readable memory that following them needs (0.2 ms: /proc/self/maps), unless
        // the kernel answers questions about single mappings instead (HeapConverter::prefault).
        auto seed = [&] {
            for (const Migration &migration : m_migrations) {
                if (migration.identical)
                    continue;
                const void *old_address = reinterpret_cast<const void *>(m_old->address(migration.from->address));
                std::string where = "variable " + migration.from->qualified_name;
                const transform::ConversionProgram *annotated = m_converter->variable_program(migration.to->qualified_name);
                if (annotated)
                    m_heap->discover(*annotated, old_address, where);
                else
                    m_heap->discover(migration.from->type, migration.to->type, old_address, where);
            }
            for (ThreadRecord *thread : m_parked)
                for (const LocalSlot &slot : live_locals(*thread)) {
                    const schema::Local *old_local = find_local(*m_old_schema, slot.function.c_str(), slot.name.c_str());
                    const schema::Local *new_local = find_local(*m_new_schema, slot.function.c_str(), slot.name.c_str());
                    if (!old_local || !new_local)
                        continue;
                    m_heap->discover(old_local->type, new_local->type, slot.address, "MOLT_LOCAL " + slot.function + "#" + slot.name);
                }
        };
        if (m_second && m_many_roots && !m_heap->readable_memory_ready())
            m_second->run(seed, [this] { m_heap->take_readable_memory(); });
        else
            seed();
        if (auto found = m_heap->find_blocks(); !found)
            return Error{"", found.error().message};
        MOLT_TRY(discovered_fault, fault_point("transform.heap_discovered"));
        (void)discovered_fault;
        if (!fault_point("transform.out_of_memory"))
            throw std::bad_alloc();  // as Molt's own bookkeeping would, when memory runs out
        auto conversion_start = Clock::now();
        m_report.heap_discovery_ms = milliseconds(discovery_start, conversion_start);
        auto blocks = m_heap->convert_blocks();
        if (!blocks)
            return Error{"", blocks.error().message};
        m_report.heap_conversion_ms = milliseconds(conversion_start, Clock::now());
        m_report.heap_objects_converted = m_heap->objects_converted();
        if (std::string untracked = m_heap->untracked_blocks_warning(); !untracked.empty())
            m_report.warnings.push_back(untracked);
        m_report.heap_bytes_converted = m_heap->bytes_converted();
        if (m_second)  // the globals' big arrays, in two halves at once
            m_converter->set_parallel(m_halves);
        struct Serial {  // and no more after them (a transformer's own conversions, say)
            transform::ValueConverter &converter;
            ~Serial() { converter.set_parallel({}); }
        } serial{*m_converter};
        for (const Migration &migration : m_migrations) {
            const void *from = reinterpret_cast<const void *>(m_old->address(migration.from->address));
            void *to = reinterpret_cast<void *>(m_new->address(migration.to->address));
            if (migration.transformer_only) {
                if (!migration.zero_already)
                    std::memset(to, 0, migration.to->size);
            } else {
                std::string where = "variable " + migration.from->qualified_name;
                const transform::ConversionProgram *annotated = m_converter->variable_program(migration.to->qualified_name);
                bool zeroed = migration.zero_already;
                auto converted = annotated ? m_converter->run(*annotated, static_cast<const unsigned char *>(from),
                                                              static_cast<unsigned char *>(to), transform::Place(where), zeroed)
                                           : m_converter->convert(migration.from->type, from, migration.to->type, to, where, zeroed);
                if (!converted)
                    return Error{"", converted.error().message};
            }
            // A transformer is written for a change: a variable of the same type and name (a
            // version updated to itself) is copied, never transformed a second time. A rename
            // marks a change of meaning (`timeout_ms` -> `timeout_us`): its transformer runs.
            bool changed = !migration.identical || migration.from->qualified_name != migration.to->qualified_name;
            if (auto transformer = m_variable_transformers.find(migration.to->qualified_name);
                changed && transformer != m_variable_transformers.end()) {
                if (auto failed = transform::transformer_failure(transformer->second, to, from))
                    return Error{"", "variable " + migration.to->qualified_name + ": " + *failed};
                ++m_report.variables_transformed;
            }
            ++(migration.identical ? m_report.variables_copied : m_report.variables_converted);
            if (m_report.variables_copied + m_report.variables_converted == (m_migrations.size() + 1) / 2) {
                MOLT_TRY(globals_fault, fault_point("transform.globals"));  // half the globals written
                (void)globals_fault;
            }
        }
        m_detail = std::to_string(m_report.variables_copied) + " variables copied, " +
                   std::to_string(m_report.variables_converted) + " converted, " +
                   std::to_string(m_report.variables_new) + " new; " + std::to_string(m_heap->objects_converted()) +
                   " heap objects converted";
        if (m_heap->objects_converted())
            m_detail += " (found in " + format_ms(m_report.heap_discovery_ms) + " ms, converted in " +
                        format_ms(m_report.heap_conversion_ms) + " ms)";
        return true;
    }

    // --verify: words that still point into the old copies of converted objects (stale_pointers.h).
    // Each is a warning; when there is one, the old copies are kept after the commit, so that
    // nothing leads to freed memory.
    void verify_no_stale_pointers()
    {
        auto start = Clock::now();
        transform::StaleScan scan = transform::find_stale_pointers(
            *m_heap, transform::Image{m_new_schema, m_new->bias}, version_paths(), m_halves);
        m_report.stale_pointers = scan.found;
        for (const std::string &example : scan.examples)
            m_report.warnings.push_back("stale pointer: " + example);
        if (scan.found > scan.examples.size())
            m_report.warnings.push_back("stale pointer: " + std::to_string(scan.found - scan.examples.size()) + " more");
        if (scan.found)
            m_keep_old_state = true;
        m_report.times.verify_ms = milliseconds(start, Clock::now());
        report_progress("verify", m_report.times.verify_ms,
                        std::to_string(scan.bytes_scanned / 1024) + " KiB scanned: " + std::to_string(scan.found) +
                            (scan.found ? " words still point into replaced objects (the old objects will be kept)"
                                        : " words point into replaced objects"));
    }

    // ---- restart: each thread into the new version, until it reaches an update point ---------

    // The stacks the restart will move the threads to, one per thread that takes part now (a
    // thread started meanwhile gets one in the pause), mapped before the pause with the pages
    // their first frames use: mapping five stacks and the first page faults on them were a tenth
    // of a millisecond of a small update's restart.
    static constexpr std::size_t restart_stack_size = 8 * 1024 * 1024;
    void prepare_stacks()
    {
        std::size_t threads = 0;
        registry().for_each([&](ThreadRecord &thread) { threads += participates(thread); });
        constexpr std::size_t most = 256, touched = 64 * 1024;
        for (std::size_t i = 0; i < std::min(threads, most); ++i) {
            Stack stack = allocate_stack(restart_stack_size);
            if (!stack)
                break;  // the restart maps what it lacks (and fails before anything moved if it cannot)
            populate_pages(reinterpret_cast<std::uintptr_t>(stack.base) + stack.size - touched, touched, true);
            m_spare_stacks.push_back(stack);
        }
    }

    Result<bool> restart()
    {
        for (ThreadRecord *thread : m_parked) {
            if (thread->is_main) {
                thread->restart_main = reinterpret_cast<MainFunction>(
                    m_new->address(m_new_schema->find_function("main")->address));
                continue;
            }
            const std::string &name = m_old_function_names.at(reinterpret_cast<std::uintptr_t>(thread->start));
            const schema::Function *routine = m_new_schema->find_function(name);
            if (!routine) {  // a thread started after prepare, in a routine the new version lacks
                resume_old();
                return Error{"", "thread " + std::to_string(thread->tid) + " runs " + name +
                                     ", which the new version does not have"};
            }
            thread->restart_start = reinterpret_cast<StartRoutine>(m_new->address(routine->address));
            // The argument is a root too: a pointer to an old global (kvd's &workers[i]) or to a
            // converted block goes to its new place; anything else is passed as it was.
            auto argument = reinterpret_cast<std::uintptr_t>(thread->arg);
            auto moved = m_heap ? m_heap->redirect_untyped(argument) : std::nullopt;
            thread->restart_arg = reinterpret_cast<void *>(moved ? *moved : argument);
        }
        if (auto fault = fault_point("restart.stacks"); !fault) {
            resume_old();
            return fault.error();
        }
        // Stacks first: if memory is short, nothing has moved yet.
        std::vector<Stack> stacks;
        for (std::size_t i = 0; i < m_parked.size(); ++i) {
            Stack stack = {};
            if (!m_spare_stacks.empty()) {
                stack = m_spare_stacks.back();
                m_spare_stacks.pop_back();
            } else {
                stack = allocate_stack(restart_stack_size);
            }
            if (!stack) {
                for (Stack &allocated : stacks)
                    release_stack(allocated);
                resume_old();
                return Error{"", "cannot map stacks for the restarted threads"};
            }
            stacks.push_back(stack);
        }
        save_signal_dispositions();  // the new code may change them before it fails
        install_crash_handlers();  // a crash in the new code rolls back instead of killing
        // From here on the new code runs: whatever fails (even by an exception), the version stays
        // loaded, since something may lead into it.
        m_quarantined = true;
        for (std::size_t i = 0; i < m_parked.size(); ++i) {
            ThreadRecord &thread = *m_parked[i];
            thread.previous_stack = thread.stack_in_use;
            thread.stack_in_use = stacks[i];
            thread.old_locals = live_locals(thread);
            thread.locals.clear();
            send(thread, Command::Restart);
        }
        // The commit waits for every restarted thread at an update point of the new version. A
        // crash on the way (or the deadline) takes every thread back to its old frames.
        auto deadline = Clock::now() + m_timeout;
        for (;;) {
            int seen = thread_changes().load();
            std::size_t arrived = 0, present = 0;
            ThreadRecord *crashed = nullptr;
            registry().for_each([&](ThreadRecord &thread) {
                if (std::find(m_parked.begin(), m_parked.end(), &thread) == m_parked.end())
                    return;
                ++present;
                arrived += thread.current_state() == ThreadState::Arrived;
                if (thread.crash_signal.load() && !crashed)
                    crashed = &thread;
            });
            if (crashed) {
                std::string name = start_routine_name(*crashed);
                int number = crashed->crash_signal.load();
                return roll_back_restart("thread " + std::to_string(crashed->tid) + " (" + name + ") crashed with " +
                                         sigabbrev_np(number) + " in the new version before it reached an update point");
            }
            if (arrived == present)
                break;
            if (Clock::now() >= deadline)
                return roll_back_restart(std::to_string(present - arrived) + " restarted threads did not reach an update "
                                         "point of the new version within " + std::to_string(m_timeout.count()) + " ms");
            futex_wait(thread_changes(), seen, std::chrono::milliseconds(1));
        }
        m_detail = std::to_string(m_parked.size()) + " threads in the new version";
        return true;
    }

    // Every restarted thread back to its old frames: those at an update point of the new version
    // by command, those still running new code by the wake signal (their handler jumps back; a
    // lock the new code holds at that moment stays held: said in the report), the crashed ones
    // are back already, those that had not taken their Restart yet never leave. Then their new
    // stacks go, their MOLT_LOCALs come back, the heap's new blocks are freed (m_heap), and the
    // old version resumes.
    Error roll_back_restart(const std::string &why)
    {
        // A thread still parked with its Restart not taken (the crash can come before every
        // thread has woken up) must not take it now: its new stack is about to be freed.
        std::vector<ThreadRecord *> stayed = withdraw_restarts();
        auto is_back = [&](const ThreadRecord &thread) {
            return thread.current_state() == ThreadState::Parked ||
                   std::find(stayed.begin(), stayed.end(), &thread) != stayed.end();
        };
        // First a grace period: threads still running new code are on their way to an update
        // point, where they go back by command, safely. Only those that do not arrive in time
        // (a hang) are interrupted by the wake signal, wherever they are.
        bool forced = false;
        std::size_t back = 0;
        auto grace = Clock::now() + std::min<std::chrono::milliseconds>(m_timeout, std::chrono::seconds(1));
        auto limit = grace + std::chrono::seconds(2);
        for (;;) {
            int seen = thread_changes().load();
            bool force = Clock::now() >= grace;
            back = 0;
            std::size_t present = 0;
            registry().for_each([&](ThreadRecord &thread) {
                if (std::find(m_parked.begin(), m_parked.end(), &thread) == m_parked.end())
                    return;
                ++present;
                ThreadState state = thread.current_state();
                back += is_back(thread);
                if (state == ThreadState::Arrived) {
                    send(thread, Command::Rollback);
                } else if (state == ThreadState::Restarting && force) {
                    thread.rollback_requested.store(1);
                    kick(thread);  // again each round: the signal may land where it cannot act
                    forced = true;
                }
            });
            if (back == present || Clock::now() >= limit)
                break;
            futex_wait(thread_changes(), seen, std::chrono::milliseconds(1));
        }
        remove_crash_handlers();
        restore_signal_dispositions();
        // Through the registry: a thread whose new start routine returned has left it, and its
        // record is gone (m_parked would still point at it).
        registry().for_each([&](ThreadRecord &thread) {
            if (std::find(m_parked.begin(), m_parked.end(), &thread) == m_parked.end() || !is_back(thread))
                return;  // not ours, or never came back: left as it is (reported below)
            release_stack(thread.stack_in_use);  // it runs on its old stack again
            thread.stack_in_use = thread.previous_stack;
            thread.previous_stack = {};
            thread.locals = std::move(thread.old_locals);
            thread.old_locals.clear();
            thread.restart_start = nullptr;
            thread.crash_signal.store(0);
        });
        // Threads the new version started on its way are not resumed: they would run new code
        // on old state. They stay parked.
        end_pending();
        registry().for_each([&](ThreadRecord &thread) {
            bool restarted = std::find(m_parked.begin(), m_parked.end(), &thread) != m_parked.end();
            if (is_back(thread) &&
                (restarted || m_old_function_names.count(reinterpret_cast<std::uintptr_t>(thread.start))))
                send(thread, Command::Resume);
        });
        m_restart_rolled_back = true;
        std::string outcome = back == m_parked.size()
                                  ? ": rolled back, the old version keeps running"
                                  : ": rolled back, but " + std::to_string(m_parked.size() - back) +
                                        " threads did not come back from the new code";
        if (forced)
            outcome += " (threads were interrupted in the new code: a lock it held stays held)";
        // Its code ran: a handler, a callback or a parked thread it started may still lead into
        // it, so it is not unloaded (finish() unloads a version whose code never ran).
        std::size_t started = 0;
        registry().for_each([&](ThreadRecord &thread) {
            started += std::find(m_parked.begin(), m_parked.end(), &thread) == m_parked.end() &&
                       !m_old_function_names.count(reinterpret_cast<std::uintptr_t>(thread.start));
        });
        outcome += "; the new version stays loaded but unused (quarantined: its code ran" +
                   (started ? ", and " + std::to_string(started) + " threads it started stay parked)" : std::string(")"));
        return Error{"", why + outcome};  // m_quarantined: set by restart() before any new code ran
    }

    // The Restart commands no thread has taken yet are taken back: those threads never leave
    // their old update point, whatever state they show meanwhile (a thread that finds its command
    // gone is Switching for a moment: take_command). Every other restarted thread has taken its
    // command as Switching, so from now on it is Parked only once it is back from the new stack.
    std::vector<ThreadRecord *> withdraw_restarts()
    {
        std::vector<ThreadRecord *> stayed;
        registry().for_each([&](ThreadRecord &thread) {
            int restart = encode_command(Command::Restart, m_generation);
            if (std::find(m_parked.begin(), m_parked.end(), &thread) != m_parked.end() &&
                thread.command.compare_exchange_strong(restart, encode_command(Command::None, m_generation)))
                stayed.push_back(&thread);
        });
        return stayed;
    }

    // A version that failed before any of its code ran (but its constructors) goes: its image,
    // its variables (faulted in before the pause), its schema. What was built on it goes first.
    void unload_new_version()
    {
        // Its constructors ran: a thread one of them started would run code that goes.
        auto in_new_code = [&](std::uintptr_t address) {
            return m_new_schema && std::any_of(m_new_schema->functions.begin(), m_new_schema->functions.end(),
                                               [&](const schema::Function &function) { return function.holds(address - m_new->bias); });
        };
        bool started_threads = false;
        registry().for_each([&](ThreadRecord &thread) {
            started_threads |= in_new_code(reinterpret_cast<std::uintptr_t>(thread.start));
        });
        if (started_threads) {
            m_report.error += "; the new version stays loaded but unused (quarantined: its constructors started threads)";
            return;
        }
        m_heap.reset();
        m_converter.reset();
        m_new_schema = nullptr;
        unload_version(m_new);
        m_new = nullptr;
    }

    // Every signal's disposition as the old version left it, and back after a failed restart:
    // a handler the new code installed on its way would otherwise run new code on old state
    // (Molt's own wake signal is left alone).
    void save_signal_dispositions()
    {
        m_saved_signals.assign(NSIG, {});
        for (int number = 1; number < NSIG; ++number)
            if (number != SIGKILL && number != SIGSTOP && number != wake_signal())
                sigaction(number, nullptr, &m_saved_signals[number]);
    }

    void restore_signal_dispositions()
    {
        for (int number = 1; number < static_cast<int>(m_saved_signals.size()); ++number)
            if (number != SIGKILL && number != SIGSTOP && number != wake_signal())
                sigaction(number, &m_saved_signals[number], nullptr);
    }

    // ---- commit -------------------------------------------------------------------------------

    // The old version will never run again, nor be updated from: its schema (megabytes for a
    // real program) goes, with the conversion state that points into it.
    void forget_old_schema()
    {
        m_heap.reset();
        m_converter.reset();
        m_old_schema = nullptr;
        m_old->schema.reset();
    }

    // After the commit and outside the pause, what the old version's state occupied is given
    // back: the old copies of converted heap objects are freed, and the pages of its variables
    // (a server's big static tables) are released, so that a server updated a hundred times does
    // not carry a hundred old states. Nothing of it is read again: every pointer Molt knew of
    // was redirected, and old code jumps to new code. --keep-old-state is for a program that may
    // still reach old objects through pointers Molt cannot see (void *, integers). Called on the
    // post-commit runtime thread of the lowest priority (run_in_background).
    void reclaim_old_state()
    {
        auto start = Clock::now();
        if (m_keep_old_state) {
            report_progress("reclaim", 0, "the old version's heap objects and variables are kept (--keep-old-state)");
            return;
        }
        try {
            if (m_heap) {
                transform::HeapConverter::Reclaimed reclaimed = m_heap->free_old_blocks();
                m_report.old_blocks_freed = reclaimed.blocks;
                m_report.old_bytes_freed = reclaimed.bytes;
                m_report.old_blocks_kept = reclaimed.kept;
            }
            m_report.old_variable_bytes_released = release_variable_pages(
                *m_old_schema, m_old->bias, [this](const schema::Variable &variable) { return m_heap && m_heap->keeps(&variable); });
        } catch (const std::exception &) {  // out of memory: what is not freed stays (the update is committed)
        }
        std::string detail = std::to_string(m_report.old_blocks_freed) + " old heap blocks freed (" +
                             std::to_string(m_report.old_bytes_freed) + " bytes), " +
                             std::to_string(m_report.old_variable_bytes_released / 1024) +
                             " KiB of old variables released";
        if (m_report.old_blocks_kept)
            detail += "; " + std::to_string(m_report.old_blocks_kept) + " blocks not allocated through Molt kept";
        report_progress("reclaim", milliseconds(start, Clock::now()), detail);
    }

    void commit()
    {
        remove_crash_handlers();
        set_current_version(m_new);
        committed_generation().store(m_generation);
        end_pending();  // first, as in resume_old
        // The pause ends here: the threads are let go in this loop. (Not after it: a thread let
        // go may take this core at once, and the time it then runs is not a pause.)
        m_released_at = Clock::now();
        registry().for_each([&](ThreadRecord &thread) {
            bool restarted = std::find(m_parked.begin(), m_parked.end(), &thread) != m_parked.end();
            ThreadState state = thread.current_state();
            if (restarted && state != ThreadState::Restarting && state != ThreadState::Switching) {
                // The old version's frames: never resumed now. Every restarted thread has reached
                // an update point of the new version (Arrived, or already Running: it may have
                // seen the commit before this loop sent it), so none still reads its old stack.
                m_old_stacks.push_back(thread.previous_stack);  // unmapped after the pause
                thread.previous_stack = {};
                thread.old_locals.clear();
            }
            if (restarted && thread.restart_start) {
                thread.start = thread.restart_start;
                thread.arg = thread.restart_arg;
            }
            if (state == ThreadState::Arrived)
                send(thread, Command::Commit);
            else if (state == ThreadState::Parked)  // a thread the new version started
                send(thread, Command::Resume);
        });
    }

    std::string m_path;
    std::chrono::milliseconds m_timeout;
    bool m_keep_old_state;
    bool m_restart_rolled_back = false;  // its report says what runs now
    bool m_quarantined = false;  // the new version's code ran before the update failed: it stays loaded
    bool m_verify;
    const ProgressCallback &m_progress;
    UpdateReport m_report;
    std::string m_detail;
    Clock::time_point m_pause_start;

    Version *m_old = nullptr;
    Version *m_new = nullptr;
    const schema::Schema *m_old_schema = nullptr;
    const schema::Schema *m_new_schema = nullptr;
    std::unique_ptr<schema::Schema> m_loaded_schema;
    std::unique_ptr<transform::ValueConverter> m_converter;
    std::unique_ptr<HelperThread> m_second;  // for the transform's second halves, when it uses two
    transform::ValueConverter::Parallel m_halves;  // runs them there (while it is there)
    std::unique_ptr<TransformerWatchdog> m_watchdog;  // when the new version has transformers
    bool m_many_roots = false;  // the roots hold thousands of pointers whose pointees changed
    std::vector<Stack> m_spare_stacks;  // for the restart, mapped in prepare (prepare_stacks)
    struct HeldProgress {
        std::string name;
        double ms;
        std::string detail;
    };
    std::vector<HeldProgress> m_held_progress;  // the pause's phases' lines, sent when it ends
    bool m_in_pause = false;
    std::unique_ptr<transform::HeapConverter> m_heap;  // after m_converter: destroyed first
    std::map<std::string, molt_transformer_function> m_variable_transformers;  // by qualified name
    std::vector<Migration> m_migrations;
    std::map<std::uintptr_t, std::string> m_old_function_names;   // run-time address -> qualified name
    std::map<std::uintptr_t, std::uintptr_t> m_function_remap;    // old run-time address -> new
    std::map<std::uintptr_t, std::uint64_t> m_old_function_sizes;  // old run-time address -> bytes
    std::vector<ThreadRecord *> m_parked;
    std::vector<Stack> m_old_stacks;
    std::vector<struct sigaction> m_saved_signals;  // before the restart (save_signal_dispositions)
    Clock::time_point m_released_at;  // when the commit lets the threads go: the end of the pause  // the old frames of restarted threads, released after the commit
    int m_generation = 0;
};

}  // namespace

UpdateReport update_to(const std::string &path, const UpdateOptions &options, const ProgressCallback &progress)
{
    std::unique_lock lock(update_mutex(), std::try_to_lock);
    if (!lock.owns_lock()) {
        UpdateReport refused;
        refused.phase = "prepare";
        refused.to_path = path;
        refused.error = "another update of this process is running: try again when it ends";
        return refused;
    }
    Transaction transaction(path, options, progress);
    RunningUpdateScope running(path, transaction.started_at_ms());
    transaction.number(running.id());
    if (options.accepted)
        options.accepted(running.id());
    return transaction.run();
}

std::size_t kept_reports()
{
    static const std::size_t kept = [] {
        const char *chosen = std::getenv("MOLT_HISTORY");
        long value = chosen ? std::strtol(chosen, nullptr, 10) : 100;
        return static_cast<std::size_t>(value >= 1 ? value : 100);
    }();
    return kept;
}

std::vector<UpdateReport> update_history()
{
    std::lock_guard lock(history_mutex());
    return {history().begin(), history().end()};
}

std::size_t updates_attempted()
{
    std::lock_guard lock(history_mutex());
    return g_attempts;
}

bool carry_local(ThreadRecord &thread, const char *function, const char *name, void *address, std::size_t size)
{
    // The conversion may run a transformer (the new version's code): a restart that outlives its
    // deadline takes the thread back from inside it, and the lock with it (threads.h).
    MoltLockHeld held(thread, g_active_mutex);
    return g_active && g_active->carry_local(thread, function, name, address, size);
}

int wake_fd()
{
    static int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return fd;
}

std::string start_routine_name(const ThreadRecord &thread)
{
    if (thread.is_main)
        return "main";
    Version &version = current_version();
    auto address = reinterpret_cast<std::uintptr_t>(thread.start);
    if (version.schema)
        for (const schema::Function &function : version.schema->functions)
            if (version.address(function.address) == address)
                return function.qualified_name;
    return hex(address);
}

}  // namespace molt::runtime
