// DWARF to schema: walk every compile unit with libdw, collect raw types per DIE, then merge
// structurally identical types across units and name what is left.
#include "dwarf_reader.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwelf.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <unordered_map>

#include "type_merge.h"

namespace molt::schema {
namespace {

#if defined(__x86_64__)
constexpr int host_machine = EM_X86_64;
constexpr const char *host_machine_name = "x86-64";
#elif defined(__aarch64__)
constexpr int host_machine = EM_AARCH64;
constexpr const char *host_machine_name = "aarch64";
#else
#error "Molt reads ELF files of the machine it runs on; add this machine's EM_ constant"
#endif

// Nesting bounds: DWARF from a compiler stays far below them; corrupt DWARF may not.
constexpr int max_die_depth = 128;
constexpr int max_qualifier_chain = 64;
constexpr std::size_t max_value_nesting = 256;  // structs in structs in arrays...: real code stays far below

// Thrown inside the reader when the DWARF cannot be trusted; read_schema turns it into an Error.
struct CorruptDwarf : std::runtime_error {
    using std::runtime_error::runtime_error;
};

std::string libdw_message() { return dwarf_errmsg(-1); }

std::string base_name(std::string_view path)
{
    std::size_t slash = path.rfind('/');
    return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

const char *machine_name(int machine)
{
    switch (machine) {
    case EM_386: return "i386";
    case EM_X86_64: return "x86-64";
    case EM_AARCH64: return "aarch64";
    case EM_ARM: return "arm";
    case EM_RISCV: return "riscv";
    case EM_PPC64: return "ppc64";
    case EM_S390: return "s390";
    default: return "another architecture";
    }
}

// ---------------------------------------------------------------------------------------------
// Small libdw helpers that keep "found", "absent" and "error" apart.

std::string attribute_string(Dwarf_Die *die, unsigned name)
{
    Dwarf_Attribute attr;
    if (!dwarf_attr_integrate(die, name, &attr))
        return {};
    const char *text = dwarf_formstring(&attr);
    return text ? text : "";
}

std::optional<Dwarf_Word> attribute_unsigned(Dwarf_Die *die, unsigned name)
{
    Dwarf_Attribute attr;
    Dwarf_Word value;
    if (!dwarf_attr_integrate(die, name, &attr) || dwarf_formudata(&attr, &value) != 0)
        return std::nullopt;
    return value;
}

bool attribute_flag(Dwarf_Die *die, unsigned name)
{
    Dwarf_Attribute attr;
    bool value = false;
    if (!dwarf_attr_integrate(die, name, &attr) || dwarf_formflag(&attr, &value) != 0)
        return false;
    return value;
}

bool is_constant_form(unsigned form)
{
    switch (form) {
    case DW_FORM_data1: case DW_FORM_data2: case DW_FORM_data4: case DW_FORM_data8:
    case DW_FORM_udata: case DW_FORM_sdata: case DW_FORM_implicit_const:
        return true;
    default:
        return false;
    }
}

// Calls `visit` on each child of `parent`. Sibling offsets must grow, or the walk could cycle
// on a corrupt DW_AT_sibling.
template <typename Visit>
void for_each_child(Dwarf_Die *parent, Visit &&visit)
{
    Dwarf_Die child;
    int status = dwarf_child(parent, &child);
    if (status < 0)
        throw CorruptDwarf("cannot read the children of DIE at offset " + std::to_string(dwarf_dieoffset(parent)) +
                           ": " + libdw_message());
    Dwarf_Off previous = dwarf_dieoffset(parent);
    while (status == 0) {
        Dwarf_Off offset = dwarf_dieoffset(&child);
        if (offset <= previous)
            throw CorruptDwarf("DIE siblings do not advance at offset " + std::to_string(offset));
        previous = offset;
        visit(&child);
        status = dwarf_siblingof(&child, &child);
        if (status < 0)
            throw CorruptDwarf("cannot read DIE after offset " + std::to_string(offset) + ": " + libdw_message());
    }
}

// ---------------------------------------------------------------------------------------------
// Base type names: gcc says "long unsigned int", clang "unsigned long". One spelling for both,
// so a version built by one compiler diffs cleanly against a version built by the other.

std::string canonical_base_name(const std::string &name, Encoding encoding, std::uint64_t size)
{
    if (encoding == Encoding::Complex)  // gcc "complex double", clang "complex": C's spelling by size
        return size == 8 ? "_Complex float" : size == 16 ? "_Complex double" : size == 32 ? "_Complex long double" : name;
    if (encoding != Encoding::Signed && encoding != Encoding::Unsigned)
        return name;
    int longs = 0;
    bool is_unsigned = false, is_signed = false, is_short = false, is_char = false, is_int128 = false,
         other = false;
    std::size_t start = 0;
    while (start < name.size()) {
        std::size_t end = name.find(' ', start);
        if (end == std::string::npos)
            end = name.size();
        std::string word = name.substr(start, end - start);
        start = end + 1;
        if (word == "long") ++longs;
        else if (word == "unsigned") is_unsigned = true;
        else if (word == "signed") is_signed = true;
        else if (word == "short") is_short = true;
        else if (word == "char") is_char = true;
        else if (word == "__int128") is_int128 = true;
        else if (word == "int" || word.empty()) continue;
        else other = true;
    }
    if (other)
        return name;  // char8_t, wchar_t and friends keep their own name
    if (is_char)
        return is_unsigned ? "unsigned char" : is_signed ? "signed char" : "char";
    std::string core = is_int128 ? "__int128" : is_short ? "short" : longs == 1 ? "long" : longs >= 2 ? "long long" : "int";
    return is_unsigned ? "unsigned " + core : core;
}

Encoding encoding_of(Dwarf_Word ate)
{
    switch (ate) {
    case DW_ATE_signed: case DW_ATE_signed_char: return Encoding::Signed;
    case DW_ATE_unsigned: case DW_ATE_unsigned_char: case DW_ATE_UTF: return Encoding::Unsigned;
    case DW_ATE_boolean: return Encoding::Bool;
    case DW_ATE_float: return Encoding::Float;
    case DW_ATE_complex_float: return Encoding::Complex;
    default: return Encoding::Other;
    }
}

// ---------------------------------------------------------------------------------------------
// ELF side: checks before libdw is trusted, the build-id, and which addresses are writable.

struct Section {
    std::uint64_t address, size;
    bool writable;
};

struct ElfFacts {
    std::string build_id;
    std::vector<Section> allocated_sections;
    std::multimap<std::uint64_t, std::string> function_symbols;  // address -> name
    std::multimap<std::uint64_t, std::string> object_symbols;    // address -> name
    std::vector<Transformer> transformers;                          // from the molt_transformers section
};

// Records of molt/molt.h: u32 magic, u32 kind, char name[112], pointer (128 bytes each).
// A record's kind and name parts, as include/molt/molt.h writes them; nullopt when they do not
// fit together.
std::optional<Transformer> transformer_of_record(std::uint32_t kind, const std::vector<std::string> &parts)
{
    using Kind = Transformer::Kind;
    Transformer transformer;
    auto need = [&](std::size_t count) { return parts.size() >= count && !parts[count - 1].empty(); };
    switch (kind) {
    case 1: case 2:
        transformer.kind = static_cast<Kind>(kind);
        transformer.name = parts[0];
        return transformer;
    case 3: case 4:
        if (!need(2))
            return std::nullopt;
        transformer.kind = static_cast<Kind>(kind);
        transformer.renamed_from = parts[0];
        transformer.renamed_to = parts[1];
        return transformer;
    case 5:
        if (!need(3))
            return std::nullopt;
        transformer.kind = Kind::RenameMember;
        transformer.name = parts[0];
        transformer.renamed_from = parts[1];
        transformer.renamed_to = parts[2];
        return transformer;
    case 7: case 9:  // a member points to a type; a member's length is in another
        if (!need(3))
            return std::nullopt;
        transformer.kind = kind == 7 ? Kind::PointsTo : Kind::LengthIn;
        transformer.name = parts[0];
        transformer.member = parts[1];
        transformer.target = parts[2];
        return transformer;
    case 8:  // a variable points to a type
        if (!need(2))
            return std::nullopt;
        transformer.kind = Kind::PointsTo;
        transformer.name = parts[0];
        transformer.target = parts[1];
        return transformer;
    case 10:
        if (!need(5))
            return std::nullopt;
        transformer.kind = Kind::UnionCase;
        transformer.name = parts[0];
        transformer.member = parts[1];
        transformer.target = parts[2];
        transformer.case_value = parts[3];
        transformer.case_member = parts[4];
        return transformer;
    case 11:
        if (!need(1))
            return std::nullopt;
        transformer.kind = Kind::Opaque;
        transformer.name = parts[0];
        return transformer;
    default:
        return std::nullopt;
    }
}

void read_transformers(Elf_Scn *scn, const GElf_Shdr &section, ElfFacts &facts)
{
    constexpr std::size_t record_size = 128;
    Elf_Data *data = elf_getdata(scn, nullptr);
    if (!data || !data->d_buf || section.sh_type == SHT_NOBITS)
        return;
    const auto *bytes = static_cast<const unsigned char *>(data->d_buf);
    for (std::size_t offset = 0; offset + record_size <= data->d_size; offset += record_size) {
        std::uint32_t magic, kind;
        std::memcpy(&magic, bytes + offset, 4);
        std::memcpy(&kind, bytes + offset + 4, 4);
        if (magic != 0x544c4f4du || kind < 1 || kind > 11)
            continue;
        bool parallel = kind == 6;  // MOLT_TYPE_TRANSFORMER_PARALLEL: a type transformer
        if (parallel)
            kind = 1;
        // The name field: one name, or (renames, annotations) names split by NUL.
        const char *text = reinterpret_cast<const char *>(bytes + offset + 8);
        std::vector<std::string> parts;
        for (std::size_t at = 0; at < 112 && parts.size() < 5;) {
            std::size_t length = strnlen(text + at, 112 - at);
            parts.emplace_back(text + at, length);
            at += length + 1;
            if (kind < 3)
                break;
        }
        auto transformer = transformer_of_record(kind, parts);
        if (!transformer)
            continue;  // a record this reader does not know, or a damaged one
        transformer->parallel = parallel;
        transformer->record_address = section.sh_addr + offset;
        facts.transformers.push_back(std::move(*transformer));
    }
}

// The program headers, and every segment the loader maps, within the file: a copy cut short
// passes the ELF header, and mapping it would give the program SIGBUS when it touches the end.
std::optional<std::string> check_segments(Elf *elf, const GElf_Ehdr &header, std::size_t file_size)
{
    if (header.e_phoff > file_size ||
        static_cast<std::uint64_t>(header.e_phnum) * header.e_phentsize > file_size - header.e_phoff)
        return "truncated: the program headers lie past the end of the file (" + std::to_string(file_size) + " bytes)";
    for (int i = 0; i < header.e_phnum; ++i) {
        GElf_Phdr segment;
        if (!gelf_getphdr(elf, i, &segment))
            return "corrupt ELF program header";
        if (segment.p_type == PT_LOAD && (segment.p_offset > file_size || segment.p_filesz > file_size - segment.p_offset))
            return "truncated: a loadable segment lies past the end of the file (" + std::to_string(file_size) + " bytes)";
    }
    return std::nullopt;
}

// What makes the file unreadable or unloadable, or nullopt. With `facts`, also collects what
// the reader needs (transformer records, allocated sections, symbols, the build-id); without,
// only checks, as before a schema is taken from the cache by the file's build-id alone (a copy
// cut short keeps its build-id, and loading it would raise SIGBUS in the program).
std::optional<std::string> check_elf(Elf *elf, ElfFacts *facts)
{
    if (elf_kind(elf) != ELF_K_ELF) {
        std::size_t size = 0;
        const char *bytes = elf_rawfile(elf, &size);
        if (bytes && size >= 4 && std::memcmp(bytes, ELFMAG, SELFMAG) == 0)
            return "truncated: the file ends inside its ELF header";
        return "not an ELF file";
    }
    GElf_Ehdr header;
    if (!gelf_getehdr(elf, &header))
        return "truncated or corrupt ELF header";
    if (header.e_ident[EI_CLASS] != ELFCLASS64 || header.e_machine != host_machine)
        return std::string("built for ") + (header.e_ident[EI_CLASS] == ELFCLASS32 ? "a 32-bit " : "") +
               machine_name(header.e_machine) + ", not for this machine (" + host_machine_name + ")";
    if (header.e_type == ET_REL)
        return "a relocatable object file (.o); give the linked executable or shared object";
    if (header.e_type != ET_EXEC && header.e_type != ET_DYN)
        return "not an executable or shared object";
    std::size_t file_size = 0;
    elf_rawfile(elf, &file_size);
    if (header.e_shoff > file_size ||
        static_cast<std::uint64_t>(header.e_shnum) * header.e_shentsize > file_size - header.e_shoff)
        return "truncated: the section headers lie past the end of the file (" + std::to_string(file_size) + " bytes)";
    if (auto problem = check_segments(elf, header, file_size))
        return problem;
    std::size_t names_index;
    if (elf_getshdrstrndx(elf, &names_index) != 0)
        return "corrupt ELF section headers: " + std::string(elf_errmsg(-1));
    std::size_t sections = 0;
    if (header.e_shoff == 0 || elf_getshdrnum(elf, &sections) != 0 || sections == 0)
        return "no section headers: no DWARF to read";

    bool has_debug_info = false, has_altlink = false, has_debuglink = false;
    Elf_Scn *scn = nullptr;
    std::size_t count = 0;
    while ((scn = elf_nextscn(elf, scn)) != nullptr) {
        if (++count > 65536)
            return "corrupt ELF: too many sections";
        GElf_Shdr section;
        if (!gelf_getshdr(scn, &section))
            return "corrupt ELF section header";
        const char *name = elf_strptr(elf, names_index, section.sh_name);
        std::string_view section_name = name ? name : "";
        has_altlink = has_altlink || section_name == ".gnu_debugaltlink";
        has_debuglink = has_debuglink || section_name == ".gnu_debuglink";
        if (section_name == ".debug_info" || section_name == ".debug_types" || section_name == ".zdebug_info")
            has_debug_info = true;
        if (section.sh_type != SHT_NOBITS && (section.sh_offset > file_size || section.sh_size > file_size - section.sh_offset))
            return "truncated: section " + std::string(section_name) + " lies past the end of the file";
        if (!facts)
            continue;
        if (section_name == "molt_transformers")
            read_transformers(scn, section, *facts);
        if (section.sh_flags & SHF_ALLOC)
            facts->allocated_sections.push_back({section.sh_addr, section.sh_size, (section.sh_flags & SHF_WRITE) != 0});
        if (section.sh_type == SHT_SYMTAB || section.sh_type == SHT_DYNSYM) {
            Elf_Data *data = elf_getdata(scn, nullptr);
            if (!data || section.sh_entsize == 0)
                continue;
            std::size_t symbols = section.sh_size / section.sh_entsize;
            for (std::size_t i = 0; i < symbols; ++i) {
                GElf_Sym symbol;
                if (!gelf_getsym(data, static_cast<int>(i), &symbol))
                    break;
                int kind = GELF_ST_TYPE(symbol.st_info);
                if ((kind != STT_FUNC && kind != STT_OBJECT) || symbol.st_value == 0)
                    continue;
                const char *symbol_name = elf_strptr(elf, section.sh_link, symbol.st_name);
                if (symbol_name)
                    (kind == STT_FUNC ? facts->function_symbols : facts->object_symbols)
                        .emplace(symbol.st_value, symbol_name);
            }
        }
    }
    if (!has_debug_info && (has_debuglink || has_altlink))
        return "no DWARF in the file: its debug information was moved to a separate file (.gnu_debuglink), which "
               "Molt does not read; give the build before it was stripped";
    if (!has_debug_info)
        return "no DWARF in the file: build with -g";
    if (has_altlink)
        return "uses a dwz alternate debug file (.gnu_debugaltlink), which Molt does not read; build without dwz";
    if (facts)
        facts->build_id = gnu_build_id_hex(elf);
    return std::nullopt;
}

const Section *section_holding(const ElfFacts &facts, std::uint64_t address)
{
    for (const Section &section : facts.allocated_sections)
        if (address >= section.address && address - section.address < section.size)
            return &section;
    return nullptr;
}

// ---------------------------------------------------------------------------------------------
// The walk over compile units.

struct StaticLocation {
    std::uint64_t address = 0;
    bool thread_local_storage = false;
};

class Reader {
public:
    Reader(Dwarf *dwarf, const ElfFacts &facts) : m_dwarf(dwarf), m_facts(facts)
    {
        m_raw.types.emplace_back();  // raw type 0 is void
    }

    Schema read(const std::string &path)
    {
        walk_units();
        read_pending_types();
        for (Variable &variable : m_variables) {
            variable.size = m_raw.size_of(variable.type);
            variable.read_only |= m_raw.is_const(variable.type);
        }
        Schema schema;
        schema.path = path;
        schema.build_id = m_facts.build_id;
        for (const Variable &variable : m_variables)
            m_raw.roots.push_back(variable.type);
        for (const auto &[name, function] : m_functions) {
            m_raw.roots.push_back(function.return_type);
            for (const auto *list : {&function.params, &function.locals})
                for (const Local &local : *list)
                    m_raw.roots.push_back(local.type);
        }
        std::vector<TypeId> final_ids = merge_types(m_raw, schema.types);
        if (std::string problem = check_value_nesting(schema.types, max_value_nesting); !problem.empty())
            throw CorruptDwarf(problem);
        for (Variable &variable : m_variables) {
            variable.type = final_ids[variable.type];
            schema.variables.push_back(std::move(variable));
        }
        for (auto &[name, function] : m_functions) {
            function.return_type = final_ids[function.return_type];
            for (auto *list : {&function.params, &function.locals})
                for (Local &local : *list)
                    local.type = final_ids[local.type];
            schema.functions.push_back(std::move(function));
        }
        make_variable_names_unique(schema.variables);
        std::sort(schema.variables.begin(), schema.variables.end(),
                  [](const Variable &a, const Variable &b) { return a.qualified_name < b.qualified_name; });
        if (!m_foreign_units.empty()) {
            schema.foreign_units = m_foreign_units;
            warn(std::to_string(m_foreign_units.size()) + " compile unit" + (m_foreign_units.size() > 1 ? "s are" : " is") +
                 " not C (" + m_foreign_units.front() + (m_foreign_units.size() > 1 ? ", ..." : "") +
                 "): Molt reads the types of such units as C types, and classes, templates, namespaces or references may be misread");
        }
        schema.warnings.assign(m_warnings.begin(), m_warnings.end());
        schema.transformers = m_facts.transformers;
        return schema;
    }

private:
    // Units are named by their file's base name (`kvd.c`), so that builds from other
    // directories match; by their path when two units share a base name.
    void find_clashing_unit_names()
    {
        Dwarf_CU *unit = nullptr, *next = nullptr;
        Dwarf_Half version;
        std::uint8_t unit_type;
        Dwarf_Die unit_die, sub_die;
        std::map<std::string, std::set<std::string>> paths;
        std::size_t units = 0;
        while (dwarf_get_units(m_dwarf, unit, &next, &version, &unit_type, &unit_die, &sub_die) == 0 && ++units < 1000000) {
            unit = next;
            if (unit_type == DW_UT_compile) {
                std::string path = unit_file_name(&unit_die);
                paths[base_name(path)].insert(path);
            }
        }
        for (const auto &[name, all] : paths)
            if (all.size() > 1)
                m_unit_path_needed.insert(name);
    }

    void walk_units()
    {
        find_clashing_unit_names();
        Dwarf_CU *unit = nullptr, *next = nullptr;
        Dwarf_Half version;
        std::uint8_t unit_type;
        Dwarf_Die unit_die, sub_die;
        int status;
        std::size_t units = 0;
        while ((status = dwarf_get_units(m_dwarf, unit, &next, &version, &unit_type, &unit_die, &sub_die)) == 0) {
            unit = next;
            if (++units > 1000000)
                throw CorruptDwarf("too many compile units");
            if (unit_type == DW_UT_skeleton || unit_type == DW_UT_split_compile || unit_type == DW_UT_split_type ||
                dwarf_hasattr(&unit_die, DW_AT_GNU_dwo_name) || dwarf_hasattr(&unit_die, DW_AT_dwo_name))
                throw Unsupported("uses split DWARF (.dwo files), which Molt does not read; build without -gsplit-dwarf");
            if (unit_type == DW_UT_partial)
                throw Unsupported("has DWARF partial units (dwz), which Molt does not read; build without dwz");
            if (unit_type == DW_UT_type)
                continue;  // type units are read when something refers to them
            walk_unit(&unit_die);
        }
        if (status < 0)
            throw CorruptDwarf("cannot read the next compile unit: " + libdw_message());
    }

    void walk_unit(Dwarf_Die *unit_die)
    {
        m_unit_file = unit_file_name(unit_die);
        if (m_unit_path_needed.count(base_name(m_unit_file)) == 0)
            m_unit_file = base_name(m_unit_file);
        if (std::string language = foreign_language(dwarf_srclang(unit_die)); !language.empty())
            m_foreign_units.push_back(m_unit_file + " (" + language + ")");
        Scope scope;
        for_each_child(unit_die, [&](Dwarf_Die *child) { walk(child, scope, 1); });
    }

    // The file a variable or function belongs to: its unit's. Under link-time optimisation gcc
    // names every unit "<artificial>" (a partition of the whole program), and two files' statics
    // of one name would be told apart only by their order in memory, which the next link may
    // swap (their values then swapped too): there, the file it was declared in.
    std::string file_of(Dwarf_Die *die) const
    {
        if (m_unit_file != "<artificial>")
            return m_unit_file;
        const char *declared_in = dwarf_decl_file(die);
        return declared_in ? base_name(declared_in) : m_unit_file;
    }

    // The name of a unit's language when it is not C (nor assembly, which has no types of its
    // own, nor unknown): "" for those.
    static std::string foreign_language(int language)
    {
        switch (language) {
        case -1:  // no DW_AT_language
        case DW_LANG_C89:
        case DW_LANG_C:
        case DW_LANG_C99:
        case DW_LANG_C11:
        case 0x2c:  // DW_LANG_C17 (DWARF 6), which elfutils 0.188 does not name
        case 0x3e:  // DW_LANG_C23 (DWARF 6)
        case 0x31:  // DW_LANG_Assembly (DWARF 6)
        case DW_LANG_Mips_Assembler:
            return "";
        case DW_LANG_C_plus_plus:
        case DW_LANG_C_plus_plus_03:
        case DW_LANG_C_plus_plus_11:
        case DW_LANG_C_plus_plus_14:
            return "C++";
        case DW_LANG_ObjC: return "Objective-C";
        case DW_LANG_ObjC_plus_plus: return "Objective-C++";
        case DW_LANG_Rust: return "Rust";
        case DW_LANG_Go: return "Go";
        case DW_LANG_D: return "D";
        case DW_LANG_Fortran77:
        case DW_LANG_Fortran90:
        case DW_LANG_Fortran95:
        case DW_LANG_Fortran03:
        case DW_LANG_Fortran08: return "Fortran";
        case DW_LANG_Ada83:
        case DW_LANG_Ada95: return "Ada";
        default: return "DWARF language 0x" + to_hex(static_cast<unsigned>(language));
        }
    }

    // A CU's name as the compiler got it, relative to the compilation directory when under it.
    static std::string unit_file_name(Dwarf_Die *unit_die)
    {
        std::string name = attribute_string(unit_die, DW_AT_name);
        std::string directory = attribute_string(unit_die, DW_AT_comp_dir);
        if (!directory.empty() && name.rfind(directory + "/", 0) == 0)
            name = name.substr(directory.size() + 1);
        while (name.rfind("./", 0) == 0)
            name = name.substr(2);
        return name.empty() ? "<unknown>" : name;
    }

    struct Scope {
        std::string function;  // innermost enclosing function, for function statics
    };

    void walk(Dwarf_Die *die, const Scope &scope, int depth)
    {
        if (depth > max_die_depth)
            throw CorruptDwarf("DIEs nested deeper than " + std::to_string(max_die_depth));
        switch (dwarf_tag(die)) {
        case DW_TAG_variable:
            read_variable(die, scope);
            return;
        case DW_TAG_subprogram:
        case DW_TAG_inlined_subroutine: {
            if (dwarf_tag(die) == DW_TAG_subprogram)
                read_function(die);
            Scope inner{function_name(die, scope)};
            for_each_child(die, [&](Dwarf_Die *child) { walk(child, inner, depth + 1); });
            return;
        }
        case DW_TAG_lexical_block:
            for_each_child(die, [&](Dwarf_Die *child) { walk(child, scope, depth + 1); });
            return;
        case DW_TAG_imported_unit:
            throw Unsupported("imports DWARF partial units (dwz), which Molt does not read; build without dwz");
        case DW_TAG_base_type:
        case DW_TAG_structure_type:
        case DW_TAG_union_type:
        case DW_TAG_enumeration_type:
        case DW_TAG_typedef:
        case DW_TAG_class_type:
            // Every aggregate, enum and typedef the unit defines is kept; base types only when
            // used (compilers add their own, such as clang's __ARRAY_SIZE_TYPE__).
            if (depth == 1 && dwarf_tag(die) != DW_TAG_base_type)
                m_raw.roots.push_back(read_type(die));
            return;
        default:
            return;
        }
    }

    // The name of a function DIE: its own, or through DW_AT_abstract_origin/specification (clang
    // puts statics of inlined functions under a subprogram that has no name of its own).
    std::string function_name(Dwarf_Die *die, const Scope &outer)
    {
        std::string name = attribute_string(die, DW_AT_name);
        if (name.empty())
            name = attribute_string(die, DW_AT_linkage_name);
        if (name.empty() && dwarf_tag(die) == DW_TAG_subprogram && outer.function.empty())
            return std::string(nameless_function);
        return name.empty() ? outer.function : name;
    }

    // clang emits the statics of a function that was only ever inlined under a subprogram DIE
    // without name or origin; its symbol for the static is `function.variable`.
    std::string function_from_symbol(const Variable &variable) const
    {
        auto [begin, end] = m_facts.object_symbols.equal_range(variable.address);
        std::string suffix = "." + variable.name;
        for (auto it = begin; it != end; ++it) {
            const std::string &symbol = it->second;
            if (symbol.size() > suffix.size() && symbol.compare(symbol.size() - suffix.size(), suffix.size(), suffix) == 0)
                return symbol.substr(0, symbol.size() - suffix.size());
        }
        return "<inlined>";
    }

    static constexpr std::string_view nameless_function = "\x01nameless";

    // True when the optimizer split a static into pieces (clang's global SRA): no single
    // object holds it, so it cannot be migrated as one.
    static bool is_split_in_pieces(Dwarf_Die *die)
    {
        Dwarf_Attribute location;
        Dwarf_Op *ops = nullptr;
        std::size_t count = 0;
        if (!dwarf_attr(die, DW_AT_location, &location) || dwarf_getlocation(&location, &ops, &count) != 0)
            return false;
        bool has_address = false, has_piece = false;
        for (std::size_t i = 0; i < count; ++i) {
            has_address |= ops[i].atom == DW_OP_addr || ops[i].atom == DW_OP_addrx;
            has_piece |= ops[i].atom == DW_OP_piece || ops[i].atom == DW_OP_bit_piece;
        }
        return has_address && has_piece;
    }

    // A location expression that uses an address but is not just the address: clang's global
    // optimisations (a global shrunk to a boolean, for instance) describe the value that way.
    static bool mentions_an_address(Dwarf_Die *die)
    {
        Dwarf_Attribute location;
        Dwarf_Op *ops = nullptr;
        std::size_t count = 0;
        if (!dwarf_attr(die, DW_AT_location, &location) || dwarf_getlocation(&location, &ops, &count) != 0)
            return false;
        for (std::size_t i = 0; i < count; ++i)
            if (ops[i].atom == DW_OP_addr || ops[i].atom == DW_OP_addrx)
                return count > 1;
        return false;
    }

    std::optional<StaticLocation> static_location(Dwarf_Die *die)
    {
        Dwarf_Attribute location;
        if (!dwarf_attr(die, DW_AT_location, &location))
            return std::nullopt;
        Dwarf_Op *ops = nullptr;
        std::size_t count = 0;
        if (dwarf_getlocation(&location, &ops, &count) != 0 || count == 0)
            return std::nullopt;  // a location list: an automatic variable
        std::uint8_t first = ops[0].atom;
        if (count == 1 && first == DW_OP_addr)
            return StaticLocation{ops[0].number, false};
        if (count == 1 && (first == DW_OP_addrx || first == DW_OP_GNU_addr_index)) {
            // clang (DWARF 5): an index into .debug_addr, not an address.
            Dwarf_Attribute indexed;
            Dwarf_Addr address;
            if (dwarf_getlocation_attr(&location, &ops[0], &indexed) != 0 || dwarf_formaddr(&indexed, &address) != 0) {
                warn("cannot resolve a DW_OP_addrx address through .debug_addr: " + libdw_message());
                return std::nullopt;
            }
            return StaticLocation{address, false};
        }
        if (count == 2 && (ops[1].atom == DW_OP_form_tls_address || ops[1].atom == DW_OP_GNU_push_tls_address))
            return StaticLocation{ops[0].number, true};
        return std::nullopt;
    }

    void read_variable(Dwarf_Die *die, const Scope &scope)
    {
        std::optional<StaticLocation> location = static_location(die);
        if (!location) {
            if (is_split_in_pieces(die))
                warn("static `" + attribute_string(die, DW_AT_name) + "` in " + m_unit_file +
                     " was split into pieces by the optimizer and is left out: take its address or make it volatile");
            else if (mentions_an_address(die))
                warn("static `" + attribute_string(die, DW_AT_name) + "` in " + m_unit_file +
                     " was transformed by the optimizer (its location is an expression) and is left out: take its "
                     "address or make it volatile");
            return;  // a declaration, or a local on the stack or in registers
        }
        Variable variable;
        variable.name = attribute_string(die, DW_AT_name);  // integrates DW_AT_specification
        if (variable.name.empty())
            return;
        variable.address = location->address;
        variable.thread_local_storage = location->thread_local_storage;
        const Section *section = section_holding(m_facts, variable.address);
        if (!variable.thread_local_storage && (!section || variable.address == 0))
            return;  // removed by the linker (--gc-sections leaves address 0): not in this file
        // Inlined copies of a function repeat its statics: one object, one variable.
        auto &seen = variable.thread_local_storage ? m_thread_local_offsets : m_static_addresses;
        if (!seen.insert(variable.address).second)
            return;
        for (const Transformer &transformer : m_facts.transformers)
            if (transformer.record_address == variable.address)
                return;  // a transformer's registration record: Molt's bookkeeping, not state
        variable.file = file_of(die);
        variable.function = scope.function == nameless_function ? function_from_symbol(variable) : scope.function;
        variable.external = attribute_flag(die, DW_AT_external) && variable.function.empty();
        variable.type = read_type_reference(die);
        // size and const-ness come once the types are read (Reader::read)
        variable.read_only = !variable.thread_local_storage && !section->writable;
        if (variable.external)
            variable.qualified_name = variable.name;
        else if (!variable.function.empty())
            variable.qualified_name = variable.file + "/" + variable.function + "#" + variable.name;
        else
            variable.qualified_name = variable.file + "/" + variable.name;
        m_variables.push_back(std::move(variable));
    }

    // A function's entry and the size of the code that starts there. A function gcc split in
    // parts (its hot path, and `name.cold` for the paths it expects to be rare: calls to a
    // function declared cold, such as molt_update_point_slow) has DW_AT_ranges and, in gcc 12's
    // DWARF 5, neither DW_AT_low_pc nor DW_AT_entry_pc. Its entry is then the part that holds
    // the function's own symbol (the other part's symbol is `name.cold`), else the first part
    // listed (gcc lists the part holding the entry first). The size is that part's alone: code
    // redirection patches the entry and needs to know how much code follows it. The other parts
    // are kept too, for naming a frame that lies in one.
    struct CodeRange {
        std::uint64_t entry = 0, size = 0;
        std::vector<std::pair<std::uint64_t, std::uint64_t>> other_parts;  // start, end
    };
    std::optional<CodeRange> code_range(Dwarf_Die *die)
    {
        Dwarf_Addr low, high;
        if (dwarf_lowpc(die, &low) == 0) {
            if (dwarf_highpc(die, &high) != 0 || high < low)
                high = low;
            return CodeRange{low, high - low, {}};
        }
        std::vector<std::pair<std::uint64_t, std::uint64_t>> parts;  // start, end
        Dwarf_Addr base, start, end;
        std::ptrdiff_t offset = 0;
        while ((offset = dwarf_ranges(die, offset, &base, &start, &end)) > 0 && parts.size() < 4096)
            if (end > start)
                parts.emplace_back(start, end);
        if (parts.empty())
            return std::nullopt;
        Dwarf_Addr entry;
        if (dwarf_entrypc(die, &entry) != 0)
            entry = split_function_entry(die, parts);
        CodeRange range{entry, 0, {}};  // an entry outside its ranges: nothing is patched
        for (const auto &[part_start, part_end] : parts) {
            if (entry >= part_start && entry < part_end)
                range.size = part_end - entry;
            else
                range.other_parts.emplace_back(part_start, part_end);
        }
        return range;
    }

    std::uint64_t split_function_entry(Dwarf_Die *die, const std::vector<std::pair<std::uint64_t, std::uint64_t>> &parts) const
    {
        std::string name = attribute_string(die, DW_AT_linkage_name);
        if (name.empty())
            name = attribute_string(die, DW_AT_name);
        for (const auto &part : parts) {
            auto [begin, end] = m_facts.function_symbols.equal_range(part.first);
            for (auto it = begin; it != end; ++it)
                if (it->second == name)
                    return part.first;
        }
        return parts.front().first;
    }

    void read_function(Dwarf_Die *die)
    {
        if (dwarf_hasattr(die, DW_AT_declaration))
            return;
        auto range = code_range(die);
        if (!range || range->entry == 0 || !section_holding(m_facts, range->entry))
            return;  // an abstract instance (only inlined copies have code), or removed by the linker
        Function function;
        function.name = attribute_string(die, DW_AT_name);
        if (function.name.empty())
            return;
        function.file = file_of(die);
        function.address = range->entry;
        function.size = range->size;
        function.other_parts = std::move(range->other_parts);
        function.external = attribute_flag(die, DW_AT_external);
        function.qualified_name = function.external ? function.name : function.file + "/" + function.name;
        function.return_type = read_type_reference(die);
        read_params_and_locals(die, function, 0);
        keep_function(std::move(function));
    }

    void read_params_and_locals(Dwarf_Die *scope, Function &function, int depth)
    {
        if (depth > max_die_depth)
            throw CorruptDwarf("lexical blocks nested deeper than " + std::to_string(max_die_depth));
        for_each_child(scope, [&](Dwarf_Die *child) {
            switch (dwarf_tag(child)) {
            case DW_TAG_formal_parameter:
                if (depth == 0)
                    function.params.push_back({attribute_string(child, DW_AT_name), read_type_reference(child)});
                break;
            case DW_TAG_unspecified_parameters:
                function.variadic = true;
                break;
            case DW_TAG_variable:
                if (!static_location(child) && !dwarf_hasattr_integrate(child, DW_AT_external))
                    function.locals.push_back({attribute_string(child, DW_AT_name), read_type_reference(child)});
                break;
            case DW_TAG_lexical_block:
                read_params_and_locals(child, function, depth + 1);
                break;
            default:
                break;
            }
        });
    }

    // gcc's clones (foo.constprop.0, foo.isra.0, foo.part.0) carry the DWARF name `foo`; the
    // function that keeps the name is the one whose address has the symbol `foo`.
    void keep_function(Function function)
    {
        auto [it, inserted] = m_functions.try_emplace(function.qualified_name, function);
        if (inserted)
            return;
        if (!has_symbol(it->second) && has_symbol(function))
            it->second = std::move(function);
    }

    bool has_symbol(const Function &function) const
    {
        auto [begin, end] = m_facts.function_symbols.equal_range(function.address);
        for (auto it = begin; it != end; ++it)
            if (it->second == function.name)
                return true;
        return false;
    }

    // Two statics can share a qualified name (same name in two blocks of one function, or two
    // inlined copies that the compiler kept apart): the later ones get `@2`, `@3`, by address.
    static void make_variable_names_unique(std::vector<Variable> &variables)
    {
        std::sort(variables.begin(), variables.end(), [](const Variable &a, const Variable &b) {
            return std::tie(a.qualified_name, a.address) < std::tie(b.qualified_name, b.address);
        });
        for (std::size_t i = 1, run = 1; i < variables.size(); ++i) {
            std::string base = variables[i].qualified_name;
            if (base == variables[i - 1].qualified_name.substr(0, base.size()) &&
                (variables[i - 1].qualified_name == base ||
                 variables[i - 1].qualified_name.rfind(base + "@", 0) == 0)) {
                variables[i].qualified_name = base + "@" + std::to_string(++run);
            } else {
                run = 1;
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Types, one raw node per DIE; type_merge.cpp merges them across units afterwards.

    TypeId read_type_reference(Dwarf_Die *die)
    {
        Dwarf_Attribute attr;
        if (!dwarf_attr_integrate(die, DW_AT_type, &attr))
            return void_type;
        Dwarf_Die target;
        if (!dwarf_formref_die(&attr, &target)) {
            warn("unresolvable type reference (" + libdw_message() + "): treated as void");
            return void_type;
        }
        return read_type(&target);
    }

    // Gives the type DIE its raw id; its contents are read later from the worklist, so that
    // long chains of types (struct a -> struct b * -> ...) never deepen the stack.
    TypeId read_type(Dwarf_Die *die)
    {
        // gcc -fdebug-types-section leaves a stub with DW_AT_signature in the unit; the type
        // itself is in a type unit.
        Dwarf_Die in_type_unit;
        for (int i = 0; i < 8; ++i) {
            Dwarf_Attribute signature;
            if (!dwarf_attr(die, DW_AT_signature, &signature) || !dwarf_formref_die(&signature, &in_type_unit) ||
                in_type_unit.addr == die->addr)
                break;
            die = &in_type_unit;
        }
        auto [it, inserted] = m_type_ids.try_emplace(die->addr, static_cast<TypeId>(m_raw.types.size()));
        if (!inserted)
            return it->second;
        TypeId id = it->second;
        m_raw.types.emplace_back();
        m_raw.files.resize(m_raw.types.size());
        const char *declared_in = dwarf_decl_file(die);
        m_raw.files[id] = declared_in ? base_name(declared_in) : base_name(m_unit_file);
        m_pending_types.emplace_back(*die, id);
        return id;
    }

    void read_pending_types()
    {
        while (!m_pending_types.empty()) {
            auto [die, id] = m_pending_types.back();
            m_pending_types.pop_back();
            Type type = build_type(&die);
            m_raw.types[id] = std::move(type);
        }
        normalise_qualified_arrays();
    }

    Type build_type(Dwarf_Die *die)
    {
        Type type;
        int tag = dwarf_tag(die);
        type.name = attribute_string(die, DW_AT_name);
        type.size = attribute_unsigned(die, DW_AT_byte_size).value_or(0);
        switch (tag) {
        case DW_TAG_base_type:
            type.kind = TypeKind::Base;
            type.encoding = encoding_of(attribute_unsigned(die, DW_AT_encoding).value_or(0));
            type.name = canonical_base_name(type.name, type.encoding, type.size);
            break;
        case DW_TAG_structure_type:
        case DW_TAG_class_type:
        case DW_TAG_union_type:
            type.kind = tag == DW_TAG_union_type ? TypeKind::Union : TypeKind::Struct;
            type.declaration = attribute_flag(die, DW_AT_declaration);
            if (!type.declaration)
                read_members(die, type);
            break;
        case DW_TAG_enumeration_type:
            type.kind = TypeKind::Enum;
            type.declaration = attribute_flag(die, DW_AT_declaration);
            read_enumerators(die, type);
            break;
        case DW_TAG_typedef:
            type.kind = TypeKind::Typedef;
            type.target = read_type_reference(die);
            break;
        case DW_TAG_pointer_type:
        case DW_TAG_reference_type:
        case DW_TAG_rvalue_reference_type:
            type.kind = TypeKind::Pointer;
            type.target = read_type_reference(die);
            if (type.size == 0)
                type.size = sizeof(void *);
            type.name.clear();
            break;
        case DW_TAG_const_type:
        case DW_TAG_volatile_type:
        case DW_TAG_restrict_type:
        case DW_TAG_atomic_type:
            return qualified_type(die);
        case DW_TAG_array_type:
            type.kind = TypeKind::Array;
            type.target = read_type_reference(die);
            read_array_bounds(die, type);
            break;
        case DW_TAG_subroutine_type:
            type.kind = TypeKind::Function;
            type.target = read_type_reference(die);
            type.prototyped = attribute_flag(die, DW_AT_prototyped);
            for_each_child(die, [&](Dwarf_Die *child) {
                if (dwarf_tag(child) == DW_TAG_formal_parameter)
                    type.params.push_back(read_type_reference(child));
                else if (dwarf_tag(child) == DW_TAG_unspecified_parameters)
                    type.variadic = true;
            });
            break;
        case DW_TAG_unspecified_type:
            type.kind = TypeKind::Void;
            break;
        default:
            warn("DWARF type tag 0x" + to_hex(tag) + " is not supported: treated as void");
            type.kind = TypeKind::Void;
            type.name.clear();
            break;
        }
        return type;
    }

    static TypeKind qualifier_kind(int tag)
    {
        switch (tag) {
        case DW_TAG_const_type: return TypeKind::Const;
        case DW_TAG_volatile_type: return TypeKind::Volatile;
        case DW_TAG_restrict_type: return TypeKind::Restrict;
        case DW_TAG_atomic_type: return TypeKind::Atomic;
        default: return TypeKind::Void;
        }
    }

    // A chain of qualifiers in one canonical order (const outermost, then volatile, restrict,
    // _Atomic): gcc writes `volatile const int`, clang `const volatile int`; both are one type.
    Type qualified_type(Dwarf_Die *die)
    {
        constexpr TypeKind order[] = {TypeKind::Const, TypeKind::Volatile, TypeKind::Restrict, TypeKind::Atomic};
        std::set<TypeKind> qualifiers;
        Dwarf_Die current = *die;
        TypeId base = void_type;
        for (int i = 0;; ++i) {
            TypeKind kind = qualifier_kind(dwarf_tag(&current));
            if (kind == TypeKind::Void) {
                base = read_type(&current);
                break;
            }
            qualifiers.insert(kind);
            Dwarf_Attribute attr;
            if (!dwarf_attr_integrate(&current, DW_AT_type, &attr))
                break;  // `const void`
            if (!dwarf_formref_die(&attr, &current) || i > max_qualifier_chain)
                throw CorruptDwarf("unresolvable or endless qualifier chain");
        }
        TypeId inner = base;
        for (auto it = std::rbegin(order); it != std::rend(order); ++it) {
            if (!qualifiers.count(*it))
                continue;
            Type node;
            node.kind = *it;
            node.target = inner;
            if (*it == *std::find_if(std::begin(order), std::end(order), [&](TypeKind k) { return qualifiers.count(k); }))
                return node;  // the outermost qualifier is this DIE's own type
            inner = static_cast<TypeId>(m_raw.types.size());
            m_raw.types.push_back(node);
            m_raw.files.resize(m_raw.types.size());
        }
        return Type{};  // cannot happen: the DIE itself is a qualifier
    }

    // gcc qualifies both an array and its element (`const char[6]`); C qualifies only the
    // element, so such a qualifier is the array itself. Run once every type is read.
    void normalise_qualified_arrays()
    {
        for (Type &type : m_raw.types) {
            if (qualifier_kind_of(type.kind) == TypeKind::Void)
                continue;
            std::set<TypeKind> qualifiers;
            TypeId id = void_type;
            const Type *current = &type;
            for (int i = 0; i < max_qualifier_chain && qualifier_kind_of(current->kind) != TypeKind::Void; ++i) {
                qualifiers.insert(current->kind);
                id = current->target;
                current = &m_raw.types[id];
            }
            if (current->kind != TypeKind::Array)
                continue;
            bool element_has_all = true;
            for (TypeKind kind : qualifiers)
                element_has_all &= has_qualifier(current->target, kind);
            if (element_has_all)
                type = *current;
        }
    }

    static TypeKind qualifier_kind_of(TypeKind kind)
    {
        return kind == TypeKind::Const || kind == TypeKind::Volatile || kind == TypeKind::Restrict ||
                       kind == TypeKind::Atomic
                   ? kind
                   : TypeKind::Void;
    }

    bool has_qualifier(TypeId id, TypeKind kind) const
    {
        for (int i = 0; i < 16; ++i) {
            const Type &type = m_raw.types[id];
            if (type.kind == kind)
                return true;
            if (type.kind != TypeKind::Const && type.kind != TypeKind::Volatile && type.kind != TypeKind::Restrict &&
                type.kind != TypeKind::Atomic && type.kind != TypeKind::Array)
                return false;
            id = type.target;
        }
        return false;
    }

    void read_members(Dwarf_Die *die, Type &type)
    {
        for_each_child(die, [&](Dwarf_Die *child) {
            if (dwarf_tag(child) != DW_TAG_member)
                return;
            Member member;
            member.name = attribute_string(child, DW_AT_name);
            member.type = read_type_reference(child);
            member.offset = member_offset(child);
            if (auto bits = attribute_unsigned(child, DW_AT_bit_size)) {
                member.bit_size = static_cast<std::uint32_t>(*bits);
                member.bit_offset = bit_field_offset(child, member);
                member.offset = member.bit_offset / 8;
            }
            type.members.push_back(std::move(member));
        });
    }

    // DW_AT_data_member_location is a constant (DWARF 3+) or an expression (DWARF 2 style,
    // `DW_OP_plus_uconst N`). Union members have none: offset 0.
    std::uint64_t member_offset(Dwarf_Die *member)
    {
        Dwarf_Attribute attr;
        if (!dwarf_attr(member, DW_AT_data_member_location, &attr))
            return 0;
        Dwarf_Word value;
        if (is_constant_form(dwarf_whatform(&attr)) && dwarf_formudata(&attr, &value) == 0)
            return value;
        Dwarf_Op *ops = nullptr;
        std::size_t count = 0;
        if (dwarf_getlocation(&attr, &ops, &count) == 0 && count == 1 &&
            (ops[0].atom == DW_OP_plus_uconst || ops[0].atom == DW_OP_constu))
            return ops[0].number;
        warn("member location expression not understood: offset taken as 0");
        return 0;
    }

    // DWARF 4+/5: DW_AT_data_bit_offset counts from the start of the aggregate.
    // DWARF 2/3: DW_AT_bit_offset counts from the most significant bit of a storage unit of
    // DW_AT_byte_size bytes placed at the member location; on a little-endian machine the
    // first bit is therefore storage_bits - bit_offset - bit_size.
    std::uint64_t bit_field_offset(Dwarf_Die *die, const Member &member)
    {
        if (auto data_bit_offset = attribute_unsigned(die, DW_AT_data_bit_offset))
            return *data_bit_offset;
        auto big_endian_offset = attribute_unsigned(die, DW_AT_bit_offset);
        std::uint64_t storage_bits = attribute_unsigned(die, DW_AT_byte_size).value_or(type_size_from_die(die)) * 8;
        if (!big_endian_offset || storage_bits > 64 * 8 || *big_endian_offset + member.bit_size > storage_bits ||
            member.offset > UINT32_MAX)
            return member.offset * 8;  // absent or nonsensical: the bit-field starts at its byte
        return member.offset * 8 + (storage_bits - *big_endian_offset - member.bit_size);
    }

    // The byte size of a DIE's type, read from the DIEs (through typedefs and qualifiers):
    // the raw type may not be read yet.
    static std::uint64_t type_size_from_die(Dwarf_Die *die)
    {
        Dwarf_Die current = *die;
        for (int i = 0; i < max_qualifier_chain; ++i) {
            Dwarf_Attribute attr;
            if (!dwarf_attr_integrate(&current, DW_AT_type, &attr) || !dwarf_formref_die(&attr, &current))
                return 0;
            if (auto size = attribute_unsigned(&current, DW_AT_byte_size))
                return *size;
        }
        return 0;
    }

    // An enum's underlying type (DW_AT_type, DWARF 3+) tells whether its values are signed.
    static std::optional<bool> underlying_is_signed(Dwarf_Die *die)
    {
        Dwarf_Die current = *die;
        for (int i = 0; i < max_qualifier_chain; ++i) {
            Dwarf_Attribute attr;
            if (!dwarf_attr_integrate(&current, DW_AT_type, &attr) || !dwarf_formref_die(&attr, &current))
                return std::nullopt;
            if (dwarf_tag(&current) == DW_TAG_base_type) {
                auto encoding = attribute_unsigned(&current, DW_AT_encoding).value_or(0);
                return encoding == DW_ATE_signed || encoding == DW_ATE_signed_char;
            }
        }
        return std::nullopt;
    }

    void read_enumerators(Dwarf_Die *die, Type &type)
    {
        std::optional<bool> underlying_signed = underlying_is_signed(die);
        bool has_underlying = underlying_signed.has_value();
        if (has_underlying)
            type.enum_signed = *underlying_signed;
        bool any_negative = false;
        for_each_child(die, [&](Dwarf_Die *child) {
            if (dwarf_tag(child) != DW_TAG_enumerator)
                return;
            Enumerator enumerator;
            enumerator.name = attribute_string(child, DW_AT_name);
            Dwarf_Attribute attr;
            Dwarf_Sword value = 0;
            if (dwarf_attr(child, DW_AT_const_value, &attr)) {
                // data1..data8 carry no sign: the underlying type tells (gcc writes 200 of an
                // unsigned char enum as data1 0xc8). Without one, only sdata is signed: gcc
                // writes negative values as sdata and others as dataN, clang uses sdata/udata.
                unsigned form = dwarf_whatform(&attr);
                bool read_unsigned = has_underlying ? !type.enum_signed : form != DW_FORM_sdata;
                if (read_unsigned) {
                    Dwarf_Word unsigned_value = 0;
                    if (dwarf_formudata(&attr, &unsigned_value) == 0)
                        value = static_cast<Dwarf_Sword>(unsigned_value);
                } else if (dwarf_formsdata(&attr, &value) != 0) {
                    value = 0;
                }
                any_negative |= value < 0 && !read_unsigned;
            }
            enumerator.value = value;
            type.enumerators.push_back(std::move(enumerator));
        });
        if (!has_underlying)
            type.enum_signed = any_negative;
    }

    // Bounds are unsigned unless written as DW_FORM_sdata: gcc writes `char buf[256]` as
    // upper_bound data1 255, which a signed read would take for -1.
    static std::optional<std::int64_t> bound(Dwarf_Die *die, unsigned name)
    {
        Dwarf_Attribute attr;
        if (!dwarf_attr(die, name, &attr))
            return std::nullopt;
        if (dwarf_whatform(&attr) == DW_FORM_sdata) {
            Dwarf_Sword value;
            return dwarf_formsdata(&attr, &value) == 0 ? std::optional<std::int64_t>(value) : std::nullopt;
        }
        Dwarf_Word value;
        if (dwarf_formudata(&attr, &value) != 0 || value > static_cast<Dwarf_Word>(INT64_MAX))
            return std::nullopt;
        return static_cast<std::int64_t>(value);
    }

    void read_array_bounds(Dwarf_Die *die, Type &type)
    {
        for_each_child(die, [&](Dwarf_Die *child) {
            if (dwarf_tag(child) != DW_TAG_subrange_type && dwarf_tag(child) != DW_TAG_enumeration_type)
                return;
            if (dwarf_hasattr(child, DW_AT_count)) {
                // clang writes `count: -1` (sdata) for a flexible array member.
                auto count = bound(child, DW_AT_count);
                type.counts.push_back(count && *count >= 0 ? static_cast<std::uint64_t>(*count) : unknown_count);
                return;
            }
            auto upper = bound(child, DW_AT_upper_bound);
            std::int64_t lower = bound(child, DW_AT_lower_bound).value_or(0);
            // `extern int a[];` has no upper bound; gcc's flexible members use upper_bound -1.
            if (!upper || lower < 0 || *upper < lower)
                type.counts.push_back(unknown_count);
            else
                type.counts.push_back(static_cast<std::uint64_t>(*upper - lower) + 1);
        });
        if (type.counts.empty())
            type.counts.push_back(unknown_count);
    }

    static std::string to_hex(unsigned value)
    {
        char buffer[16];
        std::snprintf(buffer, sizeof buffer, "%x", value);
        return buffer;
    }

    void warn(std::string message) { m_warnings.insert(std::move(message)); }

public:
    struct Unsupported : std::runtime_error {
        using std::runtime_error::runtime_error;
    };

private:
    Dwarf *m_dwarf;
    const ElfFacts &m_facts;
    std::string m_unit_file;
    std::set<std::string> m_unit_path_needed;
    RawTypes m_raw;
    std::unordered_map<const void *, TypeId> m_type_ids;  // DIE address (unique across sections) -> raw id
    std::vector<std::pair<Dwarf_Die, TypeId>> m_pending_types;  // given an id, not read yet
    std::vector<Variable> m_variables;
    std::set<std::uint64_t> m_static_addresses, m_thread_local_offsets;
    std::map<std::string, Function> m_functions;  // by qualified name, so output is sorted
    std::set<std::string> m_warnings;
    std::vector<std::string> m_foreign_units;  // "file (language)", in unit order
};

struct ElfHandle {
    Elf *elf = nullptr;
    Dwarf *dwarf = nullptr;
    ~ElfHandle()
    {
        if (dwarf)
            dwarf_end(dwarf);
        if (elf)
            elf_end(elf);
    }
};

Result<Schema> read_from_elf(const std::string &name, Elf *elf)
{
    ElfHandle handle;
    handle.elf = elf;
    if (!elf)
        return Error{name, "cannot read ELF: " + std::string(elf_errmsg(-1))};
    ElfFacts facts;
    if (auto problem = check_elf(elf, &facts))
        return Error{name, *problem};
    handle.dwarf = dwarf_begin_elf(elf, DWARF_C_READ, nullptr);
    if (!handle.dwarf) {
        std::string reason = libdw_message();
        if (reason.find("no DWARF") != std::string::npos)
            return Error{name, "no DWARF in the file: build with -g"};
        return Error{name, "corrupt DWARF: " + reason};
    }
    try {
        Reader reader(handle.dwarf, facts);
        return reader.read(name);
    } catch (const Reader::Unsupported &unsupported) {
        return Error{name, unsupported.what()};
    } catch (const CorruptDwarf &corrupt) {
        return Error{name, std::string("corrupt DWARF: ") + corrupt.what()};
    } catch (const std::bad_alloc &) {
        return Error{name, "corrupt DWARF: sizes too large to read"};
    } catch (const std::runtime_error &too_deep) {  // from the type merge
        return Error{name, std::string("corrupt DWARF: ") + too_deep.what()};
    } catch (const std::length_error &) {
        return Error{name, "corrupt DWARF: sizes too large to read"};
    }
}

}  // namespace

std::string gnu_build_id_hex(Elf *elf)
{
    const void *id = nullptr;
    ssize_t size = dwelf_elf_gnu_build_id(elf, &id);
    static const char hex[] = "0123456789abcdef";
    std::string text;
    for (ssize_t i = 0; i < size && id; ++i) {
        unsigned char byte = static_cast<const unsigned char *>(id)[i];
        text += hex[byte >> 4];
        text += hex[byte & 15];
    }
    return text;
}

namespace {

struct FdCloser {
    int fd;
    ~FdCloser() { close(fd); }
};

// `path` opened for reading, or why it cannot be (missing, unreadable, a directory).
Result<int> open_version_file(const std::string &path)
{
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return Error{path, std::strerror(errno)};
    if (struct stat status; fstat(fd, &status) == 0 && S_ISDIR(status.st_mode)) {
        close(fd);
        return Error{path, "a directory, not an ELF file"};
    }
    return fd;
}

}  // namespace

Result<Schema> read_schema(const std::string &path)
{
    elf_version(EV_CURRENT);
    MOLT_TRY(fd, open_version_file(path));
    FdCloser closer{fd};
    // ELF_C_READ (not MMAP): a file truncated under us then reads short instead of raising SIGBUS.
    return read_from_elf(path, elf_begin(fd, ELF_C_READ, nullptr));
}

Result<std::string> checked_build_id(const std::string &path)
{
    elf_version(EV_CURRENT);
    MOLT_TRY(fd, open_version_file(path));
    FdCloser closer{fd};
    ElfHandle handle;
    handle.elf = elf_begin(fd, ELF_C_READ, nullptr);
    if (!handle.elf)
        return Error{path, "cannot read ELF: " + std::string(elf_errmsg(-1))};
    if (auto problem = check_elf(handle.elf, nullptr))
        return Error{path, *problem};
    return gnu_build_id_hex(handle.elf);
}

Result<Schema> read_schema_from_memory(const std::string &name, const void *data, std::size_t size)
{
    elf_version(EV_CURRENT);
    // elf_memory wants a mutable buffer; it does not write to it with ELF_C_READ semantics.
    return read_from_elf(name, elf_memory(static_cast<char *>(const_cast<void *>(data)), size));
}

}  // namespace molt::schema
