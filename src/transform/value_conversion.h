// Converting one value from the old version's type to the new version's type, by the default
// rules of the schema diff: what the update does to globals, statics and MOLT_LOCALs.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <unordered_map>
#include <string>

#include "annotations.h"
#include "conversion_program.h"
#include "layout_identity.h"
#include "result.h"
#include "schema.h"

namespace molt::transform {

// A place inside a value ("variable table[3].next"), spelled out only when a conversion fails:
// building a path string for every member of every object would cost more than converting it.
class Place {
public:
    explicit Place(const std::string &root) : m_root(&root) {}
    Place(const Place &parent, const std::string &member) : m_parent(&parent), m_member(&member) {}
    Place(const Place &parent, std::uint64_t index) : m_parent(&parent), m_index(index), m_is_index(true) {}
    // A path spelled already (".next", "[3].key"), appended as it is.
    struct Suffix {};
    Place(const Place &parent, const std::string &suffix, Suffix) : m_parent(&parent), m_member(&suffix), m_is_suffix(true) {}
    std::string text() const
    {
        if (m_root)
            return *m_root;
        std::string prefix = m_parent->text();
        if (m_is_index)
            return prefix + "[" + std::to_string(m_index) + "]";
        if (m_is_suffix)
            return prefix + *m_member;
        return prefix + "." + (m_member->empty() ? std::string("<anonymous>") : *m_member);
    }

private:
    const std::string *m_root = nullptr;
    const Place *m_parent = nullptr;
    const std::string *m_member = nullptr;
    std::uint64_t m_index = 0;
    bool m_is_index = false;
    bool m_is_suffix = false;
};

// Where a pointer into the old version's code goes in the new version: old address (as the
// program sees it) to new address, or nullopt when it does not point at an old function.
using FunctionRemap = std::function<std::optional<std::uintptr_t>(std::uintptr_t)>;

// Where a data pointer of the old version goes in the new one (the heap converter). An interface,
// not a std::function: it is asked once per pointer converted, a million times for a million
// objects, and a std::function call was two calls.
class PointerTranslator {
public:
    // `address` points to an object of `old_pointee` (old schema, behind its typedefs and
    // qualifiers); the result to the corresponding object or member of the new version. Fails,
    // naming `where`, when the pointer cannot be redirected.
    virtual Result<std::uintptr_t> translate(std::uintptr_t address, schema::TypeId old_pointee, const Place &where) = 0;
    // The same for the pointers of an array, read in order (a hash table's bucket heads): `hint`
    // starts at 0 and is kept by the caller from one pointer of the array to the next, for the
    // translator to guess where the next one's object is from where the last one's was.
    virtual Result<std::uintptr_t> translate_next(std::uintptr_t address, schema::TypeId old_pointee, const Place &where,
                                                  std::size_t &hint)
    {
        (void)hint;
        return translate(address, old_pointee, where);
    }
    // Told of a pointer that will be translated soon (an array of pointers is read a few
    // elements ahead), so that the translator can ask for what its lookup will read.
    virtual void prefetch(std::uintptr_t address) const = 0;

protected:
    ~PointerTranslator() = default;
};

using schema::corresponding_member;

class ValueConverter {
public:
    ValueConverter(const schema::Schema &old_schema, const schema::Schema &new_schema, FunctionRemap remap_function);

    // Whether a value of `old_type` can be converted into `new_type` by default rules, following
    // pointers to the objects they reach (which heap conversion converts in turn). The error
    // says where and why, e.g. "variable table[].value: the type changed from int to char *".
    Result<bool> plan(schema::TypeId old_type, schema::TypeId new_type, const std::string &where) const;

    // plan() without the reason, remembered per type pair: asked for every member of every
    // object under a type transformer. Safe to call from several threads.
    bool convertible(schema::TypeId old_type, schema::TypeId new_type) const;

    // Null: pointers are copied as they are.
    void set_pointer_translator(PointerTranslator *translator) { m_translate = translator; }
    // Runs two pieces of work at once (the runtime's helper thread), or nothing: then a big array of
    // pointers (a table of 65,536 bucket heads in a global) is converted in two halves at once.
    // Set only around conversions that no other thread runs beside (the globals': the heap's
    // conversion is on two threads already).
    using Parallel = std::function<void(const std::function<void()> &, const std::function<void()> &)>;
    void set_parallel(Parallel parallel) { m_parallel = std::move(parallel); }

    // A programmer's transformer for a type of the new version (by qualified type name): it runs
    // after the default conversion of each object of that type, and members the default rules
    // cannot convert are left zero for it. Returns null or a message that fails the conversion.
    using Transformer = const char *(*)(void *to, const void *from);
    // `parallel`: the programmer said it may run on several threads at once (it keeps no state
    // of its own); the others never run two at a time.
    void add_type_transformer(const std::string &type_name, Transformer function, bool parallel = false);
    // The transformer that runs on a value of this pair: null when none is registered for the new
    // type, or when the pair did not change (a transformer is written for a change: run on an
    // identical object, as when a version is updated to itself, it would convert the
    // already-converted, as heap objects of an unchanged type never are).
    Transformer type_transformer(schema::TypeId old_type, schema::TypeId new_type) const;
    bool has_type_transformers() const { return !m_transformers.empty(); }

    // Writes the converted value into `to` (new_size bytes, zero-filled first unless `zeroed`
    // says they are zero already). Fails, naming the place, when a value does not fit
    // (narrowing, an enum value without a counterpart, a dropped array element that is not zero).
    Result<bool> convert(schema::TypeId old_type, const void *from, schema::TypeId new_type, void *to,
                         const std::string &where, bool zeroed = false) const;

    const schema::LayoutIdentity &identity() const { return m_identity; }

    // Whether a value of this pair must be converted piece by piece, and what it reaches walked:
    // its layout changed, or it leads to a member an annotation speaks for (a void * whose
    // pointee changed: the struct holding it did not, by its bits).
    bool changed(schema::TypeId old_type, schema::TypeId new_type) const
    {
        return !m_identity.identical(old_type, new_type) ||
               (!m_reaches_annotation.empty() && m_reaches_annotation[schema::strip_typedefs_and_qualifiers(m_new, new_type)]);
    }

    // Where a pointer to a part of an object goes: `offset` bytes into an old object of
    // `old_type`, typed `old_pointee`, is the start of some member (or array element) of that
    // type, nested or not; the result is the offset of the corresponding member of `new_type`,
    // or nullopt when there is none (the member was dropped, or nothing of that type starts
    // there).
    std::optional<std::uint64_t> corresponding_offset(schema::TypeId old_type, schema::TypeId new_type,
                                                      std::uint64_t offset, schema::TypeId old_pointee) const;

    // The annotations of the new version, resolved (annotations.h).
    const Annotations &annotations() const { return m_annotations; }

    // The program of a void * variable that MOLT_VARIABLE_POINTS_TO annotates (one pointer to the
    // pair's pointee), or null.
    const ConversionProgram *variable_program(const std::string &new_variable) const;

    // The conversion of a pair of types compiled into steps (conversion_program.h): made on first
    // use and kept for the converter's life. Safe to call from several threads.
    const ConversionProgram &program(schema::TypeId old_type, schema::TypeId new_type) const;

    // Compiles, before the pause, the program of a pair and of every pair its pointers lead to
    // (linking each pointer to its pointee's program), so that the pause only runs them. True when
    // one of those programs follows a MOLT_LENGTH_IN pointer.
    bool precompile(schema::TypeId old_type, schema::TypeId new_type) const;

    // Converts one value by its program, as convert() does; `to` is zero-filled first unless the
    // caller says it is `zeroed` already (a fresh calloc).
    Result<bool> run(const ConversionProgram &program, const unsigned char *from, unsigned char *to, const Place &where,
                     bool zeroed) const;

    // For each member of new struct `y`, its counterpart in old struct `x` (corresponding_member)
    // or null: matched once per pair of types, then reused for every object converted.
    const std::vector<const schema::Member *> &matched_members(const schema::Type &x, const schema::Type &y) const;

private:
    Result<bool> convert_value(schema::TypeId old_type, const unsigned char *from, schema::TypeId new_type,
                               unsigned char *to, const Place &where) const;
    Result<bool> plan_pointee(schema::TypeId old_pointee, schema::TypeId new_pointee, const std::string &where) const;
    Result<bool> plan_annotated(const schema::Type &x, const schema::Type &y, const schema::Member &member,
                                const std::string &where) const;
    Result<bool> plan_array(const schema::Type &x, std::size_t old_dim, const schema::Type &y, std::size_t new_dim,
                            const std::string &where) const;
    Result<bool> convert_array(const schema::Type &x, std::size_t old_dim, const unsigned char *from,
                               const schema::Type &y, std::size_t new_dim, unsigned char *to, const Place &where) const;
    Result<bool> convert_scalar(schema::TypeId old_type, const unsigned char *from, schema::TypeId new_type,
                                unsigned char *to, const Place &where) const;

    // Compiling (conversion_program.cpp).
    void compile(ConversionProgram &program, schema::TypeId old_type, schema::TypeId new_type) const;
    void flatten(schema::TypeId old_type, schema::TypeId new_type, std::uint64_t from, std::uint64_t to,
                 const std::string &path, std::uint32_t member, ConversionProgram &program) const;
    void flatten_members(const schema::Type &x, const schema::Type &y, std::uint64_t from, std::uint64_t to,
                         const std::string &path, std::uint32_t member, bool top_level_of_transformed,
                         ConversionProgram &program) const;
    void add_reach(schema::TypeId old_type, schema::TypeId new_type, std::uint64_t offset, ConversionProgram &program) const;
    bool flatten_annotated(const schema::Type &x, const schema::Type &y, const schema::Member &old_member,
                           const schema::Member &wanted, std::uint64_t from, std::uint64_t to, const std::string &place,
                           std::uint32_t group, ConversionProgram &program) const;
    UnionConversion union_conversion(const Annotations::Cases &cases, std::uint64_t from, std::uint64_t to,
                                     const schema::Member &old_union, const schema::Member &new_union) const;
    bool add_annotated_reach(const schema::Type &x, const schema::Type &y, const schema::Member &old_member,
                             const schema::Member &member, std::uint64_t offset, ConversionProgram &program) const;
    void add_length(const schema::Type &x, const schema::Type &y, const schema::Member &member, std::uint64_t offset,
                    ReachStep &step) const;
    void find_types_reaching_annotations();
    // A type transformer's call: its message, or its crash, as a failure naming the place.
    Result<bool> run_transformer(Transformer transformer, void *to, const void *from, const Place &where) const;
    Result<bool> run_slots(const ConversionStep &step, const ConversionProgram &element, const unsigned char *from,
                           unsigned char *to, const Place &place, std::uint64_t first, std::uint64_t end) const;
    void zero(unsigned char *to, std::size_t size) const;
    bool translated(const ConversionStep &step, const ConversionProgram &program, const unsigned char *from,
                    unsigned char *to, const Place &where, std::size_t *hint = nullptr) const;
    Result<bool> run_pointer_slots(const ConversionStep &step, const ConversionProgram &element, const unsigned char *from,
                                   unsigned char *to, const Place &place, std::uint64_t first, std::uint64_t end) const;
    Result<bool> run_step(const ConversionStep &step, const ConversionProgram &program, const unsigned char *from,
                          unsigned char *to, const Place &where) const;

    const schema::Schema &m_old;
    const schema::Schema &m_new;
    schema::LayoutIdentity m_identity;
    Annotations m_annotations;
    std::vector<bool> m_reaches_annotation;  // by new type id: leads to an annotated member (empty: none)
    mutable std::map<std::string, std::unique_ptr<ConversionProgram>> m_variable_programs;  // under m_programs_mutex
    FunctionRemap m_remap;
    PointerTranslator *m_translate = nullptr;
    Parallel m_parallel;
    std::unordered_map<schema::TypeId, Transformer> m_transformers;  // by type of the new schema
    std::set<Transformer> m_parallel_transformers;
    // Whether an old type holds no pointer anywhere (nothing to translate: a copy is enough).
    bool pointer_free(schema::TypeId old_type) const;

    std::vector<signed char> m_pointer_free;  // by old type id (after typedefs): 1 yes, 0 no, -1 not known yet
    mutable std::mutex m_matched_mutex;
    mutable std::map<std::pair<const schema::Type *, const schema::Type *>, std::vector<const schema::Member *>> m_matched;
    mutable std::mutex m_convertible_mutex;
    mutable std::map<std::pair<schema::TypeId, schema::TypeId>, bool> m_convertible;  // results of complete plans
    mutable std::set<std::pair<schema::TypeId, schema::TypeId>> m_planning;  // pointee pairs being planned now (cycles)
    // Compiled programs by (old, new) type id as asked (typedefs kept: a transformer may be
    // registered under a typedef's name). Recursive: an array's program compiles its element's.
    mutable std::recursive_mutex m_programs_mutex;
    mutable std::map<std::pair<schema::TypeId, schema::TypeId>, std::unique_ptr<ConversionProgram>> m_programs;
};

// From this size in bytes, a big array of a global is worth two threads (its zeroing, its
// conversion, the queuing of its pointers): below it, handing half to the helper costs more.
constexpr std::size_t big_array_bytes = 256 * 1024;

// Runs work(first, end) over [0, count) on the two threads `parallel` lends: each takes the next
// `stretch` as it finishes one (an atomic cursor), so that they end together, where fixed halves
// ended up to a fifth of the pass apart (one thread starts later, or runs slower for a while on a
// shared core). A failure stops the other thread at its next stretch. An exception in `work`
// (memory running out) is a failure too, named by what(): on the helper thread it would end the
// process. `first_here`, if given, is work this thread does before it takes stretches (work that
// must not run on the helper), while the helper has begun on them.
template <typename Work, typename What>
Result<bool> share_by_stretches(const ValueConverter::Parallel &parallel, std::uint64_t count, std::uint64_t stretch,
                                const Work &work, const What &what,
                                const std::function<Result<bool>()> &first_here = nullptr)
{
    std::atomic<std::uint64_t> next{0};
    auto take = [&](Result<bool> &result) {
        try {
            for (std::uint64_t first; (first = next.fetch_add(stretch, std::memory_order_relaxed)) < count;) {
                result = work(first, std::min(first + stretch, count));
                if (!result)
                    break;
            }
        } catch (const std::exception &exception) {
            result = Error{"", what() + ": " + exception.what()};
        }
        if (!result)
            next.store(count, std::memory_order_relaxed);  // the other stops at its next stretch
    };
    Result<bool> mine = true, theirs = true;
    parallel(
        [&] {
            if (first_here && !(mine = first_here())) {
                next.store(count, std::memory_order_relaxed);
                return;
            }
            take(mine);
        },
        [&] { take(theirs); });
    return mine ? theirs : mine;
}

// Reads `count` (at most 8) pointer slots of a packed array into `words`, the others zero: a bit
// per slot that holds a pointer. Read eight at a time, a table of 65,536 bucket heads or
// connections, mostly empty, costs little more than its reading.
inline unsigned read_pointer_group(const unsigned char *slots, std::uint64_t count, std::uintptr_t (&words)[8])
{
    if (count >= 8) {
        std::memcpy(words, slots, sizeof words);  // a fixed size: two vector loads, not a call
        std::uintptr_t any = 0;
#pragma GCC unroll 8
        for (std::uintptr_t word : words)
            any |= word;
        if (!any)
            return 0;  // the common case in a sparse table: told by one test, not eight
    } else {
        std::fill(std::begin(words), std::end(words), 0);
        std::memcpy(words, slots, count * sizeof(std::uintptr_t));
    }
    unsigned held = 0;
#pragma GCC unroll 8
    for (unsigned k = 0; k < 8; ++k)
        held |= unsigned{words[k] != 0} << k;
    return held;
}

}  // namespace molt::transform
