// Bad input: every file the reader cannot read faithfully gives one line saying why, never a
// crash or a hang. Breaks when a kind of bad input slips through as a "successful" schema or
// gets a message that does not tell the user what to do.
#include <gelf.h>
#include <gtest/gtest.h>
#include <libelf.h>
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>

#include "dwarf_reader.h"
#include "fixture_build.h"

namespace molt::testing {
namespace {

std::string error_of(const std::string &path)
{
    auto schema = schema::read_schema(path);
    EXPECT_FALSE(schema.ok()) << path << " was read as if it were fine";
    if (schema.ok())
        return {};
    std::string message = schema.error().to_string();
    EXPECT_EQ(message.find('\n'), std::string::npos) << "error is not one line: " << message;
    EXPECT_EQ(message.rfind(path + ": ", 0), 0u) << "error does not start with the file: " << message;
    return message;
}

// File offset and size of a section, read with libelf.
std::pair<std::uint64_t, std::uint64_t> section_extent(const std::string &path, const std::string &wanted)
{
    elf_version(EV_CURRENT);
    int fd = open(path.c_str(), O_RDONLY);
    Elf *elf = elf_begin(fd, ELF_C_READ, nullptr);
    std::size_t names;
    elf_getshdrstrndx(elf, &names);
    std::pair<std::uint64_t, std::uint64_t> extent{0, 0};
    for (Elf_Scn *scn = nullptr; (scn = elf_nextscn(elf, scn));) {
        GElf_Shdr header;
        gelf_getshdr(scn, &header);
        if (wanted == elf_strptr(elf, names, header.sh_name))
            extent = {header.sh_offset, header.sh_size};
    }
    elf_end(elf);
    close(fd);
    return extent;
}

void overwrite(const std::string &path, std::uint64_t offset, const std::string &bytes)
{
    int fd = open(path.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset)), static_cast<ssize_t>(bytes.size()));
    close(fd);
}

const Toolchain gcc_default{"gcc", "-O0", "gcc"};

TEST(BadInput, MissingFile)
{
    EXPECT_NE(error_of(scratch_directory() + "/does-not-exist").find("No such file or directory"), std::string::npos);
}

TEST(BadInput, DirectoryTextAndEmptyFiles)
{
    EXPECT_NE(error_of(scratch_directory()).find("a directory, not an ELF file"), std::string::npos);
    std::string text = scratch_directory() + "/notes.txt";
    write_text(text, "this is not an executable\n");
    EXPECT_NE(error_of(text).find("not an ELF file"), std::string::npos);
    std::string empty = scratch_directory() + "/empty";
    write_text(empty, "");
    EXPECT_NE(error_of(empty).find("not an ELF file"), std::string::npos);
}

TEST(BadInput, TruncatedFiles)
{
    std::string binary = build({"schema/types.c"}, gcc_default);
    std::uintmax_t size = std::filesystem::file_size(binary);
    for (std::uintmax_t cut : {std::uintmax_t{4}, std::uintmax_t{40}, std::uintmax_t{64}, std::uintmax_t{1000},
                               size / 2, size - 100, size - 1}) {
        std::string copy = copy_of(binary, "truncated");
        std::filesystem::resize_file(copy, cut);
        std::string message = error_of(copy);
        EXPECT_FALSE(message.empty()) << "cut at " << cut;
    }
}

TEST(BadInput, AnotherArchitecture)
{
    std::string source = scratch_directory() + "/tiny.c";
    write_text(source, "int counter;\nint tick(void) { return ++counter; }\n");
    std::string object = scratch_directory() + "/tiny-aarch64.o";
    int status = 0;
    std::string messages = run("clang --target=aarch64-linux-gnu -g -c " + source + " -o " + object + " 2>&1", &status);
    ASSERT_EQ(status, 0) << messages;
    EXPECT_NE(error_of(object).find("built for aarch64, not for this machine"), std::string::npos);
}

TEST(BadInput, RelocatableObjectFile)
{
    std::string source = scratch_directory() + "/object.c";
    write_text(source, "int counter;\n");
    std::string object = scratch_directory() + "/object.o";
    int status = 0;
    run("gcc -g -c " + source + " -o " + object, &status);
    ASSERT_EQ(status, 0);
    EXPECT_NE(error_of(object).find("relocatable object file"), std::string::npos);
}

TEST(BadInput, NoDebugInformation)
{
    std::string plain = build({"schema/types.c"}, {"gcc", "-O0 -g0", "gcc_no_g"});
    EXPECT_NE(error_of(plain).find("no DWARF in the file: build with -g"), std::string::npos);
    std::string stripped = copy_of(build({"schema/types.c"}, gcc_default), "stripped");
    int status = 0;
    run("strip --strip-debug " + stripped, &status);
    ASSERT_EQ(status, 0);
    EXPECT_NE(error_of(stripped).find("no DWARF in the file: build with -g"), std::string::npos);
}

TEST(BadInput, SplitDwarfIsRefused)
{
    std::string directory = scratch_directory() + "/split";
    std::filesystem::create_directories(directory);
    int status = 0;
    run("cd " + directory + " && gcc -g -gsplit-dwarf " + fixture("schema/types.c") + " -o split", &status);
    ASSERT_EQ(status, 0);
    EXPECT_NE(error_of(directory + "/split").find("split DWARF"), std::string::npos);
}

TEST(BadInput, DwzAlternateFilesAreRefused)
{
    std::string binary = build({"schema/types.c"}, gcc_default);
    std::string first = copy_of(binary, "dwz-first"), second = copy_of(binary, "dwz-second");
    std::string common = scratch_directory() + "/dwz-common.debug";
    int status = 0;
    std::string messages = run("dwz -m " + common + " -M dwz-common.debug " + first + " " + second + " 2>&1", &status);
    ASSERT_EQ(status, 0) << messages;
    EXPECT_NE(error_of(first).find("dwz"), std::string::npos);
}

TEST(BadInput, CorruptDebugInfoAndAbbreviations)
{
    std::string binary = build({"schema/types.c"}, gcc_default);
    for (std::string section : {".debug_info", ".debug_abbrev"}) {
        std::string copy = copy_of(binary, "corrupt" + section);
        auto [offset, size] = section_extent(copy, section);
        ASSERT_GT(size, 0u) << section;
        overwrite(copy, offset, std::string(size, '\xff'));
        EXPECT_NE(error_of(copy).find("DWARF"), std::string::npos) << section;
    }
}

TEST(BadInput, CorruptSectionHeaders)
{
    std::string copy = copy_of(build({"schema/types.c"}, gcc_default), "bad-shoff");
    overwrite(copy, 0x28, std::string("\xff\xff\xff\xff\xff\xff\x00\x00", 8));  // e_shoff far past the end
    EXPECT_FALSE(error_of(copy).empty());
}

}  // namespace
}  // namespace molt::testing
