// Live updates of real processes: fixtures built at test time (gcc and clang, -O0 and -O2),
// started, updated with the molt tool, and checked from outside (/proc: threads, fds, sockets)
// and from inside (each fixture prints what it sees and verifies its own state).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <cstring>
#include <fstream>
#include <map>
#include <regex>
#include <random>
#include <thread>

#include "fixture_build.h"
#include "live_process.h"

namespace molt::testing {
namespace {

// A new path on every call: --gtest_repeat runs a test again in the same scratch directory,
// where the last run's ready file and log would answer before the new fixture has started.
std::string unique_path(const std::string &name)
{
    static int made = 0;
    const auto *info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string test = std::string(info->test_suite_name()) + "." + info->name();
    std::replace(test.begin(), test.end(), '/', '_');
    return scratch_directory() + "/" + test + "-" + std::to_string(++made) + "-" + name;
}

std::string executable(const std::string &fixture, const Toolchain &toolchain, const std::string &flags)
{
    return build({fixture}, toolchain, flags + " " + runtime_flags());
}

std::string shared_object(const std::string &fixture, const Toolchain &toolchain, const std::string &flags)
{
    return build({fixture}, toolchain, flags + " " + shared_object_flags());
}

int count_matching(const std::vector<std::string> &lines, const std::string &pattern)
{
    std::regex wanted(pattern);
    return static_cast<int>(std::count_if(lines.begin(), lines.end(),
                                          [&](const std::string &line) { return std::regex_search(line, wanted); }));
}

// Whether the log gains more than `more` lines matching `pattern` from now on: the process runs.
bool keeps_printing(const std::string &log, const std::string &pattern, int more)
{
    int before = count_matching(read_lines(log), pattern);
    return wait_until([&] { return count_matching(read_lines(log), pattern) > before + more; });
}

// The new version checked its whole state when it started: "V2 <fixture> PASS", once.
void expect_new_version_passes(const std::string &log, const std::string &fixture)
{
    ASSERT_TRUE(wait_until([&] { return count_matching(read_lines(log), "^V2 " + fixture) == 1; })) << read_text(log);
    EXPECT_EQ(count_matching(read_lines(log), "^V2 " + fixture + " PASS"), 1) << read_text(log);
}

// A number of `molt status --json PID` (with --heap when asked) by its member's name (the first
// such member), or -1.
long status_number(const std::string &pid, const std::string &member, bool heap = false)
{
    std::smatch found;
    std::vector<std::string> arguments{"status", "--json", pid};
    if (heap)
        arguments.push_back("--heap");
    std::string status = molt_tool(arguments).out;
    return std::regex_search(status, found, std::regex("\"" + member + "\": *([0-9]+)")) ? std::stol(found[1].str()) : -1;
}

// The heap in use as the allocator counts it (`molt status --heap`).
long heap_bytes_in_use(const std::string &pid) { return status_number(pid, "bytes_in_use", true); }

// The heap in use as a baseline, while the program frees and allocates as it runs: a fixture that
// frees a block and then allocates one of the same size (heap_state.c's churn) reads low by that
// block when asked between the two, and a leak test would count the block as grown. The highest
// of a few readings is the true figure.
long settled_heap_bytes_in_use(const std::string &pid)
{
    long highest = -1;
    for (int reading = 0; reading < 5; ++reading) {
        highest = std::max(highest, heap_bytes_in_use(pid));
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return highest;
}

// A field of /proc/PID/status by its name ("VmRSS", in kB; "Threads"), or -1.
long proc_status_field(const std::string &pid, const std::string &field)
{
    std::ifstream status("/proc/" + pid + "/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind(field + ":", 0) == 0)
            return std::stol(line.substr(field.size() + 1));
    return -1L;
}

// Whether process `pid` has `path` open (one of its descriptors leads to it).
bool holds_open(pid_t pid, const std::string &path)
{
    std::error_code error;
    std::filesystem::path wanted = std::filesystem::weakly_canonical(path, error);
    for (const auto &entry : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", error))
        if (std::filesystem::read_symlink(entry.path(), error) == wanted)
            return true;
    return false;
}

// The pid a fixture wrote into its ready file (first word), once it has closed that file: its
// words arrive as it closes it, and a test that counts the fixture's descriptors from then on
// counted that one too, now and then (FailedUpdatesLeakNoMemoryThreadsOrFds: "9 fds; before: 10").
pid_t ready_pid(const std::string &ready)
{
    pid_t pid = 0;
    EXPECT_TRUE(wait_until([&] {
        std::ifstream in(ready);
        return static_cast<bool>(in >> pid);
    })) << "the fixture never wrote " << ready;
    EXPECT_TRUE(wait_until([&] { return !holds_open(pid, ready); })) << "the fixture never closed " << ready;
    return pid;
}

// A fixture program started with a log file and a ready file (its usage: PROGRAM LOG READY),
// returned once it has written its pid into the ready file.
struct Fixture {
    std::string log, ready;
    std::unique_ptr<LiveProcess> process;
};

Fixture start_fixture(const std::string &binary)
{
    Fixture fixture{unique_path("log"), unique_path("ready"), nullptr};
    fixture.process = std::make_unique<LiveProcess>(std::vector<std::string>{binary, fixture.log, fixture.ready});
    ready_pid(fixture.ready);
    return fixture;
}

// Fixture `source` built as v1 (an executable, -DV=1 and `v1_defines`) and as v2 (a shared
// object, -DV=2 and `v2_defines`); v1 started, then updated to v2 by `molt update`.
struct UpdatedFixture {
    Fixture fixture;
    ToolResult update;
};
UpdatedFixture start_and_update(const std::string &source, const Toolchain &toolchain, const std::string &v1_defines,
                                const std::string &v2_defines)
{
    std::string v1 = executable(source, toolchain, "-DV=1 " + v1_defines);
    std::string v2 = shared_object(source, toolchain, "-DV=2 " + v2_defines);
    Fixture fixture = start_fixture(v1);
    ToolResult update = molt_tool({"update", std::to_string(fixture.process->pid()), v2});
    return {std::move(fixture), std::move(update)};
}

// heap_state built with `v1_defines` (after -DV=1), updated to it built with `v2_defines` (after
// -DV=2): the update succeeds, its report says `converted` (when not empty), and v2's checks pass.
void expect_heap_update_converts(const Toolchain &toolchain, const std::string &v1_defines,
                                 const std::string &v2_defines, const std::string &converted)
{
    auto [fixture, update] = start_and_update("runtime/heap_state.c", toolchain, v1_defines, v2_defines);
    ASSERT_EQ(update.status, 0) << update.out << update.err;
    if (!converted.empty()) {
        EXPECT_NE(update.out.find(converted), std::string::npos) << update.out;
    }
    expect_new_version_passes(fixture.log, "heap");
}

// The counter fixture's count, in whichever version's format: every printed count is the one
// before plus one (never reset, repeated or skipped across updates and rollbacks).
void expect_count_unbroken(const std::string &log)
{
    long previous = 0;
    for (const std::string &line : read_lines(log)) {
        long count = 0, rounds = 0;
        if (std::sscanf(line.c_str(), "v1 count %ld rounds %ld", &count, &rounds) == 2 ||
            std::sscanf(line.c_str(), "v2: count=%ld rounds=%ld", &count, &rounds) == 2 ||
            std::sscanf(line.c_str(), "v3 [%ld] %ld", &count, &rounds) == 2) {
            EXPECT_EQ(count, previous + 1) << line;
            previous = count;
        }
    }
}

const Toolchain all_toolchains[] = {
    {"gcc", "-O0", "gcc_O0"}, {"gcc", "-O2", "gcc_O2"}, {"clang", "-O0", "clang_O0"}, {"clang", "-O2", "clang_O2"}};

// ---- single thread: the count goes on, in the new format, MOLT_LOCAL carried ----------------

class CounterUpdate : public ::testing::TestWithParam<Toolchain> {};

TEST_P(CounterUpdate, ContinuesFromTheSameCountInTheNewFormat)
{
    const Toolchain &toolchain = GetParam();
    std::string v1 = executable("runtime/counter.c", toolchain, "-DV=1");
    std::string v2 = shared_object("runtime/counter.c", toolchain, "-DV=2");
    Fixture fixture = start_fixture(v1);
    const std::string &log = fixture.log;
    LiveProcess &process = *fixture.process;
    ASSERT_TRUE(wait_until([&] { return count_matching(read_lines(log), "^v1 count") >= 10; }));

    ToolResult update = molt_tool({"update", std::to_string(process.pid()), v2});
    ASSERT_EQ(update.status, 0) << update.out << update.err;
    EXPECT_NE(update.out.find("updated: process"), std::string::npos);
    EXPECT_NE(update.out.find("locals carried 1"), std::string::npos) << update.out;
    ASSERT_TRUE(wait_until([&] { return count_matching(read_lines(log), "^v2: count=") >= 10; }));

    // The count and the MOLT_LOCAL go on from where v1 left them: no reset, no gap, no repeat.
    std::vector<std::string> lines = read_lines(log);
    long last_v1 = 0, first_v2 = 0, first_v2_rounds = 0;
    for (const std::string &line : lines) {
        long count = 0, rounds = 0;
        if (std::sscanf(line.c_str(), "v1 count %ld rounds %ld", &count, &rounds) == 2)
            last_v1 = count;
        if (!first_v2 && std::sscanf(line.c_str(), "v2: count=%ld rounds=%ld", &count, &rounds) == 2) {
            first_v2 = count;
            first_v2_rounds = rounds;
        }
    }
    EXPECT_EQ(first_v2, last_v1 + 1);
    EXPECT_EQ(first_v2_rounds, first_v2);
    EXPECT_EQ(count_matching(lines, "^start V2 updating=1 from=1"), 1);
    EXPECT_TRUE(process.alive());
}

INSTANTIATE_TEST_SUITE_P(Toolchains, CounterUpdate, ::testing::ValuesIn(all_toolchains),
                         [](const auto &info) { return info.param.label; });

// A MOLT_LOCAL that cannot be converted (a char array shortened to exactly its string: the NUL
// would go) is not carried over, with a warning, and keeps the value the new version gave it:
// not the first characters, which a conversion failing half-way had left there.
TEST(LocalNotCarried, KeepsTheNewVersionsValueWhole)
{
    auto [fixture, update] = start_and_update("runtime/counter.c", {"gcc", "-O0", "gcc_O0"}, "-DLOCAL_NAME", "-DLOCAL_NAME");
    ASSERT_EQ(update.status, 0) << update.out << update.err;
    EXPECT_NE(update.out.find("warning: MOLT_LOCAL main#name: the array shrank from 8 to 5 characters, and its string "
                              "of 5 fills it without its terminating NUL: not carried over"),
              std::string::npos)
        << update.out;
    EXPECT_NE(update.out.find("locals carried 1"), std::string::npos) << update.out;  // rounds
    ASSERT_TRUE(wait_until([&] { return count_matching(read_lines(fixture.log), "^v2 name=") >= 3; }));
    // One reading of the log for both counts: the process goes on writing to it.
    std::vector<std::string> lines = read_lines(fixture.log);
    EXPECT_EQ(count_matching(lines, "^v2 name=v2v2$"), count_matching(lines, "^v2 name=")) << read_text(fixture.log);
}

// ---- six threads blocked everywhere: all continue in v2, same OS threads ---------------------

class ThreadsUpdate : public ::testing::TestWithParam<Toolchain> {};

std::map<std::string, std::string> tids_of_version(const std::vector<std::string> &lines, int version)
{
    std::map<std::string, std::string> tids;
    std::regex started("^V" + std::to_string(version) + " (\\w+) tid=(\\d+)");
    std::smatch match;
    for (const std::string &line : lines)
        if (std::regex_search(line, match, started))
            tids[match[1]] = match[2];
    return tids;
}

TEST_P(ThreadsUpdate, EveryThreadContinuesInTheNewVersionOnTheSameOsThread)
{
    const Toolchain &toolchain = GetParam();
    std::string v1 = executable("runtime/threads.c", toolchain, "-DV=1");
    std::string v2 = shared_object("runtime/threads.c", toolchain, "-DV=2");
    Fixture fixture = start_fixture(v1);
    const std::string &log = fixture.log;
    LiveProcess &process = *fixture.process;
    ASSERT_TRUE(wait_until([&] { return tids_of_version(read_lines(log), 1).size() == 6; }));
    int threads_before = process.threads(), fds_before = process.open_fds();

    ToolResult update = molt_tool({"update", std::to_string(process.pid()), v2});
    ASSERT_EQ(update.status, 0) << update.out << update.err;
    EXPECT_NE(update.out.find("threads 6"), std::string::npos) << update.out;
    ASSERT_TRUE(wait_until([&] { return tids_of_version(read_lines(log), 2).size() == 6; })) << read_text(log);

    std::vector<std::string> lines = read_lines(log);
    EXPECT_EQ(tids_of_version(lines, 1), tids_of_version(lines, 2));  // acceptor, reader, poller, sleeper, waiter, main
    EXPECT_EQ(count_matching(lines, "^V2 \\w+ tid=\\d+ updating=1"), 6);
    EXPECT_EQ(count_matching(lines, "^V2 state PASS"), 1) << read_text(log);
    // The control connection's thread and socket go away just after the tool has its answer.
    EXPECT_TRUE(wait_until([&] { return process.threads() == threads_before; })) << process.threads();
    EXPECT_TRUE(wait_until([&] { return process.open_fds() == fds_before; })) << process.open_fds();

    ToolResult status = molt_tool({"status", std::to_string(process.pid())});
    EXPECT_NE(status.out.find(v2), std::string::npos);
    EXPECT_NE(status.out.find("threads.c/waiter"), std::string::npos);
    EXPECT_NE(status.out.find("last update point: pthread_cond_wait"), std::string::npos) << status.out;
}

INSTANTIATE_TEST_SUITE_P(Toolchains, ThreadsUpdate, ::testing::ValuesIn(all_toolchains),
                         [](const auto &info) { return info.param.label; });

// ---- a client connected across the update ----------------------------------------------------

std::string exchange(int fd, const std::string &line)
{
    if (write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
        return "<write failed>";
    char answer[600];
    ssize_t got = read(fd, answer, sizeof answer - 1);
    return got > 0 ? std::string(answer, static_cast<std::size_t>(got)) : "<closed>";
}

TEST(EchoUpdate, TheSameConnectionGetsItsNextReplyFromTheNewVersion)
{
    Toolchain toolchain{"gcc", "-O2", "gcc_O2"};
    std::string v1 = executable("runtime/echo.c", toolchain, "-DV=1");
    std::string v2 = shared_object("runtime/echo.c", toolchain, "-DV=2");
    std::string ready = unique_path("ready");
    LiveProcess process({v1, ready});
    ready_pid(ready);
    int port = 0, listen_fd = -1;
    {
        std::ifstream in(ready);
        pid_t pid;
        in >> pid >> port >> listen_fd;
    }
    int client = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(client, reinterpret_cast<sockaddr *>(&address), sizeof address), 0);
    EXPECT_EQ(exchange(client, "hello\n"), "v1 hello\n");
    std::string listening_before = process.fd_target(listen_fd);
    int fds_before = process.open_fds();

    ToolResult update = molt_tool({"update", std::to_string(process.pid()), v2});
    ASSERT_EQ(update.status, 0) << update.out << update.err;

    EXPECT_EQ(exchange(client, "again\n"), "v2 again\n");  // same connection, new code
    EXPECT_EQ(process.fd_target(listen_fd), listening_before);  // same listening socket (inode)
    EXPECT_TRUE(wait_until([&] { return process.open_fds() == fds_before; })) << process.open_fds();
    int second = socket(AF_INET, SOCK_STREAM, 0);  // and it still accepts
    ASSERT_EQ(connect(second, reinterpret_cast<sockaddr *>(&address), sizeof address), 0);
    EXPECT_EQ(exchange(second, "new\n"), "v2 new\n");
    close(second);
    close(client);
}

// ---- streaks -----------------------------------------------------------------------------------

TEST(UpdateStreak, V1ToV2ToV3AndBackToV1)
{
    Toolchain toolchain{"clang", "-O2", "clang_O2"};
    std::string v1 = executable("runtime/counter.c", toolchain, "-DV=1");
    std::string v2 = shared_object("runtime/counter.c", toolchain, "-DV=2");
    std::string v3 = shared_object("runtime/counter.c", toolchain, "-DV=3");
    std::string v1_again = shared_object("runtime/counter.c", toolchain, "-DV=1");
    Fixture fixture = start_fixture(v1);
    const std::string &log = fixture.log;
    LiveProcess &process = *fixture.process;
    const char *formats[] = {"^v2: count=", "^v3 \\[", "^v1 count"};
    std::string targets[] = {v2, v3, v1_again};
    for (int step = 0; step < 3; ++step) {
        int before = count_matching(read_lines(log), formats[step]);
        ToolResult update = molt_tool({"update", std::to_string(process.pid()), targets[step]});
        ASSERT_EQ(update.status, 0) << update.out << update.err;
        ASSERT_TRUE(wait_until([&] { return count_matching(read_lines(log), formats[step]) > before + 5; }));
    }
    // The count never went back: every printed count is larger than the one before.
    expect_count_unbroken(log);
}

TEST(UpdateStreak, HundredsOfUpdatesLeaveNoThreadsFdsOrStacksBehind)
{
    Toolchain toolchain{"gcc", "-O2", "gcc_O2"};
    std::string v1 = executable("runtime/threads.c", toolchain, "-DV=1");
    std::string v2 = shared_object("runtime/threads.c", toolchain, "-DV=2");
    std::string v3 = shared_object("runtime/threads.c", toolchain, "-DV=3");
    Fixture fixture = start_fixture(v1);
    const std::string &log = fixture.log;
    LiveProcess &process = *fixture.process;
    ASSERT_TRUE(wait_until([&] { return tids_of_version(read_lines(log), 1).size() == 6; }));
    ASSERT_EQ(molt_tool({"update", std::to_string(process.pid()), v2}).status, 0);
    ASSERT_TRUE(wait_until([&] { return process.threads() == 7; }));  // six threads and the control listener
    int threads = process.threads(), fds = process.open_fds(), stacks = process.stack_mappings();
    for (int i = 0; i < 100; ++i) {
        ToolResult update = molt_tool({"update", std::to_string(process.pid()), i % 2 ? v2 : v3});
        ASSERT_EQ(update.status, 0) << "update " << i << ": " << update.out << update.err;
    }
    EXPECT_TRUE(wait_until([&] { return process.threads() == threads; })) << process.threads();
    EXPECT_TRUE(wait_until([&] { return process.open_fds() == fds; })) << process.open_fds();
    // Each restarted thread's stack (8 MiB) is released at the next commit: leaking them would
    // add 6 per update, 600 here. The slack is glibc's cache of exited threads' stacks, which the
    // control connections' short-lived threads fill (40 MiB: at most 5).
    EXPECT_LE(process.stack_mappings(), stacks + 5);
    // And as the runtime counts them: one stack per restarted thread, nothing more.
    ToolResult status = molt_tool({"status", "--json", std::to_string(process.pid())});
    EXPECT_NE(status.out.find("\"stacks\": 6,"), std::string::npos) << status.out.substr(0, 300);
    std::vector<std::string> lines = read_lines(log);
    EXPECT_EQ(count_matching(lines, "state PASS"), 102);
    EXPECT_EQ(count_matching(lines, "state FAIL"), 0);
}

TEST(UpdateStreak, UpdatingToTheSameVersionChangesNothingObservable)
{
    Toolchain toolchain{"gcc", "-O0", "gcc_O0"};
    std::string v1 = executable("runtime/counter.c", toolchain, "-DV=1");
    std::string v2 = shared_object("runtime/counter.c", toolchain, "-DV=2");
    Fixture fixture = start_fixture(v1);
    const std::string &log = fixture.log;
    LiveProcess &process = *fixture.process;
    ASSERT_EQ(molt_tool({"update", std::to_string(process.pid()), v2}).status, 0);
    ASSERT_EQ(molt_tool({"update", std::to_string(process.pid()), v2}).status, 0);
    ASSERT_TRUE(keeps_printing(log, "^v2: count=", 5));
    expect_count_unbroken(log);
}

// ---- refusals and failures: the old version keeps running ------------------------------------

// gcc -O2 moves a call to a cold function into the routine's split-off part (`spinner.cold`):
// the thread stuck there is still named by the routine (the schema keeps the function's parts).
TEST(UpdateFailure, AThreadStuckInAColdPartIsNamedByItsFunction)
{
    Toolchain toolchain{"gcc", "-O2", "gcc_O2"};
    std::string v1 = executable("runtime/counter.c", toolchain, "-DV=1 -DSTUCK -DSTUCK_COLD");
    std::string v2 = shared_object("runtime/counter.c", toolchain, "-DV=2 -DSTUCK -DSTUCK_COLD");
    ASSERT_NE(run("nm " + v1).find(" spinner.cold"), std::string::npos) << "gcc no longer splits spinner";
    Fixture fixture = start_fixture(v1);
    ToolResult update = molt_tool({"update", "--timeout", "0.5", std::to_string(fixture.process->pid()), v2});
    EXPECT_EQ(update.status, 1);
    EXPECT_NE(update.err.find("did not reach an update point within 500 ms"), std::string::npos) << update.err;
    EXPECT_NE(update.err.find("counter.c/wait_while_stuck <- counter.c/spinner"), std::string::npos) << update.err;
    EXPECT_TRUE(fixture.process->alive());
}

TEST(UpdateFailure, QuiescenceDeadlineNamesTheThreadAndV1KeepsRunning)
{
    Toolchain toolchain{"gcc", "-O0", "gcc_O0"};
    std::string v1 = executable("runtime/counter.c", toolchain, "-DV=1 -DSTUCK");
    std::string v2 = shared_object("runtime/counter.c", toolchain, "-DV=2 -DSTUCK");
    Fixture fixture = start_fixture(v1);
    const std::string &log = fixture.log;
    LiveProcess &process = *fixture.process;
    ToolResult update = molt_tool({"update", "--timeout", "0.5", std::to_string(process.pid()), v2});
    EXPECT_EQ(update.status, 1);
    EXPECT_NE(update.err.find("update failed in quiesce"), std::string::npos) << update.err;
    EXPECT_NE(update.err.find("did not reach an update point within 500 ms"), std::string::npos) << update.err;
    EXPECT_NE(update.err.find("counter.c/spinner"), std::string::npos) << update.err;  // named from the schema
    EXPECT_NE(update.err.find("the old version keeps running"), std::string::npos);
    ASSERT_TRUE(keeps_printing(log, "^v1 count", 5));
    EXPECT_EQ(count_matching(read_lines(log), "^v2"), 0);
    ToolResult status = molt_tool({"status", std::to_string(process.pid())});
    EXPECT_NE(status.out.find("failed"), std::string::npos) << status.out;
}

// `molt status` shows the resident memory, the kernel's figure, and asks the allocator for the heap
// in use only with --heap: glibc counts it under its arenas' locks, stalling the program.
TEST(Status, ShowsResidentMemoryAndTheHeapOnlyWhenAsked)
{
    Toolchain toolchain{"gcc", "-O0", "gcc_O0"};
    std::string v1 = executable("runtime/counter.c", toolchain, "-DV=1");
    Fixture fixture = start_fixture(v1);
    std::string pid = std::to_string(fixture.process->pid());

    ToolResult plain = molt_tool({"status", pid});
    EXPECT_EQ(plain.status, 0) << plain.err;
    EXPECT_TRUE(std::regex_search(plain.out, std::regex("memory: [0-9.]+ MB resident, [0-9.]+ MB of it anonymous")))
        << plain.out;
    EXPECT_EQ(plain.out.find("heap in use"), std::string::npos) << plain.out;
    std::string json = molt_tool({"status", "--json", pid}).out;
    EXPECT_EQ(json.find("\"heap\""), std::string::npos) << json;
    long resident = status_number(pid, "resident_bytes"), anonymous = status_number(pid, "resident_anonymous_bytes");
    long kernel = proc_status_field(pid, "VmRSS") * 1024;
    EXPECT_GT(anonymous, 0);
    EXPECT_LE(anonymous, resident);
    EXPECT_GT(resident, kernel / 2) << "VmRSS " << kernel;  // the same figure, read a moment apart
    EXPECT_LT(resident, kernel * 2) << "VmRSS " << kernel;

    ToolResult asked = molt_tool({"status", "--heap", pid});
    EXPECT_TRUE(std::regex_search(asked.out, std::regex("heap in use: [0-9.]+ MB \\((glibc|AddressSanitizer) allocator\\)")))
        << asked.out;
    EXPECT_GT(heap_bytes_in_use(pid), 0);
}

TEST(UpdateFailure, AMissingStartRoutineIsRefusedBeforeThePause)
{
    Toolchain toolchain{"gcc", "-O0", "gcc_O0"};
    std::string v1 = executable("runtime/counter.c", toolchain, "-DV=1 -DHELPER");
    std::string v2 = shared_object("runtime/counter.c", toolchain, "-DV=2");  // no helper
    // molt check cannot see the running threads, but it points at the removed function.
    ToolResult check = molt_tool({"check", v1, v2});
    EXPECT_EQ(check.status, 0) << check.out << check.err;
    EXPECT_NE(check.out.find("warning: function counter.c/helper is removed and has a thread start routine's prototype"),
              std::string::npos)
        << check.out;
    Fixture fixture = start_fixture(v1);
    LiveProcess &process = *fixture.process;
    ToolResult update = molt_tool({"update", std::to_string(process.pid()), v2});
    EXPECT_EQ(update.status, 1);
    EXPECT_NE(update.err.find("update failed in prepare"), std::string::npos) << update.err;
    EXPECT_NE(update.err.find("runs counter.c/helper, which the new version does not have"), std::string::npos)
        << update.err;
    EXPECT_TRUE(process.alive());
}

class BadNewVersion : public ::testing::Test {
protected:
    void SetUp() override
    {
        Toolchain toolchain{"gcc", "-O0", "gcc_O0"};
        std::string v1 = executable("runtime/counter.c", toolchain, "-DV=1");
        m_log = unique_path("log");
        std::string ready = unique_path("ready");
        m_process = std::make_unique<LiveProcess>(std::vector<std::string>{v1, m_log, ready});
        ready_pid(ready);
    }
    // The update is refused with `message`, and v1 goes on counting.
    void expect_refused(const std::string &new_version, const std::string &message, int status = 1)
    {
        ToolResult update = molt_tool({"update", std::to_string(m_process->pid()), new_version});
        EXPECT_EQ(update.status, status) << update.out << update.err;
        EXPECT_NE(update.err.find(message), std::string::npos) << update.err;
        EXPECT_TRUE(keeps_printing(m_log, "^v1 count", 3));
        EXPECT_EQ(count_matching(read_lines(m_log), "^v2"), 0);
    }
    std::string m_log;
    std::unique_ptr<LiveProcess> m_process;
};

TEST_F(BadNewVersion, MissingFile) { expect_refused(unique_path("nothing.so"), "No such file or directory", 2); }

TEST_F(BadNewVersion, NotElf)
{
    std::string text = unique_path("text.so");
    write_text(text, "not a shared object\n");
    expect_refused(text, "not an ELF file", 2);
}

TEST_F(BadNewVersion, AnotherArchitecture)
{
    std::string source = unique_path("tiny.c");
    write_text(source, "int main(void) { return 0; }\n");
    std::string object = unique_path("arm.so");
    int status = 0;
    run("clang --target=aarch64-linux-gnu -g -fPIC -c " + source + " -o " + object, &status);
    ASSERT_EQ(status, 0);
    expect_refused(object, "built for aarch64", 2);
}

TEST_F(BadNewVersion, NoDebugInformation)
{
    std::string object = build({"runtime/counter.c"}, {"gcc", "-O0 -g0", "gcc_nog"}, "-DV=2 " + shared_object_flags());
    expect_refused(object, "no DWARF in the file: build with -g", 2);
}

TEST_F(BadNewVersion, NoMain)
{
    std::string source = unique_path("library.c");
    write_text(source, "int helper_value = 3;\nint helper(void) { return helper_value; }\n");
    std::string object = unique_path("library.so");
    int status = 0;
    run("gcc -g -fPIC -shared " + source + " -o " + object, &status);
    ASSERT_EQ(status, 0);
    expect_refused(object, "has no main");
}

TEST_F(BadNewVersion, UnresolvedSymbol)
{
    std::string object = build({"runtime/counter.c"}, {"gcc", "-O0", "gcc_O0"},
                               "-DV=2 -Dfprintf=molt_no_such_function " + shared_object_flags());
    expect_refused(object, "cannot load");
}

TEST_F(BadNewVersion, AMissingLibrary)
{
    // Linked against a library that the process finds neither by rpath nor in the system's paths.
    std::string directory = unique_path("libraries");
    std::filesystem::create_directories(directory);
    write_text(directory + "/extra.c", "int molt_test_extra(void) { return 1; }\n");
    int status = 0;
    run("gcc -fPIC -shared " + directory + "/extra.c -o " + directory + "/libmoltextra.so", &status);
    ASSERT_EQ(status, 0);
    std::string object = build({"runtime/counter.c"}, {"gcc", "-O0", "gcc_O0"},
                               "-DV=2 " + shared_object_flags() + " -Wl,--no-as-needed -L" + directory + " -lmoltextra");
    expect_refused(object, "libmoltextra.so: cannot open shared object file");
}

TEST_F(BadNewVersion, AConstructorThatRefuses)
{
    std::string object = build({"runtime/counter.c"}, {"gcc", "-O0", "gcc_O0"}, "-DV=2 -DREFUSE " + shared_object_flags());
    expect_refused(object, "its constructor refused the update: the configuration file is missing");
    EXPECT_EQ(read_text("/proc/" + std::to_string(m_process->pid()) + "/maps").find(object), std::string::npos);
}

TEST_F(BadNewVersion, WritableByOthers)
{
    std::string object = unique_path("writable.so");
    std::filesystem::copy_file(shared_object("runtime/counter.c", {"gcc", "-O0", "gcc_O0"}, "-DV=2"), object);
    chmod(object.c_str(), 0666);
    expect_refused(object, "writable by other users");
}

TEST(UpdateTarget, ProcessThatDoesNotExistOrHasNoRuntime)
{
    std::string v2 = shared_object("runtime/counter.c", {"gcc", "-O0", "gcc_O0"}, "-DV=2");
    ToolResult missing = molt_tool({"update", "999999999", v2});
    EXPECT_EQ(missing.status, 2);
    EXPECT_NE(missing.err.find("no such process"), std::string::npos) << missing.err;
    LiveProcess plain({"/bin/sleep", "30"}, Program::plain);
    ASSERT_TRUE(wait_until([&] { return plain.alive(); }));
    ToolResult no_runtime = molt_tool({"update", std::to_string(plain.pid()), v2});
    EXPECT_EQ(no_runtime.status, 2);
    EXPECT_NE(no_runtime.err.find("does not run the Molt runtime"), std::string::npos) << no_runtime.err;
    EXPECT_TRUE(plain.alive());
    ToolResult bad_pid = molt_tool({"status", "twelve"});
    EXPECT_EQ(bad_pid.status, 2);
}

// ---- the control socket as an attacker or a broken client sees it ----------------------------

std::string raw_request(pid_t pid, const std::string &bytes, bool as_nobody = false)
{
    int pipe_fds[2];
    if (pipe(pipe_fds) != 0)
        return "<pipe>";
    pid_t child = fork();
    if (child == 0) {
        close(pipe_fds[0]);
        if (as_nobody) {
            passwd *nobody = getpwnam("nobody");
            if (!nobody || setgid(nobody->pw_gid) != 0 || setuid(nobody->pw_uid) != 0)
                _exit(3);
        }
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::string name = "molt." + std::to_string(pid);
        std::memcpy(address.sun_path + 1, name.data(), name.size());
        if (connect(fd, reinterpret_cast<sockaddr *>(&address),
                    static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size())) != 0)
            _exit(4);
        for (std::size_t sent = 0; sent < bytes.size();) {
            ssize_t wrote = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
            if (wrote <= 0)
                break;
            sent += static_cast<std::size_t>(wrote);
        }
        char answer[4096];
        ssize_t got = recv(fd, answer, sizeof answer, 0);
        if (got > 0 && write(pipe_fds[1], answer, static_cast<std::size_t>(got)) < 0)
            _exit(5);
        _exit(0);
    }
    close(pipe_fds[1]);
    std::string answer;
    char buffer[4096];
    ssize_t got;
    while ((got = read(pipe_fds[0], buffer, sizeof buffer)) > 0)
        answer.append(buffer, static_cast<std::size_t>(got));
    close(pipe_fds[0]);
    waitpid(child, nullptr, 0);
    return answer;
}

class ControlSocket : public ::testing::Test {
protected:
    void SetUp() override
    {
        std::string v1 = executable("runtime/counter.c", {"gcc", "-O0", "gcc_O0"}, "-DV=1");
        std::string ready = unique_path("ready");
        m_process = std::make_unique<LiveProcess>(std::vector<std::string>{v1, unique_path("log"), ready});
        ready_pid(ready);
    }
    void TearDown() override { EXPECT_TRUE(m_process->alive()) << "the process died"; }
    std::unique_ptr<LiveProcess> m_process;
};

TEST_F(ControlSocket, MalformedRequestsGetAnErrorAndChangeNothing)
{
    pid_t pid = m_process->pid();
    EXPECT_NE(raw_request(pid, "this is not json\n").find("malformed request"), std::string::npos);
    EXPECT_NE(raw_request(pid, "{\"protocol\": 99, \"command\": \"status\"}\n").find("unsupported protocol"),
              std::string::npos);
    EXPECT_NE(raw_request(pid, "{\"protocol\": 1, \"command\": \"explode\"}\n").find("unknown command"),
              std::string::npos);
    EXPECT_NE(raw_request(pid, "{\"protocol\": 1, \"command\": \"update\", \"path\": \"relative.so\"}\n")
                  .find("absolute"),
              std::string::npos);
    EXPECT_NE(raw_request(pid, std::string(100 * 1024, 'x')).find("request longer than"), std::string::npos);
    EXPECT_NE(raw_request(pid, "{\"protocol\": 1, \"command\": \"status\"}\n").find("\"ok\":true"), std::string::npos);
}

TEST_F(ControlSocket, AnotherUserIsRefused)
{
    if (geteuid() != 0)
        GTEST_SKIP() << "needs root to connect as another user";
    std::string answer = raw_request(m_process->pid(), "{\"protocol\": 1, \"command\": \"status\"}\n", true);
    EXPECT_NE(answer.find("permission denied"), std::string::npos) << answer;
}

TEST_F(ControlSocket, ASecondUpdateWhileOneRunsIsRefused)
{
    Toolchain toolchain{"gcc", "-O0", "gcc_O0"};
    std::string stuck_v1 = executable("runtime/counter.c", toolchain, "-DV=1 -DSTUCK");
    std::string stuck_v2 = shared_object("runtime/counter.c", toolchain, "-DV=2 -DSTUCK");
    std::string ready = unique_path("stuck-ready");
    LiveProcess stuck({stuck_v1, unique_path("stuck-log"), ready});
    ready_pid(ready);
    ToolResult first;
    std::thread slow([&] { first = molt_tool({"update", "--timeout", "1.5", std::to_string(stuck.pid()), stuck_v2}); });
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    ToolResult second = molt_tool({"update", std::to_string(stuck.pid()), stuck_v2});
    slow.join();
    EXPECT_EQ(second.status, 1);
    EXPECT_NE(second.err.find("another update of this process is running"), std::string::npos) << second.err;
    EXPECT_EQ(first.status, 1);  // the stuck thread: quiescence failed, v1 runs on
    EXPECT_TRUE(stuck.alive());
}

// Asks process `pid` to update to `path` and hangs up at once, without reading the answer.
void request_update_and_hang_up(pid_t pid, const std::string &path)
{
    std::string request = "{\"protocol\": 1, \"command\": \"update\", \"path\": \"" + path + "\"}\n";
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::string name = "molt." + std::to_string(pid);
    std::memcpy(address.sun_path + 1, name.data(), name.size());
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr *>(&address),
                      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size())),
              0);
    ASSERT_EQ(send(fd, request.data(), request.size(), MSG_NOSIGNAL), static_cast<ssize_t>(request.size()));
    close(fd);
}

TEST_F(ControlSocket, AClientThatLeavesMidUpdateDoesNotStopIt)
{
    std::string v2 = shared_object("runtime/counter.c", {"gcc", "-O0", "gcc_O0"}, "-DV=2");
    request_update_and_hang_up(m_process->pid(), v2);
    EXPECT_TRUE(wait_until([&] {
        return molt_tool({"status", std::to_string(m_process->pid())}).out.find("runs " + v2) != std::string::npos;
    }));
}

// ---- heap conversion ----------------------------------------------------------------------------

class HeapConversion : public ::testing::TestWithParam<Toolchain> {};

TEST_P(HeapConversion, ListsRingsArraysTablesAndSharedNodesAreConverted)
{
    const Toolchain &toolchain = GetParam();
    std::string v1 = executable("runtime/heap_state.c", toolchain, "-DV=1");
    std::string v2 = shared_object("runtime/heap_state.c", toolchain, "-DV=2");
    Fixture fixture = start_fixture(v1);
    const std::string &log = fixture.log;
    LiveProcess &process = *fixture.process;
    ToolResult update = molt_tool({"update", std::to_string(process.pid()), v2});
    ASSERT_EQ(update.status, 0) << update.out << update.err;
    // 1000 list nodes, 100 ring elements, 40 items, 64 bucket pointers and 500 table nodes.
    EXPECT_NE(update.out.find("heap: 1704 objects converted"), std::string::npos) << update.out;
    // The transform phase says how long finding the objects and converting them took.
    EXPECT_TRUE(std::regex_search(update.out, std::regex("1704 heap objects converted \\(found in [0-9.]+ ms, "
                                                         "converted in [0-9.]+ ms\\)")))
        << update.out;
    ASSERT_TRUE(wait_until([&] { return count_matching(read_lines(log), "^V2 heap") == 1; }));
    std::vector<std::string> lines = read_lines(log);
    EXPECT_EQ(count_matching(lines, "^V2 heap PASS"), 1) << read_text(log);
    EXPECT_EQ(count_matching(lines, "FAIL"), 0) << read_text(log);
}

// After the commit the old copies are freed (the fixture then reuses that memory and checks its
// state again); back and forth, each update frees what the one before converted; with
// --keep-old-state nothing is freed.
TEST(HeapConversion, TheOldCopiesAreFreedAfterTheCommitUnlessKept)
{
    Toolchain toolchain{"gcc", "-O2", "gcc_O2"};
    std::string v1 = executable("runtime/heap_state.c", toolchain, "-DV=1");
    std::string v1_again = shared_object("runtime/heap_state.c", toolchain, "-DV=1");
    std::string v2 = shared_object("runtime/heap_state.c", toolchain, "-DV=2");
    Fixture fixture = start_fixture(v1);
    const std::string &log = fixture.log;
    LiveProcess &process = *fixture.process;
    std::string pid = std::to_string(process.pid());
    for (int round = 0; round < 3; ++round) {
        ToolResult forth = molt_tool({"update", pid, v2});
        ASSERT_EQ(forth.status, 0) << forth.out << forth.err;
        // The 1704 objects are 1000 + 100 + 1 + 1 + 500 blocks (the items and the buckets are
        // one block each), all allocated through Molt.
        EXPECT_NE(forth.out.find("1602 old heap blocks freed ("), std::string::npos) << forth.out;
        ToolResult back = molt_tool({"update", pid, v1_again});
        ASSERT_EQ(back.status, 0) << back.out << back.err;
        EXPECT_NE(back.out.find("1602 old heap blocks freed ("), std::string::npos) << back.out;
    }
    ToolResult kept = molt_tool({"update", "--keep-old-state", pid, v2});
    ASSERT_EQ(kept.status, 0) << kept.out << kept.err;
    EXPECT_EQ(kept.out.find("freed"), std::string::npos) << kept.out;
    EXPECT_NE(kept.out.find("heap objects and variables are kept (--keep-old-state)"), std::string::npos) << kept.out;
    ASSERT_TRUE(wait_until([&] { return count_matching(read_lines(log), "^V[12] heap") == 8; })) << read_text(log);
    std::this_thread::sleep_for(std::chrono::milliseconds(600));  // several re-checks after the churn
    EXPECT_EQ(count_matching(read_lines(log), "^V[12] heap PASS"), 8) << read_text(log);
    EXPECT_EQ(count_matching(read_lines(log), "FAIL"), 0) << read_text(log);
}

// The same heap with a transformer for its nodes that must run alone (not declared parallel):
// this thread converts the 41,000 nodes while the helper converts the other blocks, and every
// object is converted once.
TEST(HeapConversion, BlocksWhoseTransformerRunsAloneAreConvertedBesideTheShared)
{
    expect_heap_update_converts({"gcc", "-O2", "gcc_O2"}, "-DBIG", "-DBIG -DCAMPAIGN", "heap: 45236 objects converted");
}

// Before the pause, the update maps and touches memory for the new copies (half the process's
// anonymous resident memory, here mostly a 64 MB block nothing converts): what the conversion
// does not take is given back after a failed update and after a committed one: the heap in use
// as the runtime counts it (its segments with it) and the process's resident memory come back to
// within a few megabytes (the new copies, the old ones glibc keeps for reuse), not 30 more.
TEST(HeapConversion, MemoryMadeReadyForTheCopiesIsGivenBack)
{
    std::ifstream meminfo("/proc/meminfo");
    std::string name;
    long free_kb = 0;
    while (meminfo >> name && name != "MemFree:")
        meminfo.ignore(256, '\n');
    meminfo >> free_kb;
    if (free_kb < 512 * 1024)  // the update makes ready at most an eighth of the free memory
        GTEST_SKIP() << "less than 512 MB of free memory";
    Toolchain toolchain{"gcc", "-O2", "gcc_O2"};
    std::string v1 = executable("runtime/heap_state.c", toolchain, "-DV=1 -DBIG -DBALLAST");
    std::string narrowing = shared_object("runtime/heap_state.c", toolchain, "-DV=2 -DBIG -DBALLAST -DNARROW");
    std::string v2 = shared_object("runtime/heap_state.c", toolchain, "-DV=2 -DBIG -DBALLAST");
    Fixture fixture = start_fixture(v1);
    std::string pid = std::to_string(fixture.process->pid());
    auto resident_mb = [&] { return proc_status_field(pid, "VmRSS") / 1024; };
    // The heap in use as the runtime counts it (its segments included, touched or not): a segment
    // not given back stays in it.
    auto heap_mb = [&] { return heap_bytes_in_use(pid) >> 20; };
    long before = resident_mb(), heap_before = heap_mb();
    auto ready_mb = [](const std::string &out) {
        std::smatch match;
        return std::regex_search(out, match, std::regex("([0-9]+) MB ready for the new copies")) ? std::stol(match[1]) : 0L;
    };

    ToolResult failed = molt_tool({"update", pid, narrowing});
    ASSERT_EQ(failed.status, 1) << failed.out << failed.err;
    EXPECT_GE(ready_mb(failed.out), 24) << failed.out;
    EXPECT_LT(heap_mb() - heap_before, 12) << "MB of heap still in use after a failed update";
    if (!under_sanitizers) {  // their allocator keeps freed memory in quarantine
        EXPECT_LT(resident_mb() - before, 12) << "MB still resident after a failed update";
    }

    ToolResult update = molt_tool({"update", pid, v2});
    ASSERT_EQ(update.status, 0) << update.out << update.err;
    EXPECT_GE(ready_mb(update.out), 24) << update.out;
    EXPECT_NE(update.out.find("heap: 45236 objects converted"), std::string::npos) << update.out;
    EXPECT_LT(heap_mb() - heap_before, 12) << "MB of heap still in use after the update";
    if (!under_sanitizers) {
        EXPECT_LT(resident_mb() - before, 12) << "MB still resident after the update";
    }
    expect_new_version_passes(fixture.log, "heap");
}

// Enough nodes for the discovery to go on two threads, with links between the nodes each thread
// follows: every node is claimed by one of them and converted once (the exact count), and v2 finds
// every link leading to the right node. Back and forth, three times.
TEST(HeapConversion, TwoDiscoveryThreadsConvertEachSharedNodeOnce)
{
    Toolchain toolchain{"gcc", "-O2", "gcc_O2"};
    std::string v1 = executable("runtime/heap_state.c", toolchain, "-DV=1 -DBIG");
    std::string v1_again = shared_object("runtime/heap_state.c", toolchain, "-DV=1 -DBIG");
    std::string v2 = shared_object("runtime/heap_state.c", toolchain, "-DV=2 -DBIG");
    Fixture fixture = start_fixture(v1);
    std::string pid = std::to_string(fixture.process->pid());
    for (int round = 0; round < 3; ++round) {
        for (const std::string &next : {v2, v1_again}) {
            ToolResult update = molt_tool({"update", pid, next});
            ASSERT_EQ(update.status, 0) << update.out << update.err;
            // 1000 list nodes, 100 ring elements, 40 items, 4096 bucket pointers, 40,000 table nodes.
            EXPECT_NE(update.out.find("heap: 45236 objects converted"), std::string::npos) << update.out;
        }
    }
    // v1's own check at the start, then one by each version updated to.
    ASSERT_TRUE(wait_until([&] { return count_matching(read_lines(fixture.log), "^V[12] heap") == 7; }))
        << read_text(fixture.log);
    EXPECT_EQ(count_matching(read_lines(fixture.log), "^V[12] heap PASS"), 7) << read_text(fixture.log);
    EXPECT_EQ(count_matching(read_lines(fixture.log), "FAIL"), 0) << read_text(fixture.log);
}

// When no second thread can be made (MOLT_FAULT=transform.no_helper_thread), the pause's halves
// run one after the other on the update's thread, discovery's two walkers too: the first, seeing
// the second not started, ends alone, and the second then follows its whole queue. Every object
// is converted once, and the update does not wait for a walker that never runs.
TEST(HeapConversion, WithoutASecondThreadTheHalvesRunOneAfterTheOther)
{
    Toolchain toolchain{"gcc", "-O2", "gcc_O2"};
    std::string v1 = executable("runtime/heap_state.c", toolchain, "-DV=1 -DBIG");
    std::string v2 = shared_object("runtime/heap_state.c", toolchain, "-DV=2 -DBIG");
    std::string log = unique_path("log"), ready = unique_path("ready");
    setenv("MOLT_FAULT", "transform.no_helper_thread", 1);  // the fixture inherits it
    LiveProcess process({v1, log, ready});
    unsetenv("MOLT_FAULT");
    std::string pid = std::to_string(ready_pid(ready));
    ToolResult update = molt_tool({"update", "--timeout", "20", pid, v2});
    ASSERT_EQ(update.status, 0) << update.out << update.err;
    EXPECT_NE(update.out.find("heap: 45236 objects converted"), std::string::npos) << update.out;
    expect_new_version_passes(log, "heap");
}

// A global whose big arrays hold big arrays: the update converts the outer array in two halves
// on two threads, and each inner one asks for two halves again from inside a half (the helper
// thread is busy then: those run one after the other). Back and forth three times.
TEST(HeapConversion, BigArraysInsideABigArrayOfAGlobalAreConverted)
{
    Toolchain toolchain{"gcc", "-O2", "gcc_O2"};
    std::string v1 = executable("runtime/heap_state.c", toolchain, "-DV=1 -DNESTED");
    std::string v1_again = shared_object("runtime/heap_state.c", toolchain, "-DV=1 -DNESTED");
    std::string v2 = shared_object("runtime/heap_state.c", toolchain, "-DV=2 -DNESTED");
    Fixture fixture = start_fixture(v1);
    std::string pid = std::to_string(fixture.process->pid());
    for (int round = 0; round < 3; ++round)
        for (const std::string &next : {v2, v1_again}) {
            ToolResult update = molt_tool({"update", "--timeout", "20", pid, next});
            ASSERT_EQ(update.status, 0) << update.out << update.err;
        }
    ASSERT_TRUE(wait_until([&] { return count_matching(read_lines(fixture.log), "^V[12] heap") == 7; }))
        << read_text(fixture.log);
    EXPECT_EQ(count_matching(read_lines(fixture.log), "^V[12] heap PASS"), 7) << read_text(fixture.log);
    EXPECT_EQ(count_matching(read_lines(fixture.log), "FAIL"), 0) << read_text(fixture.log);
}

INSTANTIATE_TEST_SUITE_P(Toolchains, HeapConversion, ::testing::ValuesIn(all_toolchains),
                         [](const auto &info) { return info.param.label; });

TEST(HeapConversionFailure, AValueThatDoesNotFitLeavesV1IntactAndALaterUpdateWorks)
{
    Toolchain toolchain{"gcc", "-O2", "gcc_O2"};
    std::string v1 = executable("runtime/heap_state.c", toolchain, "-DV=1");
    std::string narrowing = shared_object("runtime/heap_state.c", toolchain, "-DV=2 -DNARROW");
    std::string v2 = shared_object("runtime/heap_state.c", toolchain, "-DV=2");
    Fixture fixture = start_fixture(v1);
    const std::string &log = fixture.log;
    LiveProcess &process = *fixture.process;
    ToolResult refused = molt_tool({"update", std::to_string(process.pid()), narrowing});
    EXPECT_EQ(refused.status, 1);
    EXPECT_NE(refused.err.find("update failed in transform"), std::string::npos) << refused.err;
    EXPECT_NE(refused.err.find("does not fit in signed char"), std::string::npos) << refused.err;
    EXPECT_NE(refused.err.find("the old version keeps running"), std::string::npos) << refused.err;
    std::this_thread::sleep_for(std::chrono::milliseconds(400));  // v1 checks its state every 50 rounds
    ToolResult update = molt_tool({"update", std::to_string(process.pid()), v2});
    ASSERT_EQ(update.status, 0) << update.out << update.err;
    ASSERT_TRUE(wait_until([&] { return count_matching(read_lines(log), "^V2 heap") == 1; }));
    EXPECT_EQ(count_matching(read_lines(log), "FAIL"), 0) << read_text(log);
    EXPECT_EQ(count_matching(read_lines(log), "^V2 heap PASS"), 1);
}

// ---- programmer transformers -------------------------------------------------------------------

class Transformers : public ::testing::TestWithParam<Toolchain> {
protected:
    // v2 reads v1's objects through the header `molt old-types` writes for v1.
    std::string v2_with_old_types(const std::string &v1, const std::string &extra)
    {
        std::string directory = unique_path("old-types");
        std::filesystem::create_directories(directory);
        ToolResult header = molt_tool({"old-types", v1, "-o", directory + "/old_types.h"});
        EXPECT_EQ(header.status, 0) << header.err;
        return shared_object("runtime/transformed.c", GetParam(), "-DV=2 -I" + directory + " " + extra);
    }
};

TEST_P(Transformers, TypeAndVariableTransformersFinishTheConversion)
{
    std::string v1 = executable("runtime/transformed.c", GetParam(), "-DV=1");
    std::string v2 = v2_with_old_types(v1, "");
    ToolResult check = molt_tool({"check", v1, v2});
    EXPECT_EQ(check.status, 0) << check.out;
    EXPECT_NE(check.out.find("covered by a transformer: struct entry.value: int -> char *"), std::string::npos) << check.out;
    EXPECT_NE(check.out.find("covered by a transformer: variable transformed.c/counter: int -> double"), std::string::npos)
        << check.out;
    Fixture fixture = start_fixture(v1);
    const std::string &log = fixture.log;
    LiveProcess &process = *fixture.process;
    ToolResult update = molt_tool({"update", std::to_string(process.pid()), v2});
    ASSERT_EQ(update.status, 0) << update.out << update.err;
    expect_new_version_passes(log, "transformed");
    // The same version again (a redeploy): no type changed, so no transformer runs; run again,
    // they would read v2's values as v1's (the counter's double as an int, the pinned entry's
    // string pointer as a number) and v2's check would fail.
    EXPECT_EQ(molt_tool({"check", v2, v2}).out.find("covered by"), std::string::npos);
    ToolResult again = molt_tool({"update", std::to_string(process.pid()), v2});
    ASSERT_EQ(again.status, 0) << again.out << again.err;
    EXPECT_NE(again.out.find("0 converted"), std::string::npos) << again.out;
    ASSERT_TRUE(wait_until([&] { return count_matching(read_lines(log), "^V2 transformed") == 2; })) << read_text(log);
    EXPECT_EQ(count_matching(read_lines(log), "FAIL"), 0) << read_text(log);
}

TEST_P(Transformers, AFailingTransformerLeavesV1IntactAndALaterUpdateWorks)
{
    std::string v1 = executable("runtime/transformed.c", GetParam(), "-DV=1");
    std::string failing = v2_with_old_types(v1, "-DFAIL");
    std::string v2 = v2_with_old_types(v1, "");
    Fixture fixture = start_fixture(v1);
    const std::string &log = fixture.log;
    LiveProcess &process = *fixture.process;
    ToolResult refused = molt_tool({"update", std::to_string(process.pid()), failing});
    EXPECT_EQ(refused.status, 1);
    EXPECT_NE(refused.err.find("transformer failed: entry 5 refused on purpose"), std::string::npos) << refused.err;
    EXPECT_NE(refused.err.find("the old version keeps running"), std::string::npos);
    ToolResult update = molt_tool({"update", std::to_string(process.pid()), v2});
    ASSERT_EQ(update.status, 0) << update.out << update.err;
    ASSERT_TRUE(wait_until([&] { return count_matching(read_lines(log), "^V2 transformed") == 1; }));
    EXPECT_EQ(count_matching(read_lines(log), "FAIL"), 0) << read_text(log);
}

// After failed updates of transformed.c: v2 never ran, a correct v2 then goes through and finds
// v1's whole state converted.
void v2_runs_after_the_failures(const Fixture &fixture, const std::string &v2)
{
    EXPECT_EQ(count_matching(read_lines(fixture.log), "^V2"), 0);
    ToolResult update = molt_tool({"update", std::to_string(fixture.process->pid()), v2});
    ASSERT_EQ(update.status, 0) << update.out << update.err;
    ASSERT_TRUE(wait_until([&] { return count_matching(read_lines(fixture.log), "^V2 transformed") == 1; }));
    EXPECT_EQ(count_matching(read_lines(fixture.log), "FAIL"), 0) << read_text(fixture.log);
}

// A transformer that crashes (a null write, a division by zero, abort(); a type's or a variable's)
// fails the update, naming the signal; v1 goes on with its state, and a correct update works.
TEST_P(Transformers, ACrashingTransformerFailsTheUpdateAndV1GoesOn)
{
    std::string v1 = executable("runtime/transformed.c", GetParam(), "-DV=1");
    std::string v2 = v2_with_old_types(v1, "");
    Fixture fixture = start_fixture(v1);
    std::string pid = std::to_string(fixture.process->pid());
    for (auto [define, signal] : {std::pair{"-DCRASH_SEGV", "SEGV"}, std::pair{"-DCRASH_FPE", "FPE"},
                                  std::pair{"-DCRASH_ABORT", "ABRT"}, std::pair{"-DCRASH_VARIABLE", "SEGV"}}) {
        std::string crashing = v2_with_old_types(v1, define);
        ToolResult refused = molt_tool({"update", pid, crashing});
        EXPECT_EQ(refused.status, 1) << define << refused.out;
        EXPECT_NE(refused.err.find(std::string("transformer crashed with ") + signal), std::string::npos)
            << define << ": " << refused.err;
        EXPECT_NE(refused.err.find("the old version keeps running"), std::string::npos) << refused.err;
        ASSERT_TRUE(fixture.process->alive()) << define;
    }
    v2_runs_after_the_failures(fixture, v2);
}

// A transformer that never returns (a busy loop, a pause() for ever; a type's or a variable's)
// would keep every thread parked: the watchdog abandons it at the update's --timeout, the update
// fails saying so, v1 goes on with its state, and a correct update works.
TEST_P(Transformers, AHungTransformerIsAbandonedAtTheTimeout)
{
    std::string v1 = executable("runtime/transformed.c", GetParam(), "-DV=1");
    std::string v2 = v2_with_old_types(v1, "");
    Fixture fixture = start_fixture(v1);
    std::string pid = std::to_string(fixture.process->pid());
    for (const char *define : {"-DHANG_SPIN", "-DHANG_BLOCKED", "-DHANG_VARIABLE"}) {
        std::string hanging = v2_with_old_types(v1, define);
        ToolResult refused = molt_tool({"update", "--timeout", "0.4", pid, hanging});
        EXPECT_EQ(refused.status, 1) << define << refused.out;
        EXPECT_NE(refused.err.find("update failed in transform"), std::string::npos) << define << ": " << refused.err;
        EXPECT_NE(refused.err.find("transformer did not return within 400 ms (the update's --timeout) and was abandoned"),
                  std::string::npos)
            << define << ": " << refused.err;
        EXPECT_NE(refused.err.find("the old version keeps running"), std::string::npos) << refused.err;
        ASSERT_TRUE(fixture.process->alive()) << define;
    }
    v2_runs_after_the_failures(fixture, v2);
}

// A transformer that crashes inside free() (a pointer into a block's middle: glibc aborts there,
// before it takes its lock) has shown the heap may be corrupt: the rollback frees nothing more,
// the report says so, and later updates are refused until the process is restarted. v1 goes on.
// (Not under the sanitizers: AddressSanitizer reports the bad free itself.)
TEST_P(Transformers, ACrashInsideTheAllocatorIsReportedAndLaterUpdatesRefused)
{
    if (under_sanitizers)
        GTEST_SKIP() << "AddressSanitizer owns bad frees";
    std::string v1 = executable("runtime/transformed.c", GetParam(), "-DV=1");
    std::string crashing = v2_with_old_types(v1, "-DCRASH_IN_ALLOCATOR");
    std::string v2 = v2_with_old_types(v1, "");
    Fixture fixture = start_fixture(v1);
    std::string pid = std::to_string(fixture.process->pid());
    ToolResult failed = molt_tool({"update", pid, crashing});
    EXPECT_EQ(failed.status, 1) << failed.out;
    EXPECT_NE(failed.err.find("transformer crashed with ABRT inside malloc or free"), std::string::npos) << failed.err;
    EXPECT_NE(failed.err.find("the old version keeps running"), std::string::npos) << failed.err;
    ASSERT_TRUE(fixture.process->alive());
    ToolResult refused = molt_tool({"update", pid, v2});
    EXPECT_EQ(refused.status, 1) << refused.out;
    EXPECT_NE(refused.err.find("restart the process before updating it"), std::string::npos) << refused.err;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // v1 checks its state as it goes
    EXPECT_TRUE(fixture.process->alive());
    EXPECT_EQ(count_matching(read_lines(fixture.log), "FAIL"), 0) << read_text(fixture.log);
    EXPECT_EQ(count_matching(read_lines(fixture.log), "^V2"), 0);
}

// Failed updates leak nothing: 40 of them (a transformer that refuses, one that crashes, in
// turn) leave the process with the memory, mappings (each failed version unloaded), threads and
// fds it had after the first two, and the resident memory it had after the first 20. (Until then,
// with clang -O0's fixture, it grows by 64 KB per update or so, up to 750 KB, then no more,
// mostly by the 13th update: seen since blocks carry a trailer instead of a header; not a leak,
// since the heap in use does not grow so, and the cause not yet found.)
TEST_P(Transformers, FailedUpdatesLeakNoMemoryThreadsOrFds)
{
    std::string v1 = executable("runtime/transformed.c", GetParam(), "-DV=1");
    std::string refusing = v2_with_old_types(v1, "-DFAIL");
    std::string crashing = v2_with_old_types(v1, "-DCRASH_SEGV");
    Fixture fixture = start_fixture(v1);
    std::string pid = std::to_string(fixture.process->pid());
    auto status_field = [&](const std::string &field) { return proc_status_field(pid, field); };
    auto fds = [&] { return std::distance(std::filesystem::directory_iterator("/proc/" + pid + "/fd"), {}); };
    auto mappings = [&] { return read_lines("/proc/" + pid + "/maps").size(); };
    // Threads and fds before any update (a control connection's thread and socket last a moment
    // after the tool has its answer: they are waited for).
    long threads = status_field("Threads");
    std::ptrdiff_t descriptors = fds();
    long rss = 0;
    std::size_t mapped = 0;
    for (int attempt = 0; attempt < 40; ++attempt) {
        ToolResult failed = molt_tool({"update", pid, attempt % 2 ? crashing : refusing});
        ASSERT_EQ(failed.status, 1) << failed.out << failed.err;
        if (attempt == 1)
            mapped = mappings();
        if (attempt == 20)
            rss = status_field("VmRSS");
    }
    if (!under_sanitizers) {  // their allocator keeps freed memory in quarantine
        EXPECT_LT(status_field("VmRSS") - rss, 1024) << "kB grown over the last 19 failed updates";
    }
    EXPECT_TRUE(wait_until([&] { return status_field("Threads") == threads && fds() == descriptors; }))
        << status_field("Threads") << " threads, " << fds() << " fds; before: " << threads << ", " << descriptors;
    // A leaked version would add 5 or more mappings per failure; the stacks of the control
    // socket's short-lived threads, cached by glibc, may add a couple.
    if (!under_sanitizers) {  // their allocator maps regions of its own
        EXPECT_LE(mappings(), mapped + 4);
    }
    EXPECT_EQ(count_matching(read_lines(fixture.log), "FAIL"), 0) << read_text(fixture.log);
}

TEST(TransformersMissing, WithoutTransformersTheChangeIsRefusedBeforeThePause)
{
    Toolchain toolchain{"gcc", "-O0", "gcc_O0"};
    std::string v1 = executable("runtime/transformed.c", toolchain, "-DV=1");
    std::string directory = unique_path("old-types");
    std::filesystem::create_directories(directory);
    ASSERT_EQ(molt_tool({"old-types", v1, "-o", directory + "/old_types.h"}).status, 0);
    // The same v2 built without Molt (MOLT_DISABLE): the transformer macros register nothing.
    std::string bare = shared_object("runtime/transformed.c", toolchain,
                                     "-DV=2 -DMOLT_DISABLE -I" + directory + " -Wno-unused-function");
    ToolResult check = molt_tool({"check", v1, bare});
    EXPECT_EQ(check.status, 1);
    EXPECT_NE(check.out.find("struct entry.value: int -> char *: needs a transformer"), std::string::npos) << check.out;
    EXPECT_NE(check.out.find("variable transformed.c/counter: int -> double: needs a transformer"), std::string::npos)
        << check.out;
}

INSTANTIATE_TEST_SUITE_P(Toolchains, Transformers, ::testing::ValuesIn(all_toolchains),
                         [](const auto &info) { return info.param.label; });

// ---- renames ---------------------------------------------------------------------------------

class Renames : public ::testing::TestWithParam<Toolchain> {};

TEST_P(Renames, ARenamedTypeMemberAndVariableKeepTheirValues)
{
    const Toolchain &toolchain = GetParam();
    std::string v1 = executable("runtime/renamed.c", toolchain, "-DV=1");
    std::string v2 = shared_object("runtime/renamed.c", toolchain, "-DV=2");
    std::string bare = shared_object("runtime/renamed.c", toolchain, "-DV=2 -DMOLT_DISABLE");
    ToolResult without = molt_tool({"check", v1, bare});
    EXPECT_EQ(without.status, 1);  // without the declarations, struct entry simply became struct item
    EXPECT_NE(without.out.find("struct entry became struct item"), std::string::npos) << without.out;
    ToolResult with = molt_tool({"check", v1, v2});
    EXPECT_EQ(with.status, 0) << with.out;
    Fixture fixture = start_fixture(v1);
    const std::string &log = fixture.log;
    LiveProcess &process = *fixture.process;
    ToolResult update = molt_tool({"update", std::to_string(process.pid()), v2});
    ASSERT_EQ(update.status, 0) << update.out << update.err;
    EXPECT_NE(update.out.find("0 new, 0 dropped"), std::string::npos) << update.out;  // sum is total, renamed
    expect_new_version_passes(log, "renamed");
}

// A variable transformer runs where the type changed, or where a rename marks a change of
// meaning: `total` becomes `sum`, counted in tenths, a long both times (v2 checks 12340).
TEST(RenamedVariable, OfTheSameTypeRunsItsTransformer)
{
    auto [fixture, update] = start_and_update("runtime/renamed.c", {"gcc", "-O2", "gcc_O2"}, "", "-DSCALED");
    ASSERT_EQ(update.status, 0) << update.out << update.err;
    expect_new_version_passes(fixture.log, "renamed");
}

INSTANTIATE_TEST_SUITE_P(Toolchains, Renames, ::testing::ValuesIn(all_toolchains),
                         [](const auto &info) { return info.param.label; });

// ---- no old code after an update ---------------------------------------------------------------

class CodeRedirection : public ::testing::TestWithParam<Toolchain> {};

TEST_P(CodeRedirection, ASignalHandlerAndAHiddenCallbackRunTheNewCode)
{
    const Toolchain &toolchain = GetParam();
    std::string v1 = executable("runtime/callbacks.c", toolchain, "-DV=1");
    std::string v2 = shared_object("runtime/callbacks.c", toolchain, "-DV=2");
    Fixture fixture = start_fixture(v1);
    const std::string &log = fixture.log;
    LiveProcess &process = *fixture.process;
    ASSERT_TRUE(wait_until([&] { return count_matching(read_lines(log), "^V1 callback") >= 3; }));
    ToolResult update = molt_tool({"update", std::to_string(process.pid()), v2});
    ASSERT_EQ(update.status, 0) << update.out << update.err;
    // v2's loop calls v1's callback through the void *: its entry now jumps to v2's callback.
    ASSERT_TRUE(keeps_printing(log, "^V2 callback", 2)) << read_text(log);
    int v1_calls = count_matching(read_lines(log), "^V1 callback");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(count_matching(read_lines(log), "^V1 callback"), v1_calls);  // never again
    kill(process.pid(), SIGUSR1);  // the handler v1 registered is v2's now
    EXPECT_TRUE(wait_until([&] { return count_matching(read_lines(log), "^V2 handler") == 1; })) << read_text(log);
    EXPECT_EQ(count_matching(read_lines(log), "^V1 handler"), 0);
}

// The new main installs a SIGUSR1 handler and crashes before its first update point: the
// rollback puts every signal's disposition back as v1 left it.
TEST(CodeRedirectionRollback, SignalHandlersTheNewCodeInstalledAreUndoneByTheRollback)
{
    Toolchain toolchain{"gcc", "-O0", "gcc_O0"};
    std::string v1 = executable("runtime/callbacks.c", toolchain, "-DV=1");
    std::string crashing = shared_object("runtime/callbacks.c", toolchain, "-DV=2 -DCRASH");
    Fixture fixture = start_fixture(v1);
    ToolResult update = molt_tool({"update", std::to_string(fixture.process->pid()), crashing});
    EXPECT_EQ(update.status, 1) << update.out;
    EXPECT_NE(update.err.find("crashed with SEGV"), std::string::npos) << update.err;
    ASSERT_TRUE(keeps_printing(fixture.log, "^V1 callback", 2)) << read_text(fixture.log);
    kill(fixture.process->pid(), SIGUSR1);
    EXPECT_TRUE(wait_until([&] { return count_matching(read_lines(fixture.log), "^V1 handler") == 1; }))
        << read_text(fixture.log);
    EXPECT_EQ(count_matching(read_lines(fixture.log), "^V2 handler"), 0);
}

INSTANTIATE_TEST_SUITE_P(Toolchains, CodeRedirection, ::testing::ValuesIn(all_toolchains),
                         [](const auto &info) { return info.param.label; });

// heap_state built with `define` makes the update fail with `reason`; v1 keeps running intact.
void expect_heap_update_refused(const std::string &define, const std::string &reason)
{
    auto [fixture, update] = start_and_update("runtime/heap_state.c", {"gcc", "-O0", "gcc_O0"}, define, define);
    const std::string &log = fixture.log;
    LiveProcess &process = *fixture.process;
    EXPECT_EQ(update.status, 1);
    EXPECT_NE(update.err.find(reason), std::string::npos) << update.err;
    EXPECT_TRUE(process.alive());
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // v1 checks its state every 50 rounds
    EXPECT_EQ(count_matching(read_lines(log), "FAIL"), 0) << read_text(log);
    EXPECT_EQ(count_matching(read_lines(log), "^V2"), 0);
}

// A write past a block's end overwrote its trailer (its size): Molt converts one object of it, as
// of a block it did not allocate, and the report says so, naming where it was reached from.
// (Not under the sanitizers: they report the write itself, the trailer being poisoned.)
TEST(HeapConversionWarning, ABlockWithRoomForMoreObjectsButNoTrailerIsReported)
{
    if (under_sanitizers)
        GTEST_SKIP() << "AddressSanitizer reports the write past the block";
    auto [fixture, update] =
        start_and_update("runtime/heap_state.c", {"gcc", "-O0", "gcc_O0"}, "-DOVERWRITTEN", "-DOVERWRITTEN");
    EXPECT_EQ(update.status, 0) << update.out << update.err;
    EXPECT_NE(update.out.find("warning: 1 heap block with room for more objects than one carries no size of Molt's "
                              "(allocated before the runtime was loaded, or a write past the block's end overwrote "
                              "its last bytes): converted as one object each; the first at 0x"),
              std::string::npos)
        << update.out;
    EXPECT_NE(update.out.find(", reached from variable overwritten"), std::string::npos) << update.out;
    ASSERT_TRUE(wait_until([&] { return count_matching(read_lines(fixture.log), "^V2 heap") >= 1; }));
    EXPECT_EQ(count_matching(read_lines(fixture.log), "FAIL"), 0) << read_text(fixture.log);
}

TEST(HeapConversionFailure, ADanglingPointerFailsTheUpdateInsteadOfCrashingTheProcess)
{
    expect_heap_update_refused("-DDANGLING", "points to unmapped or unreadable memory");
}

// Found while two threads walk the heap: the other stops, and v1 runs on with its state.
TEST(HeapConversionFailure, ADanglingPointerFoundByTwoDiscoveryThreadsFailsTheUpdate)
{
    expect_heap_update_refused("-DBIG -DDANGLING_NODE", "points to unmapped or unreadable memory");
}

// Mapped but PROT_NONE (a guard page, an arena's reserve): as unreadable as a hole.
TEST(HeapConversionFailure, APointerIntoAnUnreadableMappingFailsTheUpdateInsteadOfCrashingTheProcess)
{
    expect_heap_update_refused("-DGUARDED", "points to unmapped or unreadable memory");
}

// A char array that shrank to its string's length exactly: every dropped element is zero (the
// NUL among them), but the string would lose its end.
TEST(HeapConversionFailure, AStringThatWouldLoseItsTerminatingNulFailsTheUpdate)
{
    expect_heap_update_refused("-DSHORT_MOTTO", "variable motto: the array shrank from 16 to 8 characters, and its string of 8 fills it without its terminating NUL");
}

TEST(HeapConversionFailure, APointerIntoAMemberWhereNoMemberOfItsTypeStartsFailsTheUpdate)
{
    expect_heap_update_refused("-DBYTE", "where the new version has no member of that type to point to");
}

// Pointers to members of converted objects (an int * to an item's id, a char * into its name)
// lead to those members of the new objects, wherever the new type put them.
TEST(HeapConversion, PointersToMembersOfConvertedObjectsLeadToTheNewMembers)
{
    expect_heap_update_converts({"gcc", "-O2", "gcc_O2"}, "-DMEMBER", "-DMEMBER", "");
}

// A pointer into the middle of a converted array (followed as one item, before or after the
// array's start) leads to the same element of the new array: one copy, not two.
TEST(HeapConversion, APointerIntoTheMiddleOfAConvertedArrayLeadsToTheSameNewElement)
{
    expect_heap_update_converts({"gcc", "-O0", "gcc_O0"}, "-DINTERIOR", "-DINTERIOR", "heap: 1704 objects converted");  // not 1705
}

// ---- the default conversions, one fixture checking them all -----------------------------------

class DefaultConversions : public ::testing::TestWithParam<Toolchain> {};

// A binary tree whose node changes (member added, reordered, removed, widened), an enum
// renumbered, integers widened and narrowed in range, arrays grown and shrunk, a table of
// function pointers that calls v2's functions afterwards, globals v2 initialises otherwise (they
// hold v1's values, zero included): v2 checks the whole state.
TEST_P(DefaultConversions, TreeEnumIntegersArraysAndFunctionTablesAreConverted)
{
    const Toolchain &toolchain = GetParam();
    std::string v1 = executable("runtime/layouts.c", toolchain, "-DV=1");
    std::string v2 = shared_object("runtime/layouts.c", toolchain, "-DV=2");
    ToolResult check = molt_tool({"check", v1, v2});
    EXPECT_EQ(check.status, 0) << check.out << check.err;
    // Convertible, but what the removed members held is lost: check says so.
    EXPECT_NE(check.out.find("warning: struct tree.obsolete is removed: its values are dropped"), std::string::npos)
        << check.out;
    Fixture fixture = start_fixture(v1);
    ToolResult update = molt_tool({"update", std::to_string(fixture.process->pid()), v2});
    ASSERT_EQ(update.status, 0) << update.out << update.err;
    EXPECT_NE(update.out.find("heap: 200 objects converted"), std::string::npos) << update.out;
    // The update's report says it too (a downgrade that drops a member is no quieter than check).
    EXPECT_NE(update.out.find("warning: struct tree.obsolete is removed: its values are dropped"), std::string::npos)
        << update.out;
    expect_new_version_passes(fixture.log, "layouts");
}

INSTANTIATE_TEST_SUITE_P(Toolchains, DefaultConversions, ::testing::ValuesIn(all_toolchains),
                         [](const auto &info) { return info.param.label; });

// ---- --verify: pointers Molt could not see --------------------------------------------------

// A void * global and a void * inside a heap block lead to converted nodes: --verify names both,
// and the old nodes are kept (not freed) so that the new version does not read freed memory.
// Without such pointers, it finds none and the old copies are freed as usual.
TEST(Verify, FindsPointersStillLeadingToReplacedObjectsAndKeepsThem)
{
    Toolchain toolchain{"gcc", "-O0", "gcc_O0"};
    std::string v1 = executable("runtime/heap_state.c", toolchain, "-DV=1 -DHIDDEN");
    std::string v2 = shared_object("runtime/heap_state.c", toolchain, "-DV=2 -DHIDDEN");
    Fixture fixture = start_fixture(v1);
    ToolResult update = molt_tool({"update", "--verify", std::to_string(fixture.process->pid()), v2});
    ASSERT_EQ(update.status, 0) << update.out << update.err;
    EXPECT_NE(update.out.find("4 words still point into replaced objects (the old objects will be kept)"), std::string::npos)
        << update.out;
    EXPECT_NE(update.out.find(" + verify "), std::string::npos) << "the pause's parts leave out the scan: " << update.out;
    EXPECT_NE(update.out.find("warning: stale pointer: variable hidden (+0) points into the old struct node"),
              std::string::npos) << update.out;
    EXPECT_NE(update.out.find("warning: stale pointer: variable hidden_inside (+0) points into the old struct node"),
              std::string::npos) << update.out;
    EXPECT_NE(update.out.find("warning: stale pointer: a heap block of 8 bytes at"), std::string::npos) << update.out;
    EXPECT_TRUE(std::regex_search(update.out, std::regex("stale pointer: a heap block of 1048576 bytes at 0x[0-9a-f]+ \\(\\+524288\\)")))
        << update.out;
    EXPECT_NE(update.out.find("heap objects and variables are kept"), std::string::npos) << update.out;
    expect_new_version_passes(fixture.log, "heap");

    std::string clean_v1 = executable("runtime/heap_state.c", toolchain, "-DV=1");
    std::string clean_v2 = shared_object("runtime/heap_state.c", toolchain, "-DV=2");
    Fixture clean = start_fixture(clean_v1);
    ToolResult verified = molt_tool({"update", "--verify", std::to_string(clean.process->pid()), clean_v2});
    ASSERT_EQ(verified.status, 0) << verified.out << verified.err;
    EXPECT_NE(verified.out.find(": 0 words point into replaced objects"), std::string::npos) << verified.out;
    EXPECT_NE(verified.out.find("1602 old heap blocks freed ("), std::string::npos) << verified.out;
}

// ---- annotations: what the types cannot say ----------------------------------------------------

class Annotations : public ::testing::TestWithParam<Toolchain> {};

// A void * list and a void * global (MOLT_POINTS_TO), a vector with unused room holding garbage
// (MOLT_LENGTH_IN), a union chosen by a discriminant (MOLT_UNION_CASE), a digest whose bytes
// stay as they are (MOLT_OPAQUE): v2 checks all of it. `molt check` counts the union covered.
TEST_P(Annotations, SayWhatTheTypesCannotAndTheWholeStateIsConverted)
{
    const Toolchain &toolchain = GetParam();
    std::string v1 = executable("runtime/annotated.c", toolchain, "-DV=1");
    std::string v2 = shared_object("runtime/annotated.c", toolchain, "-DV=2");
    ToolResult check = molt_tool({"check", v1, v2});
    EXPECT_EQ(check.status, 0) << check.out << check.err;
    EXPECT_NE(check.out.find("covered by MOLT_UNION_CASE: struct shape.u"), std::string::npos) << check.out;
    EXPECT_EQ(check.out.find("struct digest.words is removed"), std::string::npos) << check.out;  // MOLT_OPAQUE
    // diff agrees: what the annotations cover is marked, and the verdict counts them in.
    ToolResult diff = molt_tool({"diff", v1, v2});
    EXPECT_NE(diff.out.find("member u: union <anonymous>: needs a transformer (the union's layout changed), covered by "
                            "MOLT_UNION_CASE"),
              std::string::npos)
        << diff.out;
    EXPECT_NE(diff.out.find("~ struct digest: copied as bytes (MOLT_OPAQUE)\n"), std::string::npos) << diff.out;
    EXPECT_EQ(diff.out.find("member words"), std::string::npos) << diff.out;
    EXPECT_NE(diff.out.find("verdict: convertible (with the new version's transformers and annotations, which 1 change needs)"),
              std::string::npos)
        << diff.out;
    Fixture fixture = start_fixture(v1);
    ToolResult update = molt_tool({"update", std::to_string(fixture.process->pid()), v2});
    ASSERT_EQ(update.status, 0) << update.out << update.err;
    // 50 listed items, 10 of the vector's 64, 20 shapes and 2 spare ones (all zero: no case
    // needed), and 50 list nodes reached on the way.
    EXPECT_NE(update.out.find("heap: 132 objects converted"), std::string::npos) << update.out;
    expect_new_version_passes(fixture.log, "annotated");
}

INSTANTIATE_TEST_SUITE_P(Toolchains, Annotations,
                         ::testing::Values(Toolchain{"gcc", "-O0", "gcc_O0"}, Toolchain{"clang", "-O2", "clang_O2"}),
                         [](const auto &info) { return info.param.label; });

// Each annotation is needed: without it the update is refused, fails, or (where the types give
// no hint: a void * or a member renamed away) v2 finds its state wrong, as the fixture shows.
TEST(Annotations, WithoutEachAnnotationTheUpdateIsRefusedOrTheStateIsWrong)
{
    Toolchain toolchain{"gcc", "-O0", "gcc_O0"};
    std::string v1 = executable("runtime/annotated.c", toolchain, "-DV=1");
    struct Case {
        int without;
        const char *refusal;  // null: the update goes through and v2 finds its state wrong
    };
    for (Case c : {Case{1, nullptr}, Case{2, "struct shape.u: needs a transformer"},
                   Case{3, "points to unmapped or unreadable memory"}, Case{4, nullptr}}) {
        std::string v2 = shared_object("runtime/annotated.c", toolchain, "-DV=2 -DWITHOUT=" + std::to_string(c.without));
        Fixture fixture = start_fixture(v1);
        ToolResult update = molt_tool({"update", std::to_string(fixture.process->pid()), v2});
        if (c.refusal) {
            EXPECT_EQ(update.status, 1) << c.without;
            EXPECT_NE(update.err.find(c.refusal), std::string::npos) << c.without << ": " << update.err;
            EXPECT_TRUE(fixture.process->alive()) << c.without;
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            EXPECT_EQ(count_matching(read_lines(fixture.log), "^V2"), 0) << c.without;
        } else {
            EXPECT_EQ(update.status, 0) << c.without << ": " << update.err;
            ASSERT_TRUE(wait_until([&] { return count_matching(read_lines(fixture.log), "^V2 annotated") == 1; }));
            EXPECT_EQ(count_matching(read_lines(fixture.log), "^V2 annotated FAIL"), 1) << c.without;
        }
        EXPECT_EQ(count_matching(read_lines(fixture.log), "^V1 annotated PASS"), 1) << c.without;
    }
}

// A mistaken annotation is refused before anything is touched, naming it.
TEST(Annotations, AnAnnotationNamingNoTypeIsRefusedBeforeThePause)
{
    Toolchain toolchain{"gcc", "-O0", "gcc_O0"};
    std::string v1 = executable("runtime/annotated.c", toolchain, "-DV=1");
    std::string v2 = shared_object("runtime/annotated.c", toolchain, "-DV=2 -DMISTAKE");
    ToolResult check = molt_tool({"check", v1, v2});
    EXPECT_EQ(check.status, 1);
    EXPECT_NE(check.out.find("annotation: MOLT_POINTS_TO(struct node, data): the new version has no type struct itme"),
              std::string::npos) << check.out;
    Fixture fixture = start_fixture(v1);
    ToolResult update = molt_tool({"update", std::to_string(fixture.process->pid()), v2});
    EXPECT_EQ(update.status, 1);
    EXPECT_NE(update.err.find("update failed in prepare"), std::string::npos) << update.err;
    EXPECT_NE(update.err.find("MOLT_POINTS_TO(struct node, data): the new version has no type struct itme"),
              std::string::npos) << update.err;
    EXPECT_TRUE(fixture.process->alive());
}

// ---- a new version that crashes or hangs before its first update point: rolled back ------------

class RestartRollback : public ::testing::TestWithParam<Toolchain> {};

TEST_P(RestartRollback, ACrashOrAHangInTheNewCodeLeavesV1RunningAndALaterUpdateWorks)
{
    const Toolchain &toolchain = GetParam();
    // v1 has HANG_LOCAL's second MOLT_LOCAL (of a struct the hanging v2 changes); the other v2s
    // have no such local, and it is dropped.
    std::string v1 = executable("runtime/counter.c", toolchain, "-DV=1 -DHANG_LOCAL");
    std::string crashing = shared_object("runtime/counter.c", toolchain, "-DV=2 -DCRASH");
    std::string hanging = shared_object("runtime/counter.c", toolchain, "-DV=2 -DHANG");
    std::string hanging_local = shared_object("runtime/counter.c", toolchain, "-DV=2 -DHANG_LOCAL");
    std::string v2 = shared_object("runtime/counter.c", toolchain, "-DV=2");
    Fixture fixture = start_fixture(v1);
    const std::string &log = fixture.log;
    LiveProcess &process = *fixture.process;
    auto v1_goes_on = [&] {
        return keeps_printing(log, "^v1 count", 5);
    };
    ToolResult crash = molt_tool({"update", std::to_string(process.pid()), crashing});
    EXPECT_EQ(crash.status, 1);
    EXPECT_NE(crash.err.find("update failed in restart"), std::string::npos) << crash.err;
    EXPECT_NE(crash.err.find("crashed with SEGV in the new version"), std::string::npos) << crash.err;
    EXPECT_NE(crash.err.find("rolled back, the old version keeps running"), std::string::npos) << crash.err;
    EXPECT_TRUE(v1_goes_on());
    // What the new code did outside the process's memory before it crashed cannot be taken back
    // (README): its line in the log file stays, and v1 goes on after it.
    EXPECT_EQ(count_matching(read_lines(log), "^start V2 updating=1"), 1) << read_text(log);
    ToolResult hang = molt_tool({"update", "--timeout", "0.3", std::to_string(process.pid()), hanging});
    EXPECT_EQ(hang.status, 1);
    EXPECT_NE(hang.err.find("did not reach an update point of the new version"), std::string::npos) << hang.err;
    EXPECT_NE(hang.err.find("rolled back"), std::string::npos) << hang.err;
    EXPECT_TRUE(v1_goes_on());
    // Taken back from inside a MOLT_LOCAL's transformer, which holds a lock of Molt's meanwhile:
    // the update ends (it waited for that lock for good before), and later ones can run.
    ToolResult hang_in_local = molt_tool({"update", "--timeout", "0.3", std::to_string(process.pid()), hanging_local});
    EXPECT_EQ(hang_in_local.status, 1);
    EXPECT_NE(hang_in_local.err.find("did not reach an update point of the new version"), std::string::npos)
        << hang_in_local.err;
    EXPECT_TRUE(v1_goes_on());
    ToolResult update = molt_tool({"update", std::to_string(process.pid()), v2});
    ASSERT_EQ(update.status, 0) << update.out << update.err;
    ASSERT_TRUE(wait_until([&] { return count_matching(read_lines(log), "^v2: count=") >= 5; }));
    // One count, never reset and never repeated, through the failed attempts and the update.
    expect_count_unbroken(log);
    ToolResult status = molt_tool({"status", std::to_string(process.pid())});
    // The history: the crash and the hangs failed in the restart, then the update went through.
    EXPECT_NE(status.out.find("updates: 4\n"), std::string::npos) << status.out;
    EXPECT_EQ(count_matching(split_lines(status.out), "^  failed .* in restart: "), 3) << status.out;
    EXPECT_EQ(count_matching(split_lines(status.out), "^  ok "), 1) << status.out;
}

INSTANTIATE_TEST_SUITE_P(Toolchains, RestartRollback,
                         ::testing::Values(Toolchain{"gcc", "-O0", "gcc_O0"}, Toolchain{"clang", "-O2", "clang_O2"}),
                         [](const auto &info) { return info.param.label; });

// The sleeper crashes so early that some threads have not taken their Restart yet when the
// rollback begins: they must stay at v1's update points, not run on a stack the rollback frees.
// A runaway recursion in the new code overflows its stack: the crash handler runs on the
// alternate signal stack Molt gives each thread, and the update rolls back.
TEST(RestartRollbackOverflow, AStackOverflowInTheNewCodeRollsBack)
{
    Toolchain toolchain{"gcc", "-O0", "gcc_O0"};
    std::string v1 = executable("runtime/counter.c", toolchain, "-DV=1");
    std::string overflowing = shared_object("runtime/counter.c", toolchain, "-DV=2 -DOVERFLOW");
    std::string v2 = shared_object("runtime/counter.c", toolchain, "-DV=2");
    Fixture fixture = start_fixture(v1);
    ToolResult failed = molt_tool({"update", std::to_string(fixture.process->pid()), overflowing});
    EXPECT_EQ(failed.status, 1) << failed.out;
    EXPECT_NE(failed.err.find("crashed with SEGV"), std::string::npos) << failed.err;
    ASSERT_TRUE(fixture.process->alive());
    ASSERT_TRUE(keeps_printing(fixture.log, "^v1 count", 5));
    ToolResult update = molt_tool({"update", std::to_string(fixture.process->pid()), v2});
    ASSERT_EQ(update.status, 0) << update.out << update.err;
    ASSERT_TRUE(keeps_printing(fixture.log, "^v2: count=", 5));
    expect_count_unbroken(fixture.log);
}

TEST(RestartRollback, OneThreadCrashingTakesEveryThreadBackToV1)
{
    Toolchain toolchain{"gcc", "-O2", "gcc_O2"};
    std::string v1 = executable("runtime/threads.c", toolchain, "-DV=1");
    std::string crashing = shared_object("runtime/threads.c", toolchain, "-DV=2 -DCRASH_SLEEPER");
    std::string v2 = shared_object("runtime/threads.c", toolchain, "-DV=2");
    Fixture fixture = start_fixture(v1);
    const std::string &log = fixture.log;
    LiveProcess &process = *fixture.process;
    ASSERT_TRUE(wait_until([&] { return tids_of_version(read_lines(log), 1).size() == 6; }));
    int threads = process.threads();
    ToolResult crash = molt_tool({"update", std::to_string(process.pid()), crashing});
    EXPECT_EQ(crash.status, 1);
    EXPECT_NE(crash.err.find("threads.c/sleeper) crashed with SEGV"), std::string::npos) << crash.err;
    // Its code ran: it stays loaded, and the report says so.
    EXPECT_NE(crash.err.find("the new version stays loaded but unused (quarantined: its code ran)"), std::string::npos)
        << crash.err;
    EXPECT_NE(read_text("/proc/" + std::to_string(process.pid()) + "/maps").find(crashing), std::string::npos);
    EXPECT_TRUE(process.alive());
    EXPECT_TRUE(wait_until([&] { return process.threads() == threads; }));
    // Back in v1, all of them: a correct update now finds six threads at v1's update points.
    // (Main may or may not have run v2 in the failed attempt, as it took its Restart before the
    // crash was seen or not: only the checks after this update are counted.)
    int checks_before = count_matching(read_lines(log), "^V2 state PASS");
    ToolResult update = molt_tool({"update", std::to_string(process.pid()), v2});
    ASSERT_EQ(update.status, 0) << update.out << update.err;
    EXPECT_NE(update.out.find("threads 6"), std::string::npos) << update.out;
    ASSERT_TRUE(wait_until([&] { return count_matching(read_lines(log), "^V2 state PASS") > checks_before; }))
        << read_text(log);
    EXPECT_EQ(count_matching(read_lines(log), "state FAIL"), 0);
}

// ---- fault injection: every named point of the transaction rolls back ------------------------------

class FaultInjection : public ::testing::TestWithParam<std::string> {};

TEST_P(FaultInjection, TheOldVersionKeepsItsStateAndTheNextUpdateWorks)
{
    Toolchain toolchain{"gcc", "-O2", "gcc_O2"};
    std::string v1 = executable("runtime/heap_state.c", toolchain, "-DV=1");
    std::string v2 = shared_object("runtime/heap_state.c", toolchain, "-DV=2");
    std::string log = unique_path("log"), ready = unique_path("ready");
    setenv("MOLT_FAULT", GetParam().c_str(), 1);  // the fixture inherits it
    LiveProcess process({v1, log, ready});
    unsetenv("MOLT_FAULT");
    ready_pid(ready);
    std::string pid = std::to_string(process.pid());
    auto stacks = [&] { return status_number(pid, "stacks"); };  // the restart stacks the runtime holds
    long stacks_before = stacks();
    ASSERT_GE(stacks_before, 0);
    std::size_t mappings_before = read_lines("/proc/" + pid + "/maps").size();
    ToolResult failed = molt_tool({"update", pid, v2});
    EXPECT_EQ(failed.status, 1) << failed.out;
    EXPECT_NE(failed.err.find("fault injected at " + GetParam()), std::string::npos) << failed.err;
    // No code of v2 ran (but its constructors): it was unloaded, not left mapped; no restart
    // stack is left, and the mappings are as before (a couple of cached thread stacks aside).
    EXPECT_EQ(read_text("/proc/" + pid + "/maps").find(v2), std::string::npos) << GetParam();
    if (!under_sanitizers) {  // their allocator maps regions of its own
        EXPECT_LE(read_lines("/proc/" + pid + "/maps").size(), mappings_before + 4) << GetParam();
    }
    EXPECT_EQ(stacks(), stacks_before) << GetParam();
    std::this_thread::sleep_for(std::chrono::milliseconds(400));  // v1 re-checks its whole state every 50 rounds
    EXPECT_EQ(count_matching(read_lines(log), "FAIL"), 0) << read_text(log);
    EXPECT_EQ(count_matching(read_lines(log), "^V2"), 0);
    ToolResult update = molt_tool({"update", std::to_string(process.pid()), v2});  // the fault fired once
    ASSERT_EQ(update.status, 0) << update.out << update.err;
    expect_new_version_passes(log, "heap");
}

// Memory that runs out during the conversion: a new object that cannot be allocated (the 500th
// of 1704), or Molt's own bookkeeping (std::bad_alloc) after discovery or while it follows the
// pointers (40,000 nodes: its queues then hold nodes in the memory mapped for them before the
// pause, which must outlive them). The update fails, saying so; the new objects made so far are
// freed; v1 goes on with its whole state; the next update works.
TEST(FaultInjectionMemory, MemoryRunningOutDuringTheConversionRollsBack)
{
    Toolchain toolchain{"gcc", "-O2", "gcc_O2"};
    for (auto [fault, reason, flags] :
         {std::tuple{"transform.allocation:500", "out of memory converting", ""},
          std::tuple{"transform.out_of_memory", "internal failure (std::bad_alloc)", ""},
          std::tuple{"transform.discovery_out_of_memory", "internal failure (std::bad_alloc)", " -DBIG"}}) {
        std::string v1 = executable("runtime/heap_state.c", toolchain, std::string("-DV=1") + flags);
        std::string v2 = shared_object("runtime/heap_state.c", toolchain, std::string("-DV=2") + flags);
        std::string log = unique_path("log"), ready = unique_path("ready");
        setenv("MOLT_FAULT", fault, 1);  // the fixture inherits it
        LiveProcess process({v1, log, ready});
        unsetenv("MOLT_FAULT");
        ready_pid(ready);
        ToolResult failed = molt_tool({"update", std::to_string(process.pid()), v2});
        EXPECT_EQ(failed.status, 1) << fault << failed.out;
        EXPECT_NE(failed.err.find(reason), std::string::npos) << fault << ": " << failed.err;
        EXPECT_NE(failed.err.find("the old version keeps running"), std::string::npos) << failed.err;
        std::this_thread::sleep_for(std::chrono::milliseconds(400));  // v1 re-checks its whole state every 50 rounds
        EXPECT_EQ(count_matching(read_lines(log), "FAIL"), 0) << read_text(log);
        ToolResult update = molt_tool({"update", std::to_string(process.pid()), v2});  // the fault fired once
        ASSERT_EQ(update.status, 0) << update.out << update.err;
        expect_new_version_passes(log, "heap");
    }
}

// The randomised campaign: the new version crashes at a random step of the conversion (its
// transformer, at a random object, by a null write or abort()) or of the restart (its main, at a
// random node of a walk), and every time the update must fail, the process live on, v1 keep its
// whole state (it checks it), and a correct update then work. MOLT_CAMPAIGN_RUNS runs (10 in
// `make test`; the `campaign` test, label long, runs 200); MOLT_CAMPAIGN_SEED repeats a run.
TEST(Campaign, CrashesAtRandomStepsAlwaysRollBackWithNothingLost)
{
    int runs = std::getenv("MOLT_CAMPAIGN_RUNS") ? std::atoi(std::getenv("MOLT_CAMPAIGN_RUNS")) : 10;
    unsigned seed = std::getenv("MOLT_CAMPAIGN_SEED") ? static_cast<unsigned>(std::atol(std::getenv("MOLT_CAMPAIGN_SEED")))
                                                      : std::random_device{}();
    std::cout << "campaign: " << runs << " runs, MOLT_CAMPAIGN_SEED=" << seed << "\n";
    std::mt19937 random(seed);
    Toolchain toolchain{"gcc", "-O2", "gcc_O2"};
    std::string v1 = executable("runtime/heap_state.c", toolchain, "-DV=1");
    std::string crashing = shared_object("runtime/heap_state.c", toolchain, "-DV=2 -DCAMPAIGN");
    std::string v2 = shared_object("runtime/heap_state.c", toolchain, "-DV=2");
    int lost = 0;
    for (int run = 0; run < runs; ++run) {
        std::string plan = random() % 3 == 0 ? "restart:" + std::to_string(1 + random() % 1000)
                                             : "transform:" + std::to_string(1 + random() % 1500) +
                                                   (random() % 2 ? ":SEGV" : ":ABRT");
        std::string log = unique_path("log"), ready = unique_path("ready");
        setenv("MOLT_CAMPAIGN", plan.c_str(), 1);  // the fixture inherits it
        LiveProcess process({v1, log, ready});
        unsetenv("MOLT_CAMPAIGN");
        ready_pid(ready);
        ToolResult failed = molt_tool({"update", std::to_string(process.pid()), crashing});
        bool rolled_back = failed.status == 1 && failed.err.find("crashed with") != std::string::npos && process.alive();
        std::this_thread::sleep_for(std::chrono::milliseconds(300));  // v1 re-checks its whole state
        bool intact = count_matching(read_lines(log), "FAIL") == 0 && count_matching(read_lines(log), "^V2") == 0;
        ToolResult update = molt_tool({"update", std::to_string(process.pid()), v2});
        bool recovered = update.status == 0 && wait_until([&] { return count_matching(read_lines(log), "^V2 heap PASS") == 1; });
        if (!rolled_back || !intact || !recovered) {
            ++lost;
            ADD_FAILURE() << "run " << run << " (" << plan << "): rolled back " << rolled_back << ", v1 intact " << intact
                          << ", later update " << recovered << "\n" << failed.err << read_text(log);
        }
    }
    EXPECT_EQ(lost, 0) << "of " << runs << " runs (MOLT_CAMPAIGN_SEED=" << seed << ")";
}

// A client that hangs up as soon as it has asked, while the update fails at each fault point:
// the update still rolls back whole (never half-done), `molt status` records the failed
// attempt, v1 keeps its state, and the next update works.
TEST_P(FaultInjection, AClientThatLeavesDoesNotLeaveTheUpdateHalfDone)
{
    Toolchain toolchain{"gcc", "-O2", "gcc_O2"};
    std::string v1 = executable("runtime/heap_state.c", toolchain, "-DV=1");
    std::string v2 = shared_object("runtime/heap_state.c", toolchain, "-DV=2");
    std::string log = unique_path("log"), ready = unique_path("ready");
    setenv("MOLT_FAULT", GetParam().c_str(), 1);  // the fixture inherits it
    LiveProcess process({v1, log, ready});
    unsetenv("MOLT_FAULT");
    ready_pid(ready);
    std::string pid = std::to_string(process.pid());
    request_update_and_hang_up(process.pid(), v2);
    ASSERT_TRUE(wait_until([&] {
        return molt_tool({"status", pid}).out.find("fault injected at " + GetParam()) != std::string::npos;
    })) << molt_tool({"status", pid}).out;
    EXPECT_TRUE(process.alive());
    std::this_thread::sleep_for(std::chrono::milliseconds(400));  // v1 re-checks its whole state every 50 rounds
    EXPECT_EQ(count_matching(read_lines(log), "FAIL"), 0) << read_text(log);
    EXPECT_EQ(count_matching(read_lines(log), "^V2"), 0);
    ToolResult update = molt_tool({"update", pid, v2});
    ASSERT_EQ(update.status, 0) << update.out << update.err;
    expect_new_version_passes(log, "heap");
}

INSTANTIATE_TEST_SUITE_P(Points, FaultInjection,
                         ::testing::Values("prepare.loaded", "quiesce.parked", "transform.heap_discovered",
                                           "transform.globals", "restart.stacks"),
                         [](const auto &info) {
                             std::string name = info.param;
                             std::replace(name.begin(), name.end(), '.', '_');
                             return name;
                         });

// ---- leaks: each kind of failure, on its own, gives back the memory, threads and fds it took ----

struct FailureKind {
    std::string label{};
    std::string fixture{};                   // under tests/fixtures/
    std::string v1_flags{}, bad_flags{};     // -DV=1 and -DV=2 are added
    std::vector<std::string> options{};      // of molt update
    std::string fault{};                     // MOLT_FAULT, at every update (MOLT_FAULT_REPEAT=1)
    bool hang_up = false;               // the client leaves without waiting for the answer
    bool quarantined = false;           // new code ran: the version stays loaded, by design
};

std::ostream &operator<<(std::ostream &out, const FailureKind &kind) { return out << kind.label; }

class FailureLeaks : public ::testing::TestWithParam<FailureKind> {};


// The process's threads and fds once they stop changing: a control connection's thread and
// socket last a moment after its answer.
std::pair<int, int> settled_threads_and_fds(const LiveProcess &process)
{
    std::pair<int, int> last{-1, -1};
    for (int round = 0; round < 100; ++round) {
        std::pair<int, int> now{process.threads(), process.open_fds()};
        if (now == last)
            break;
        last = now;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return last;
}


// The same failure, again and again: after two (the first loads the old version's schema, which
// stays; the history keeps one report), four more leave the heap, the threads and the fds as
// they were. A version whose code ran stays loaded (quarantined): its dlopen bookkeeping is
// allowed for. The old version checks its whole state throughout; a correct update then works.
TEST_P(FailureLeaks, EachKindGivesBackWhatItTook)
{
    const FailureKind &kind = GetParam();
    Toolchain toolchain{"gcc", "-O2", "gcc_O2"};
    std::string v1 = executable(kind.fixture, toolchain, "-DV=1 " + kind.v1_flags);
    std::string extra;
    if (kind.fixture == "runtime/transformed.c") {  // its v2 reads v1's objects through old-types
        std::string directory = unique_path("old-types");
        std::filesystem::create_directories(directory);
        EXPECT_EQ(molt_tool({"old-types", v1, "-o", directory + "/old_types.h"}).status, 0);
        extra = " -I" + directory;
    }
    std::string bad = shared_object(kind.fixture, toolchain, "-DV=2 " + kind.bad_flags + extra);
    // The fixture inherits these. It keeps one update report, so that the history stops growing
    // after the first attempt.
    if (!kind.fault.empty()) {
        setenv("MOLT_FAULT", kind.fault.c_str(), 1);
        setenv("MOLT_FAULT_REPEAT", "1", 1);
    }
    setenv("MOLT_HISTORY", "1", 1);
    Fixture fixture = start_fixture(v1);
    unsetenv("MOLT_FAULT");
    unsetenv("MOLT_FAULT_REPEAT");
    unsetenv("MOLT_HISTORY");
    std::string pid = std::to_string(fixture.process->pid());
    long attempts = 0;
    auto fail_once = [&] {
        int threads_before = fixture.process->threads();
        if (kind.hang_up) {
            request_update_and_hang_up(fixture.process->pid(), bad);
        } else {
            std::vector<std::string> arguments = {"update"};
            arguments.insert(arguments.end(), kind.options.begin(), kind.options.end());
            arguments.insert(arguments.end(), {pid, bad});
            ToolResult failed = molt_tool(arguments);
            EXPECT_EQ(failed.status, 1) << failed.out << failed.err;
            // The update's thread may still be ending after its answer: gone before the status
            // below is asked for (its own control thread), so that two never run at once.
            ASSERT_TRUE(wait_until([&] { return fixture.process->threads() <= threads_before; })) << kind.label;
        }
        ++attempts;
        ASSERT_TRUE(wait_until([&] { return status_number(pid, "updates_attempted") == attempts; })) << kind.label;
        // The control connection's thread is gone before the next one comes: two at once would
        // make glibc cache one more thread stack, with its TLS block (a few hundred bytes).
        ASSERT_TRUE(wait_until([&] { return fixture.process->threads() <= threads_before; })) << kind.label;
    };
    fail_once();
    fail_once();
    auto [threads, fds] = settled_threads_and_fds(*fixture.process);
    long before = settled_heap_bytes_in_use(pid);
    ASSERT_GT(before, 0);
    constexpr int repeats = 4;
    for (int i = 0; i < repeats; ++i)
        fail_once();
    auto [threads_after, fds_after] = settled_threads_and_fds(*fixture.process);
    EXPECT_EQ(threads_after, threads) << kind.label;
    EXPECT_EQ(fds_after, fds) << kind.label;
    // AddressSanitizer counts exactly: nothing may stay. glibc's count moves by a kilobyte or so
    // with its caches. A quarantined version keeps its dlopen bookkeeping (about 2 kB). A thread
    // that answered a client who hung up may still be letting go of its reply: a leak stays,
    // that does not, so the heap is asked again for a while. And when the client hangs up, the
    // test's own `molt status` may run while the update's thread is still going: with two
    // control threads at once, glibc keeps one more thread stack in its cache, with its TLS
    // block (384 bytes, once; seen in about one run in four under AddressSanitizer). The other
    // kinds wait for the update's thread to end first (above).
    long cached_stack = kind.hang_up ? 384 : 0;
    long allowed = under_sanitizers ? (kind.quarantined ? repeats * 2560 : 64 + cached_stack)
                                    : repeats * (kind.quarantined ? 4096 : 1024);
    long grown = 0;
    EXPECT_TRUE(wait_until([&] { return (grown = heap_bytes_in_use(pid) - before) < allowed; }, std::chrono::seconds(3)))
        << kind.label << ": " << grown << " bytes grown over " << repeats << " failed updates";
    std::cout << kind.label << ": heap grown by " << grown << " bytes over " << repeats << " failed updates\n";
    EXPECT_TRUE(fixture.process->alive());
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the fixtures check their state as they go
    EXPECT_EQ(count_matching(read_lines(fixture.log), "FAIL"), 0) << read_text(fixture.log);
    // Then a correct update goes through, and v2 finds the whole state right (not where the fault
    // fires at every update, or where v1's state itself makes every update fail).
    if (!kind.fault.empty() || !kind.v1_flags.empty())
        return;
    std::string good = shared_object(kind.fixture, toolchain, "-DV=2" + extra);
    ToolResult update = molt_tool({"update", pid, good});
    ASSERT_EQ(update.status, 0) << kind.label << ": " << update.out << update.err;
    const std::map<std::string, std::string> passed = {{"runtime/heap_state.c", "^V2 heap PASS"},
                                                       {"runtime/transformed.c", "^V2 transformed PASS"},
                                                       {"runtime/counter.c", "^v2: count="}};
    EXPECT_TRUE(wait_until([&] { return count_matching(read_lines(fixture.log), passed.at(kind.fixture)) >= 1; }))
        << kind.label << ": " << read_text(fixture.log);
    EXPECT_EQ(count_matching(read_lines(fixture.log), "FAIL"), 0) << read_text(fixture.log);
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, FailureLeaks,
    ::testing::Values(
        FailureKind{.label = "transformer_error", .fixture = "runtime/transformed.c", .bad_flags = "-DFAIL"},
        FailureKind{.label = "transformer_crash", .fixture = "runtime/transformed.c", .bad_flags = "-DCRASH_SEGV"},
        FailureKind{.label = "transformer_abort", .fixture = "runtime/transformed.c", .bad_flags = "-DCRASH_ABORT"},
        FailureKind{.label = "narrowing", .fixture = "runtime/heap_state.c", .bad_flags = "-DNARROW"},
        FailureKind{.label = "dangling_pointer", .fixture = "runtime/heap_state.c", .v1_flags = "-DDANGLING",
                    .bad_flags = "-DDANGLING"},
        FailureKind{.label = "allocation_fails", .fixture = "runtime/heap_state.c", .fault = "transform.allocation:500"},
        FailureKind{.label = "bookkeeping_out_of_memory", .fixture = "runtime/heap_state.c",
                    .fault = "transform.out_of_memory"},
        FailureKind{.label = "discovery_out_of_memory", .fixture = "runtime/heap_state.c",
                    .fault = "transform.discovery_out_of_memory"},
        FailureKind{.label = "restart_crash", .fixture = "runtime/counter.c", .bad_flags = "-DCRASH", .quarantined = true},
        FailureKind{.label = "restart_deadline", .fixture = "runtime/counter.c", .bad_flags = "-DHANG",
                    .options = {"--timeout", "0.3"}, .quarantined = true},
        FailureKind{.label = "quiescence_deadline", .fixture = "runtime/counter.c", .v1_flags = "-DSTUCK",
                    .bad_flags = "-DSTUCK", .options = {"--timeout", "0.3"}},
        FailureKind{.label = "unresolved_symbol", .fixture = "runtime/counter.c",
                    .bad_flags = "-Dfprintf=molt_no_such_function"},
        FailureKind{.label = "constructor_refuses", .fixture = "runtime/counter.c", .bad_flags = "-DREFUSE"},
        FailureKind{.label = "client_hangs_up", .fixture = "runtime/heap_state.c", .bad_flags = "-DNARROW", .hang_up = true},
        FailureKind{.label = "prepare_loaded", .fixture = "runtime/heap_state.c", .fault = "prepare.loaded"},
        FailureKind{.label = "quiesce_parked", .fixture = "runtime/heap_state.c", .fault = "quiesce.parked"},
        FailureKind{.label = "transform_heap_discovered", .fixture = "runtime/heap_state.c",
                    .fault = "transform.heap_discovered"},
        FailureKind{.label = "transform_globals", .fixture = "runtime/heap_state.c", .fault = "transform.globals"},
        FailureKind{.label = "restart_stacks", .fixture = "runtime/heap_state.c", .fault = "restart.stacks"}),
    [](const auto &info) { return info.param.label; });

// ---- heap tracking ----------------------------------------------------------------------------

class HeapTracking : public ::testing::TestWithParam<Toolchain> {};

TEST_P(HeapTracking, EveryAllocatorKnowsTheRequestedSize)
{
    std::string program = executable("runtime/heap.c", GetParam(), "");
    int status = -1;
    std::string output = run(runtime_environment() + program + " 2>&1", &status);
    EXPECT_EQ(status, 0) << output;
    EXPECT_NE(output.find("DONE 0"), std::string::npos) << output;
    EXPECT_EQ(output.find("FAIL"), std::string::npos) << output;
    EXPECT_EQ(std::count(output.begin(), output.end(), '\n'), 27);  // 26 checks and DONE: every check ran
}

INSTANTIATE_TEST_SUITE_P(Toolchains, HeapTracking, ::testing::ValuesIn(all_toolchains),
                         [](const auto &info) { return info.param.label; });

// ---- cancelling a running update ---------------------------------------------------------------

// Whether `molt status` shows an update of process `pid` running, in `phase`.
bool update_running_in(const std::string &pid, const std::string &phase)
{
    return molt_tool({"status", pid}).out.find(", in " + phase + " for ") != std::string::npos;
}

// An update that waits for a thread that never reaches an update point shows in `molt status`,
// and stops at once when `molt cancel` asks, or when `molt update` is interrupted (SIGTERM here:
// a script's background job ignores SIGINT, and molt leaves it so); the old version runs on.
TEST(Cancellation, AnUpdateWaitingForQuiescenceStopsAndTheOldVersionRunsOn)
{
    Toolchain toolchain{"gcc", "-O2", "gcc_O2"};
    std::string v1 = executable("runtime/counter.c", toolchain, "-DV=1 -DSTUCK");
    std::string v2 = shared_object("runtime/counter.c", toolchain, "-DV=2 -DSTUCK");
    Fixture fixture = start_fixture(v1);
    std::string pid = std::to_string(fixture.process->pid());

    ToolResult nothing = molt_tool({"cancel", pid});
    EXPECT_EQ(nothing.status, 1);
    EXPECT_NE(nothing.err.find("runs no update: nothing to cancel"), std::string::npos) << nothing.err;

    {
        BackgroundTool update({"update", "--timeout", "120", pid, v2});
        ASSERT_TRUE(wait_until([&] { return update_running_in(pid, "quiesce"); })) << molt_tool({"status", pid}).out;
        ToolResult listing = molt_tool({"ps"});
        EXPECT_NE(listing.out.find(pid + "  " + v1 + "  (updating to " + v2 + ", in quiesce)"), std::string::npos)
            << listing.out;
        // The process's first update: number 1. A cancellation of another (a client whose own
        // update has ended) leaves it be.
        nlohmann::json running = nlohmann::json::parse(molt_tool({"status", "--json", pid}).out, nullptr, false);
        EXPECT_EQ(running.value("update", nlohmann::json::object()).value("id", 0), 1) << running.dump();
        std::string other = raw_request(fixture.process->pid(), "{\"protocol\": 1, \"command\": \"cancel\", \"id\": 2}\n");
        EXPECT_NE(other.find("\"cancel\":\"nothing_running\""), std::string::npos) << other;
        EXPECT_NE(raw_request(fixture.process->pid(), "{\"protocol\": 1, \"command\": \"cancel\", \"id\": \"all\"}\n")
                      .find("must be an update's number"),
                  std::string::npos);
        EXPECT_TRUE(update_running_in(pid, "quiesce"));
        ToolResult cancel = molt_tool({"cancel", pid});
        EXPECT_EQ(cancel.status, 0) << cancel.out << cancel.err;
        EXPECT_NE(cancel.out.find("cancelled in quiesce: process " + pid + " runs " + v1 + " as before"), std::string::npos)
            << cancel.out << cancel.err;
        ToolResult ended = update.wait(std::chrono::seconds(20));  // not the 120 s of its timeout
        EXPECT_EQ(ended.status, 1) << ended.out << ended.err;
        EXPECT_NE(ended.err.find("update failed in quiesce: cancelled in quiesce"), std::string::npos) << ended.err;
        EXPECT_NE(ended.err.find("the old version keeps running"), std::string::npos) << ended.err;
    }
    EXPECT_EQ(molt_tool({"status", pid}).out.find("update in progress"), std::string::npos);
    {
        BackgroundTool update({"update", "--timeout", "120", pid, v2});
        ASSERT_TRUE(wait_until([&] { return update_running_in(pid, "quiesce"); }));
        ASSERT_EQ(kill(update.pid(), SIGTERM), 0);
        ToolResult ended = update.wait(std::chrono::seconds(20));
        EXPECT_EQ(ended.status, 1) << ended.out << ended.err;
        EXPECT_NE(ended.err.find("interrupted: cancelling the update in quiesce"), std::string::npos) << ended.err;
        EXPECT_NE(ended.err.find("update failed in quiesce: cancelled in quiesce"), std::string::npos) << ended.err;
    }
    EXPECT_EQ(status_number(pid, "updates_attempted"), 2);
    // The history's reports carry the numbers their updates ran under.
    nlohmann::json status = nlohmann::json::parse(molt_tool({"status", "--json", pid}).out, nullptr, false);
    std::vector<int> ids;
    for (const nlohmann::json &report : status.value("history", nlohmann::json::array()))
        ids.push_back(report.value("id", 0));
    EXPECT_EQ(ids, (std::vector<int>{1, 2})) << status.dump();
    long counted = count_matching(read_lines(fixture.log), "^v1 count ");
    EXPECT_TRUE(wait_until([&] { return count_matching(read_lines(fixture.log), "^v1 count ") > counted; }))
        << "v1 stopped after the cancellations";
    EXPECT_EQ(count_matching(read_lines(fixture.log), "^v2"), 0);
}

// Once the threads restart in the new code, a cancellation is too late: `molt cancel` says so and
// the update ends by itself (here a rollback, its new code hanging past the deadline). A second
// SIGTERM makes `molt update` stop waiting, and leave as the signal tells, while the update goes on.
TEST(Cancellation, IsTooLateOnceTheNewCodeRuns)
{
    Toolchain toolchain{"gcc", "-O2", "gcc_O2"};
    std::string v1 = executable("runtime/counter.c", toolchain, "-DV=1");
    std::string hangs = shared_object("runtime/counter.c", toolchain, "-DV=2 -DHANG");
    Fixture fixture = start_fixture(v1);
    std::string pid = std::to_string(fixture.process->pid());
    BackgroundTool update({"update", "--timeout", "3", pid, hangs});
    ASSERT_TRUE(wait_until([&] { return update_running_in(pid, "restart"); })) << molt_tool({"status", pid}).out;
    ToolResult cancel = molt_tool({"cancel", pid});
    EXPECT_EQ(cancel.status, 1) << cancel.out << cancel.err;
    EXPECT_NE(cancel.err.find("too late to cancel: the update of process " + pid + " is in restart"), std::string::npos)
        << cancel.err;
    // The answer names the update (`molt cancel` finds its report in the history by it).
    std::string answer = raw_request(fixture.process->pid(), "{\"protocol\": 1, \"command\": \"cancel\"}\n");
    EXPECT_NE(answer.find("\"cancel\":\"too_late\""), std::string::npos) << answer;
    EXPECT_NE(answer.find("\"id\":1"), std::string::npos) << answer;
    ASSERT_EQ(kill(update.pid(), SIGTERM), 0);
    ASSERT_TRUE(wait_until([&] { return update.errors().find("too late to cancel") != std::string::npos; }));
    ASSERT_EQ(kill(update.pid(), SIGTERM), 0);
    ToolResult left = update.wait(std::chrono::seconds(10));
    EXPECT_EQ(left.status, 128 + SIGTERM) << left.out << left.err;
    EXPECT_NE(left.err.find("too late to cancel: the update is in restart"), std::string::npos) << left.err;
    EXPECT_NE(left.err.find("left waiting; the update goes on in process " + pid), std::string::npos) << left.err;
    // The update ends by itself: rolled back at its deadline, v1 running on.
    ASSERT_TRUE(wait_until([&] { return status_number(pid, "updates_attempted") == 1; }, std::chrono::seconds(20)));
    EXPECT_EQ(molt_tool({"status", pid}).out.find("update in progress"), std::string::npos);
    long counted = count_matching(read_lines(fixture.log), "^v1 count ");
    EXPECT_TRUE(wait_until([&] { return count_matching(read_lines(fixture.log), "^v1 count ") > counted; }));
}

// ---- a forked child is a process of its own ----------------------------------------------------

TEST(ForkedChild, IsUpdatedOnItsOwnControlSocket)
{
    // GCC 12's AddressSanitizer does not take its allocator's locks around fork(): when a parent
    // thread is inside malloc at that moment, the child's first malloc of that size waits for
    // ever (seen about once in 20 runs, in the child's new listener thread). glibc's malloc
    // handles fork; the plain build runs this test.
    if (under_sanitizers)
        GTEST_SKIP() << "AddressSanitizer's allocator is not fork-safe in this toolchain";
    Toolchain toolchain{"gcc", "-O2", "gcc_O2"};
    std::string v1 = executable("runtime/counter.c", toolchain, "-DV=1 -DFORK");
    std::string v2 = shared_object("runtime/counter.c", toolchain, "-DV=2 -DFORK");
    std::string log = unique_path("log"), ready = unique_path("ready");
    LiveProcess parent({v1, log, ready});
    pid_t child = ready_pid(ready);
    ASSERT_NE(child, parent.pid());
    ToolResult update = molt_tool({"update", std::to_string(child), v2});
    ASSERT_EQ(update.status, 0) << update.out << update.err;
    EXPECT_TRUE(wait_until([&] { return count_matching(read_lines(log), "^v2: count=") >= 5; }));
    ToolResult status = molt_tool({"status", std::to_string(parent.pid())});
    EXPECT_NE(status.out.find("updates: 0"), std::string::npos) << status.out;  // the parent is untouched
    kill(child, SIGKILL);
}

// ---- driver mode and listing ------------------------------------------------------------------

TEST(DriverMode, MoltRunStartsASharedObjectThatCanBeUpdated)
{
    Toolchain toolchain{"clang", "-O0", "clang_O0"};
    std::string v1 = shared_object("runtime/counter.c", toolchain, "-DV=1");
    std::string v2 = shared_object("runtime/counter.c", toolchain, "-DV=2");
    std::string log = unique_path("log"), ready = unique_path("ready");
    LiveProcess process({MOLT_TOOL, "run", v1, log, ready});
    pid_t pid = ready_pid(ready);
    EXPECT_EQ(pid, process.pid());  // molt run executes the driver in place
    ASSERT_TRUE(wait_until([&] { return count_matching(read_lines(log), "^v1 count") >= 5; }));
    ToolResult listing = molt_tool({"ps"});
    EXPECT_NE(listing.out.find(std::to_string(pid)), std::string::npos) << listing.out;
    ToolResult update = molt_tool({"update", std::to_string(pid), v2});
    ASSERT_EQ(update.status, 0) << update.out << update.err;
    ASSERT_TRUE(wait_until([&] { return count_matching(read_lines(log), "^v2: count=") >= 5; }));
}

// A stopped process (SIGSTOP, a debugger) accepts a connection in the kernel and reads nothing:
// status, ps and update give up in bounded time, saying so, and the update it reads once it runs
// again is not started (its user was told nothing was done); a later update works.
TEST(StoppedProcess, StatusPsAndUpdateGiveUpAndTheLateUpdateIsNotStarted)
{
    Toolchain toolchain{"gcc", "-O2", "gcc_O2"};
    std::string v1 = executable("runtime/counter.c", toolchain, "-DV=1");
    std::string v2 = shared_object("runtime/counter.c", toolchain, "-DV=2");
    Fixture fixture = start_fixture(v1);
    std::string pid = std::to_string(fixture.process->pid());
    ASSERT_EQ(kill(fixture.process->pid(), SIGSTOP), 0);
    ToolResult listing = molt_tool({"ps"});
    EXPECT_EQ(listing.status, 0);
    EXPECT_NE(listing.out.find(pid + "  (not answering)"), std::string::npos) << listing.out;
    ToolResult update = molt_tool({"update", pid, v2, "--timeout", "0.5"});
    EXPECT_EQ(update.status, 2) << update.out << update.err;
    EXPECT_NE(update.err.find("did not answer within 2 s: it may be stopped"), std::string::npos) << update.err;
    ASSERT_EQ(kill(fixture.process->pid(), SIGCONT), 0);
    // It reads the request now, late: refused, and nothing is attempted.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_EQ(status_number(pid, "updates_attempted"), 0);
    EXPECT_EQ(count_matching(read_lines(fixture.log), "^v2"), 0);
    ToolResult later = molt_tool({"update", pid, v2});
    ASSERT_EQ(later.status, 0) << later.out << later.err;
    ASSERT_TRUE(wait_until([&] { return count_matching(read_lines(fixture.log), "^v2: count=") >= 1; }));
}

// What follows the version is the program's, verbatim: its own options (`--port 0`), `--`, and
// `--help` (the program's, not molt's). A version that cannot run (an executable) is an error
// (exit 2), as for every other command.
TEST(DriverMode, MoltRunPassesTheProgramsArgumentsAsTheyAre)
{
    Toolchain toolchain{"gcc", "-O0", "gcc_O0"};
    std::string program = shared_object("runtime/arguments.c", toolchain, "");
    std::string out = unique_path("arguments");
    // The driver is linked with the runtime: in a sanitizer build it starts with libmolt preloaded.
    auto molt_run = [&](const std::string &arguments, int &status) {
        std::string errors = unique_path("errors");
        run(runtime_environment() + MOLT_TOOL + " run " + arguments + " 2> " + errors, &status);
        return read_text(errors);
    };
    int status = -1;
    std::string errors = molt_run(program + " " + out + " --port 0 -x -- y --help", status);
    ASSERT_EQ(status, 0) << errors;
    EXPECT_EQ(read_lines(out), (std::vector<std::string>{"--port", "0", "-x", "--", "y", "--help"}));
    errors = molt_run("-- " + program + " " + out + " z", status);
    ASSERT_EQ(status, 0) << errors;
    EXPECT_EQ(read_lines(out), (std::vector<std::string>{"z"}));
    errors = molt_run(executable("runtime/arguments.c", toolchain, "") + " " + out, status);
    EXPECT_EQ(status, 2) << errors;
    EXPECT_NE(errors.find("cannot load"), std::string::npos) << errors;
}

}  // namespace
}  // namespace molt::testing
