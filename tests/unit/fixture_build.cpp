// Fixture builds for the tests: real compilers, real ELF files, made at test time.
#include "fixture_build.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace molt::testing {

std::vector<Toolchain> schema_toolchains()
{
    std::vector<Toolchain> toolchains;
    for (std::string compiler : {"gcc", "clang"})
        for (std::string level : {"O0", "O2"})
            for (auto [dwarf, dwarf_label] : {std::pair{"-gdwarf-4", "dwarf4"}, std::pair{"-gdwarf-5", "dwarf5"},
                                              std::pair{"-gdwarf-4 -fdebug-types-section", "dwarf4_type_units"},
                                              std::pair{"-gdwarf-5 -fdebug-types-section", "dwarf5_type_units"}})
                toolchains.push_back({compiler, "-" + level + " " + dwarf, compiler + "_" + level + "_" + dwarf_label});
    // DWARF 2: member locations as expressions and big-endian DW_AT_bit_offset.
    toolchains.push_back({"gcc", "-O0 -gdwarf-2 -gstrict-dwarf", "gcc_O0_dwarf2"});
    toolchains.push_back({"gcc", "-O2 -gdwarf-2 -gstrict-dwarf", "gcc_O2_dwarf2"});
    return toolchains;
}

std::string fixture(const std::string &relative) { return std::string(MOLT_SOURCE_DIR) + "/tests/fixtures/" + relative; }

namespace {

// Plain storage, not a std::string: the atexit cleanup must not read an object whose
// destructor (registered after it) has already run.
char scratch_path[4096];

void remove_scratch() { std::filesystem::remove_all(scratch_path); }

}  // namespace

std::string scratch_directory()
{
    if (scratch_path[0] == '\0') {
        const char *base = std::getenv("TMPDIR");
        std::snprintf(scratch_path, sizeof scratch_path, "%s/molt-test-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(scratch_path))
            std::abort();  // no scratch space: nothing can be tested
        std::atexit(remove_scratch);
    }
    return scratch_path;
}

std::string run(const std::string &command, int *status)
{
    std::string output;
    FILE *pipe = popen(command.c_str(), "r");
    if (!pipe) {
        if (status)
            *status = -1;
        return output;
    }
    char buffer[4096];
    std::size_t got;
    while ((got = fread(buffer, 1, sizeof buffer, pipe)) > 0)
        output.append(buffer, got);
    int result = pclose(pipe);
    if (status)
        *status = WIFEXITED(result) ? WEXITSTATUS(result) : -1;
    return output;
}

std::string build(const std::vector<std::string> &sources, const Toolchain &toolchain, const std::string &extra_flags)
{
    static std::map<std::string, std::string> built;
    static int counter = 0;
    std::string inputs;
    for (const std::string &source : sources)
        inputs += " " + fixture(source);
    std::string flags = "-g " + toolchain.flags;
    std::string key = toolchain.compiler + " " + flags + inputs + " " + extra_flags;
    if (auto it = built.find(key); it != built.end())
        return it->second;
    bool wants_pie = extra_flags.find("-shared") == std::string::npos && extra_flags.find("-no-pie") == std::string::npos;
    std::string output = scratch_directory() + "/fixture" + std::to_string(++counter);
    // Extra flags after the inputs: libraries (-lmolt) must follow the objects that use them.
    std::string command = toolchain.compiler + " " + flags + (wants_pie ? " -fPIE -pie" : "") + inputs + " " +
                          extra_flags + " -o " + output + " 2>&1";
    int status = 0;
    std::string messages = run(command, &status);
    EXPECT_EQ(status, 0) << command << "\n" << messages;
    built[key] = output;
    return output;
}

std::string copy_of(const std::string &binary, const std::string &name)
{
    std::string copy = scratch_directory() + "/" + name;
    std::filesystem::copy_file(binary, copy, std::filesystem::copy_options::overwrite_existing);
    return copy;
}

std::string read_text(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

void write_text(const std::string &path, const std::string &text)
{
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
}

}  // namespace molt::testing
