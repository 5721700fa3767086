// A stand-alone driver for the fuzz target, for builds without libFuzzer (gcc, `make test`):
// mutates real ELF files, mostly inside their .debug_* sections, and feeds each mutant to
// LLVMFuzzerTestOneInput for a bounded time. A crash kills the process (the test fails); a
// hang trips CTest's timeout. Deterministic for a given --seed.
//
//   mutation_driver [--seconds N] [--seed S] [--save-to DIR] FILE...
#include <gelf.h>
#include <libelf.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size);

namespace {

struct Input {
    std::string name;
    std::vector<std::uint8_t> bytes;
    std::vector<std::pair<std::size_t, std::size_t>> debug_sections;  // file offset, size
};

Input load(const std::string &path)
{
    Input input{path, {}, {}};
    std::ifstream in(path, std::ios::binary);
    input.bytes.assign(std::istreambuf_iterator<char>(in), {});
    elf_version(EV_CURRENT);
    Elf *elf = elf_memory(reinterpret_cast<char *>(input.bytes.data()), input.bytes.size());
    std::size_t names = 0;
    if (elf && elf_getshdrstrndx(elf, &names) == 0) {
        for (Elf_Scn *scn = nullptr; (scn = elf_nextscn(elf, scn));) {
            GElf_Shdr header;
            const char *name = gelf_getshdr(scn, &header) ? elf_strptr(elf, names, header.sh_name) : nullptr;
            if (name && std::strncmp(name, ".debug_", 7) == 0 && header.sh_size > 0 &&
                header.sh_offset + header.sh_size <= input.bytes.size())
                input.debug_sections.emplace_back(header.sh_offset, header.sh_size);
        }
    }
    if (elf)
        elf_end(elf);
    return input;
}

// One mutant: a few byte changes, mostly in DWARF sections, sometimes a truncation.
std::vector<std::uint8_t> mutate(const Input &input, std::mt19937_64 &random)
{
    std::vector<std::uint8_t> bytes = input.bytes;
    auto pick = [&](std::size_t bound) { return std::uniform_int_distribution<std::size_t>(0, bound - 1)(random); };
    std::size_t changes = 1 + pick(8);
    for (std::size_t i = 0; i < changes; ++i) {
        std::size_t offset;
        if (!input.debug_sections.empty() && pick(10) < 9) {
            auto [start, size] = input.debug_sections[pick(input.debug_sections.size())];
            offset = start + pick(size);
        } else {
            offset = pick(bytes.size());
        }
        switch (pick(4)) {
        case 0: bytes[offset] ^= static_cast<std::uint8_t>(1u << pick(8)); break;
        case 1: bytes[offset] = static_cast<std::uint8_t>(pick(256)); break;
        case 2: bytes[offset] = pick(2) ? 0x00 : 0xff; break;
        default: {  // an "interesting" 32-bit value, as DIE offsets and sizes are
            static const std::uint32_t values[] = {0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0x10, 0x100};
            std::uint32_t value = values[pick(std::size(values))];
            if (offset + 4 <= bytes.size())
                std::memcpy(&bytes[offset], &value, 4);
        }
        }
    }
    if (pick(50) == 0)
        bytes.resize(pick(bytes.size()) + 1);
    return bytes;
}

}  // namespace

int main(int argc, char **argv)
{
    double seconds = 10;
    std::uint64_t seed = 1;
    std::string save_to;
    std::vector<Input> inputs;
    for (int i = 1; i < argc; ++i) {
        std::string argument = argv[i];
        if (argument == "--seconds" && i + 1 < argc)
            seconds = std::atof(argv[++i]);
        else if (argument == "--seed" && i + 1 < argc)
            seed = std::strtoull(argv[++i], nullptr, 10);
        else if (argument == "--save-to" && i + 1 < argc)
            save_to = argv[++i];
        else
            inputs.push_back(load(argument));
    }
    if (inputs.empty()) {
        std::fprintf(stderr, "usage: %s [--seconds N] [--seed S] [--save-to DIR] FILE...\n", argv[0]);
        return 2;
    }
    std::mt19937_64 random(seed);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    std::size_t runs = 0;
    for (const Input &input : inputs)  // the unmutated files first
        LLVMFuzzerTestOneInput(input.bytes.data(), input.bytes.size());
    while (std::chrono::steady_clock::now() < deadline) {
        const Input &input = inputs[random() % inputs.size()];
        std::vector<std::uint8_t> mutant = mutate(input, random);
        if (!save_to.empty()) {  // keep the current mutant where a crash can be found again
            std::ofstream(save_to + "/current-mutant", std::ios::binary)
                .write(reinterpret_cast<const char *>(mutant.data()), static_cast<std::streamsize>(mutant.size()));
        }
        LLVMFuzzerTestOneInput(mutant.data(), mutant.size());
        ++runs;
    }
    std::printf("mutation_driver: %zu mutants of %zu files in %.0f s (seed %llu), no crash\n", runs, inputs.size(),
                seconds, static_cast<unsigned long long>(seed));
    return 0;
}
