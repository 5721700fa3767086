// Binary serialisation of schemas and the on-disk cache keyed by build-id.
#include "schema_cache.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "dwarf_reader.h"
#include "type_merge.h"

namespace molt::schema {
namespace {

// Bump when the Schema structures or their meaning change: old entries are then ignored.
constexpr std::string_view cache_magic = "MOLT-SCHEMA-CACHE-12\n";

// FNV-1a over an entry's body, stored after the magic: a damaged entry is told from a good one
// (bounds checks alone would let flipped bytes through as a wrong schema).
std::uint64_t checksum(std::string_view bytes)
{
    std::uint64_t hash = 0xcbf29ce484222325u;
    for (char c : bytes)
        hash = (hash ^ static_cast<unsigned char>(c)) * 0x100000001b3u;
    return hash;
}

class Writer {
public:
    void u64(std::uint64_t value) { m_bytes.append(reinterpret_cast<const char *>(&value), sizeof value); }
    void u32(std::uint32_t value) { m_bytes.append(reinterpret_cast<const char *>(&value), sizeof value); }
    void u8(std::uint8_t value) { m_bytes.push_back(static_cast<char>(value)); }
    void text(const std::string &value)
    {
        u32(static_cast<std::uint32_t>(value.size()));
        m_bytes += value;
    }
    std::string take() { return std::move(m_bytes); }

private:
    std::string m_bytes;
};

// Reads what Writer wrote; every read is bounds-checked, a short or corrupt entry fails.
class Reader {
public:
    explicit Reader(std::string_view bytes) : m_bytes(bytes) {}
    bool failed() const { return m_failed; }
    std::uint64_t u64() { return fixed<std::uint64_t>(); }
    std::uint32_t u32() { return fixed<std::uint32_t>(); }
    std::uint8_t u8() { return fixed<std::uint8_t>(); }
    std::string text()
    {
        std::uint32_t size = u32();
        if (m_failed || size > m_bytes.size() - m_position)
            return fail<std::string>();
        std::string value(m_bytes.substr(m_position, size));
        m_position += size;
        return value;
    }
    // A count of items that each take at least `item_bytes` bytes in the entry: bounded by
    // what is left, so a corrupt count cannot ask for gigabytes.
    std::uint32_t count(std::size_t item_bytes)
    {
        std::uint32_t value = u32();
        if (m_failed || value > (m_bytes.size() - m_position) / item_bytes)
            return fail<std::uint32_t>();
        return value;
    }

private:
    template <typename T>
    T fixed()
    {
        if (m_failed || sizeof(T) > m_bytes.size() - m_position)
            return fail<T>();
        T value;
        std::memcpy(&value, m_bytes.data() + m_position, sizeof value);
        m_position += sizeof value;
        return value;
    }
    template <typename T>
    T fail()
    {
        m_failed = true;
        return T{};
    }
    std::string_view m_bytes;
    std::size_t m_position = 0;
    bool m_failed = false;
};

void write_locals(Writer &out, const std::vector<Local> &locals)
{
    out.u32(static_cast<std::uint32_t>(locals.size()));
    for (const Local &local : locals) {
        out.text(local.name);
        out.u32(local.type);
    }
}

std::vector<Local> read_locals(Reader &in)
{
    std::vector<Local> locals(in.count(8));
    for (Local &local : locals) {
        local.name = in.text();
        local.type = in.u32();
    }
    return locals;
}

bool ids_valid(const Schema &schema)
{
    auto valid = [&](TypeId id) { return id < schema.types.size(); };
    for (const Type &type : schema.types) {
        if (!valid(type.target))
            return false;
        for (const Member &member : type.members)
            if (!valid(member.type))
                return false;
        for (TypeId param : type.params)
            if (!valid(param))
                return false;
    }
    for (const Variable &variable : schema.variables)
        if (!valid(variable.type))
            return false;
    for (const Function &function : schema.functions) {
        if (!valid(function.return_type))
            return false;
        for (const auto *list : {&function.params, &function.locals})
            for (const Local &local : *list)
                if (!valid(local.type))
                    return false;
    }
    return !schema.types.empty();
}

template <typename Item>
bool sorted_and_unique(const std::vector<Item> &items)
{
    for (std::size_t i = 1; i < items.size(); ++i)
        if (!(items[i - 1].qualified_name < items[i].qualified_name))
            return false;
    return true;
}

std::optional<std::string> read_file(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return std::nullopt;
    std::ostringstream bytes;
    bytes << in.rdbuf();
    return std::move(bytes).str();
}

void store(const std::string &directory, const std::string &file, const std::string &bytes)
{
    // mkdir -p, ignoring failures: an unwritable cache is only slower.
    for (std::size_t slash = directory.find('/', 1);; slash = directory.find('/', slash + 1)) {
        mkdir(directory.substr(0, slash).c_str(), 0700);
        if (slash == std::string::npos)
            break;
    }
    std::string temporary = file + ".tmp." + std::to_string(getpid());
    {
        std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
        if (!out.write(bytes.data(), static_cast<std::streamsize>(bytes.size())))
            return (void)std::remove(temporary.c_str());
    }
    if (std::rename(temporary.c_str(), file.c_str()) != 0)
        std::remove(temporary.c_str());
}

}  // namespace

std::string serialize_schema(const Schema &schema)
{
    Writer out;
    out.text(schema.build_id);
    out.u32(static_cast<std::uint32_t>(schema.types.size()));
    for (const Type &type : schema.types) {
        out.u8(static_cast<std::uint8_t>(type.kind));
        out.text(type.name);
        out.text(type.file);
        out.u64(type.size);
        out.u8(static_cast<std::uint8_t>(type.declaration | type.enum_signed << 1 | type.variadic << 2 | type.prototyped << 3));
        out.u8(static_cast<std::uint8_t>(type.encoding));
        out.u32(type.target);
        out.u32(static_cast<std::uint32_t>(type.counts.size()));
        for (std::uint64_t count : type.counts)
            out.u64(count);
        out.u32(static_cast<std::uint32_t>(type.members.size()));
        for (const Member &member : type.members) {
            out.text(member.name);
            out.u32(member.type);
            out.u64(member.offset);
            out.u32(member.bit_size);
            out.u64(member.bit_offset);
        }
        out.u32(static_cast<std::uint32_t>(type.enumerators.size()));
        for (const Enumerator &enumerator : type.enumerators) {
            out.text(enumerator.name);
            out.u64(static_cast<std::uint64_t>(enumerator.value));
        }
        out.u32(static_cast<std::uint32_t>(type.params.size()));
        for (TypeId param : type.params)
            out.u32(param);
    }
    out.u32(static_cast<std::uint32_t>(schema.variables.size()));
    for (const Variable &variable : schema.variables) {
        out.text(variable.name);
        out.text(variable.qualified_name);
        out.text(variable.file);
        out.text(variable.function);
        out.u32(variable.type);
        out.u64(variable.address);
        out.u64(variable.size);
        out.u8(static_cast<std::uint8_t>(variable.external | variable.read_only << 1 | variable.thread_local_storage << 2));
    }
    out.u32(static_cast<std::uint32_t>(schema.functions.size()));
    for (const Function &function : schema.functions) {
        out.text(function.name);
        out.text(function.qualified_name);
        out.text(function.file);
        out.u64(function.address);
        out.u64(function.size);
        out.u32(static_cast<std::uint32_t>(function.other_parts.size()));
        for (const auto &[start, end] : function.other_parts) {
            out.u64(start);
            out.u64(end);
        }
        out.u8(static_cast<std::uint8_t>(function.external | function.variadic << 1));
        out.u32(function.return_type);
        write_locals(out, function.params);
        write_locals(out, function.locals);
    }
    out.u32(static_cast<std::uint32_t>(schema.warnings.size()));
    for (const std::string &warning : schema.warnings)
        out.text(warning);
    out.u32(static_cast<std::uint32_t>(schema.foreign_units.size()));
    for (const std::string &unit : schema.foreign_units)
        out.text(unit);
    out.u32(static_cast<std::uint32_t>(schema.transformers.size()));
    for (const Transformer &transformer : schema.transformers) {
        out.u8(static_cast<std::uint8_t>(transformer.kind));
        out.u8(transformer.parallel);
        out.text(transformer.name);
        out.text(transformer.renamed_from);
        out.text(transformer.renamed_to);
        out.text(transformer.member);
        out.text(transformer.target);
        out.text(transformer.case_value);
        out.text(transformer.case_member);
        out.u64(transformer.record_address);
    }
    std::string body = out.take();
    std::uint64_t sum = checksum(body);
    std::string entry(cache_magic);
    entry.append(reinterpret_cast<const char *>(&sum), sizeof sum);
    return entry + body;
}

std::optional<Schema> deserialize_schema(const std::string &bytes)
{
    std::size_t header = cache_magic.size() + sizeof(std::uint64_t);
    if (bytes.size() < header || bytes.compare(0, cache_magic.size(), cache_magic) != 0)
        return std::nullopt;
    std::uint64_t sum;
    std::memcpy(&sum, bytes.data() + cache_magic.size(), sizeof sum);
    std::string_view body = std::string_view(bytes).substr(header);
    if (checksum(body) != sum)
        return std::nullopt;  // damaged: read from DWARF again
    Reader in(body);
    Schema schema;
    schema.build_id = in.text();
    schema.types.resize(in.count(39));
    for (Type &type : schema.types) {
        type.kind = static_cast<TypeKind>(in.u8());
        type.name = in.text();
        type.file = in.text();
        type.size = in.u64();
        std::uint8_t flags = in.u8();
        type.declaration = flags & 1;
        type.enum_signed = flags & 2;
        type.variadic = flags & 4;
        type.prototyped = flags & 8;
        type.encoding = static_cast<Encoding>(in.u8());
        type.target = in.u32();
        type.counts.resize(in.count(8));
        for (std::uint64_t &count : type.counts)
            count = in.u64();
        type.members.resize(in.count(28));
        for (Member &member : type.members) {
            member.name = in.text();
            member.type = in.u32();
            member.offset = in.u64();
            member.bit_size = in.u32();
            member.bit_offset = in.u64();
        }
        type.enumerators.resize(in.count(12));
        for (Enumerator &enumerator : type.enumerators) {
            enumerator.name = in.text();
            enumerator.value = static_cast<std::int64_t>(in.u64());
        }
        type.params.resize(in.count(4));
        for (TypeId &param : type.params)
            param = in.u32();
        if (in.failed() || type.kind > TypeKind::Function || type.encoding > Encoding::Other)
            return std::nullopt;
    }
    schema.variables.resize(in.count(37));
    for (Variable &variable : schema.variables) {
        variable.name = in.text();
        variable.qualified_name = in.text();
        variable.file = in.text();
        variable.function = in.text();
        variable.type = in.u32();
        variable.address = in.u64();
        variable.size = in.u64();
        std::uint8_t flags = in.u8();
        variable.external = flags & 1;
        variable.read_only = flags & 2;
        variable.thread_local_storage = flags & 4;
    }
    schema.functions.resize(in.count(41));
    for (Function &function : schema.functions) {
        function.name = in.text();
        function.qualified_name = in.text();
        function.file = in.text();
        function.address = in.u64();
        function.size = in.u64();
        function.other_parts.resize(in.count(16));
        for (auto &[start, end] : function.other_parts) {
            start = in.u64();
            end = in.u64();
        }
        std::uint8_t flags = in.u8();
        function.external = flags & 1;
        function.variadic = flags & 2;
        function.return_type = in.u32();
        function.params = read_locals(in);
        function.locals = read_locals(in);
    }
    schema.warnings.resize(in.count(4));
    for (std::string &warning : schema.warnings)
        warning = in.text();
    schema.foreign_units.resize(in.count(4));
    for (std::string &unit : schema.foreign_units)
        unit = in.text();
    schema.transformers.resize(in.count(13));
    for (Transformer &transformer : schema.transformers) {
        std::uint8_t kind = in.u8();
        if (kind < 1 || kind > 11 || kind == 6 || kind == 8)
            return std::nullopt;
        transformer.kind = static_cast<Transformer::Kind>(kind);
        transformer.parallel = in.u8() != 0;
        transformer.name = in.text();
        transformer.renamed_from = in.text();
        transformer.renamed_to = in.text();
        transformer.member = in.text();
        transformer.target = in.text();
        transformer.case_value = in.text();
        transformer.case_member = in.text();
        transformer.record_address = in.u64();
    }
    if (in.failed() || !ids_valid(schema) || !sorted_and_unique(schema.variables) ||
        !sorted_and_unique(schema.functions) || !check_value_nesting(schema.types, 256).empty())
        return std::nullopt;  // the same promises the reader makes, or the entry is not used
    return schema;
}

std::optional<std::string> cache_directory()
{
    if (const char *directory = std::getenv("MOLT_CACHE_DIR"); directory && *directory)
        return std::string(directory);
    if (const char *xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
        return std::string(xdg) + "/molt";
    if (const char *home = std::getenv("HOME"); home && *home)
        return std::string(home) + "/.cache/molt";
    return std::nullopt;
}

Result<Schema> load_schema(const std::string &path, CacheUse use)
{
    std::optional<std::string> directory = use == CacheUse::Use ? cache_directory() : std::nullopt;
    std::string build_id;
    if (directory) {
        // The entry stands for the file's DWARF, found by its build-id; the file itself must
        // still be whole (a copy cut short keeps its build-id, and loading it kills the program).
        MOLT_TRY(checked, checked_build_id(path));
        build_id = checked;
    }
    std::string entry = build_id.empty() ? std::string() : *directory + "/" + build_id + ".schema";
    if (!entry.empty()) {
        if (auto bytes = read_file(entry)) {
            std::optional<Schema> cached;
            try {
                cached = deserialize_schema(*bytes);
            } catch (const std::bad_alloc &) {
                cached.reset();  // a damaged entry; the DWARF is read instead
            }
            if (cached && cached->build_id == build_id) {
                cached->path = path;
                return std::move(*cached);
            }
        }
    }
    Result<Schema> schema = read_schema(path);
    if (schema && !entry.empty() && schema->build_id == build_id)
        store(*directory, entry, serialize_schema(*schema));
    return schema;
}

}  // namespace molt::schema
