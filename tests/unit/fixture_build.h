// Building fixture programs at test time with a real compiler, and running helper commands.
#pragma once

#include <string>
#include <vector>

namespace molt::testing {

// One way of compiling a fixture: compiler, flags, and a label for test names.
struct Toolchain {
    std::string compiler;  // gcc or clang
    std::string flags;     // -O2 -gdwarf-4 ...
    std::string label;     // gcc_O2_dwarf4
};

// The compilers and DWARF forms the schema must read identically.
std::vector<Toolchain> schema_toolchains();

// Path of a file under tests/fixtures.
std::string fixture(const std::string &relative);

// Compiles `sources` (paths under tests/fixtures) with `-g` and the toolchain's flags into a
// fresh file under the test's scratch directory and returns its path. Builds are remembered
// per process, so asking twice compiles once. Fails the current test if the compiler fails.
std::string build(const std::vector<std::string> &sources, const Toolchain &toolchain,
                  const std::string &extra_flags = "");

// A scratch directory for this test process (removed at exit).
std::string scratch_directory();

// Runs a shell command; returns its stdout and sets `status` to its exit status.
std::string run(const std::string &command, int *status = nullptr);

// A copy of `binary` named `name` in the scratch directory (replaced if there), to damage.
std::string copy_of(const std::string &binary, const std::string &name);

std::string read_text(const std::string &path);
void write_text(const std::string &path, const std::string &text);

}  // namespace molt::testing
