// Compiling a pair of types into a ConversionProgram, and running it on one value. The steps
// do what ValueConverter::convert_value would do member by member; what they cannot express
// simply (enums, floats, unions, arrays that shrink) is left to it as an Interpreted step.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <set>

#include "integers.h"
#include "value_conversion.h"

namespace molt::transform {
namespace {

using schema::Encoding;
using schema::Member;
using schema::Type;
using schema::TypeId;
using schema::TypeKind;
using schema::layout;
using schema::strip_typedefs_and_qualifiers;

Error failure(const std::string &where, const std::string &why) { return Error{"", where + ": " + why}; }

std::uint32_t add_path(ConversionProgram &program, std::string path)
{
    program.paths.push_back(std::move(path));
    return static_cast<std::uint32_t>(program.paths.size() - 1);
}

// Copies merge with the one before when both follow on from it directly, in the old value and
// in the new: a run of members that stay together becomes one copy. (Not across a gap: on the
// new side it may hold a new member, which must stay zero.)
void add_copy(ConversionProgram &program, std::uint64_t from, std::uint64_t to, std::uint64_t size, std::uint32_t member)
{
    if (!program.steps.empty()) {
        ConversionStep &last = program.steps.back();
        if (last.kind == ConversionStep::Kind::Copy && last.member == member && from == last.from + last.size &&
            to == last.to + last.size) {
            last.size += size;
            return;
        }
    }
    ConversionStep step;
    step.kind = ConversionStep::Kind::Copy;
    step.from = from;
    step.to = to;
    step.size = size;
    step.member = member;
    program.steps.push_back(step);
}

bool is_plain_integer(const Type &type) { return type.kind == TypeKind::Base && schema::is_integral(type); }

std::string member_path(const std::string &path, const Member &member)
{
    return path + "." + (member.name.empty() ? std::string("<anonymous>") : member.name);
}

}  // namespace

const UnionConversion::Case *choose_case(const UnionConversion &conversion, const unsigned char *from)
{
    __int128 value = read_integer(from + conversion.discriminant, conversion.discriminant_size, conversion.discriminant_signed);
    for (const UnionConversion::Case &each : conversion.cases)
        if (each.value == value)
            return &each;
    return nullptr;
}

const ConversionProgram &ValueConverter::program(TypeId old_type, TypeId new_type) const
{
    std::lock_guard lock(m_programs_mutex);
    auto [found, inserted] = m_programs.try_emplace({old_type, new_type});
    if (inserted) {
        found->second = std::make_unique<ConversionProgram>();
        compile(*found->second, old_type, new_type);
    }
    return *found->second;
}

void ValueConverter::compile(ConversionProgram &program, TypeId old_type, TypeId new_type) const
{
    program.old_type = strip_typedefs_and_qualifiers(m_old, old_type);
    program.new_type = strip_typedefs_and_qualifiers(m_new, new_type);
    const Type &x = m_old.type(program.old_type);
    const Type &y = m_new.type(program.new_type);
    program.old_size = x.size;
    program.new_size = y.size;
    program.transformer = type_transformer(old_type, new_type);
    if (!program.transformer)
        flatten(old_type, new_type, 0, 0, "", 0, program);
    else if (x.kind == TypeKind::Struct && y.kind == TypeKind::Struct)
        flatten_members(x, y, 0, 0, "", 0, true, program);  // the defaults, where they apply
    add_reach(old_type, new_type, 0, program);
    for (const ConversionStep &step : program.steps)
        if (step.kind == ConversionStep::Kind::DataPointer && program.pointers.size() < 4)
            program.pointers.push_back(step.from);
    // Transformers are the programmer's code: never run two at once (they may keep counts).
    program.parallel_safe = !program.transformer || m_parallel_transformers.count(program.transformer);
    bool every_transformer_parallel = true;
    for (const auto &[type, transformer] : m_transformers)
        every_transformer_parallel = every_transformer_parallel && m_parallel_transformers.count(transformer);
    for (const ConversionStep &step : program.steps) {
        if (step.kind == ConversionStep::Kind::Array && !step.element->parallel_safe)
            program.parallel_safe = false;
        if (step.kind == ConversionStep::Kind::Interpreted && !every_transformer_parallel)
            program.parallel_safe = false;  // whether it reaches one is not worth finding out
    }
    for (const UnionConversion &conversion : program.unions)
        for (const UnionConversion::Case &each : conversion.cases)
            program.parallel_safe = program.parallel_safe && each.program->parallel_safe;
}

void ValueConverter::flatten(TypeId old_type, TypeId new_type, std::uint64_t from, std::uint64_t to,
                             const std::string &path, std::uint32_t member, ConversionProgram &program) const
{
    const Type &x = layout(m_old, old_type);
    const Type &y = layout(m_new, new_type);
    ConversionStep step;
    step.from = from;
    step.to = to;
    step.member = member;
    if (m_annotations.opaque(new_type))  // MOLT_OPAQUE: bytes, as many as both sizes allow
        return add_copy(program, from, to, std::min(x.size, y.size), member);
    if (!type_transformer(old_type, new_type)) {
        if (m_identity.identical(old_type, new_type) && pointer_free(old_type))
            return add_copy(program, from, to, y.size, member);
        if (x.kind == TypeKind::Struct && y.kind == TypeKind::Struct)
            return flatten_members(x, y, from, to, path, member, false, program);
        if (x.kind == TypeKind::Pointer && y.kind == TypeKind::Pointer) {
            const Type &pointee = layout(m_new, y.target);
            if (pointee.kind == TypeKind::Void)
                return add_copy(program, from, to, y.size, member);  // a void * keeps its value
            step.kind = pointee.kind == TypeKind::Function ? ConversionStep::Kind::FunctionPointer
                                                           : ConversionStep::Kind::DataPointer;
            step.old_type = strip_typedefs_and_qualifiers(m_old, x.target);
            step.new_type = strip_typedefs_and_qualifiers(m_new, y.target);
            step.path = add_path(program, path);
            program.steps.push_back(step);
            return;
        }
        if (is_plain_integer(x) && is_plain_integer(y)) {
            step.kind = ConversionStep::Kind::Integer;
            step.size = x.size;
            step.new_size = y.size;
            step.old_signed = schema::is_signed_integral(x);
            step.new_signed = schema::is_signed_integral(y);
            step.to_bool = y.encoding == Encoding::Bool;
            step.new_type = new_type;
            step.path = add_path(program, path);
            program.steps.push_back(step);
            return;
        }
        // A one-dimensional array that keeps or gains elements: element by element (the new
        // ones stay zero). One that loses elements must check them: the interpreter does.
        if (x.kind == TypeKind::Array && y.kind == TypeKind::Array && x.counts.size() == 1 && y.counts.size() == 1 &&
            x.counts[0] != schema::unknown_count && y.counts[0] != schema::unknown_count && y.counts[0] >= x.counts[0]) {
            step.kind = ConversionStep::Kind::Array;
            step.element = &this->program(x.target, y.target);
            step.count = x.counts[0];
            step.old_stride = layout(m_old, x.target).size;
            step.new_stride = layout(m_new, y.target).size;
            step.path = add_path(program, path);
            program.steps.push_back(step);
            return;
        }
    }
    step.kind = ConversionStep::Kind::Interpreted;
    step.old_type = old_type;
    step.new_type = new_type;
    step.path = add_path(program, path);
    program.steps.push_back(step);
}

// Members by name (matched once per pair). At the top level of a type with a transformer, the
// members the defaults cannot convert are skipped (the transformer fills them), and each member
// gets its own index so that a failure zeroes it alone.
void ValueConverter::flatten_members(const Type &x, const Type &y, std::uint64_t from, std::uint64_t to,
                                     const std::string &path, std::uint32_t member, bool top_level_of_transformed,
                                     ConversionProgram &program) const
{
    const std::vector<const Member *> &matched = matched_members(x, y);
    for (std::size_t index = 0; index < y.members.size(); ++index) {
        const Member &wanted = y.members[index];
        const Member *old_member = matched[index];
        if (!old_member)
            continue;  // a new member: zero
        std::uint32_t group = member;
        if (top_level_of_transformed) {
            program.members.push_back({to + wanted.offset, wanted.is_bit_field() ? 0 : layout(m_new, wanted.type).size});
            group = static_cast<std::uint32_t>(program.members.size() - 1);
        }
        std::string place = member_path(path, wanted);
        if (wanted.is_bit_field() || old_member->is_bit_field()) {
            ConversionStep step;
            step.kind = ConversionStep::Kind::BitField;
            step.member = group;
            step.old_type = old_member->type;
            step.new_type = wanted.type;
            step.old_bits = old_member->is_bit_field() ? old_member->bit_size : 0;
            step.new_bits = wanted.is_bit_field() ? wanted.bit_size : 0;
            step.from = old_member->is_bit_field() ? from * 8 + old_member->bit_offset : from + old_member->offset;
            step.to = wanted.is_bit_field() ? to * 8 + wanted.bit_offset : to + wanted.offset;
            step.size = layout(m_old, old_member->type).size;
            step.new_size = layout(m_new, wanted.type).size;
            step.old_signed = schema::is_signed_integral(layout(m_old, old_member->type));
            step.new_signed = schema::is_signed_integral(layout(m_new, wanted.type));
            step.path = add_path(program, place);
            program.steps.push_back(step);
            continue;
        }
        if (top_level_of_transformed && !convertible(old_member->type, wanted.type))
            continue;  // left zero for the transformer
        if (flatten_annotated(x, y, *old_member, wanted, from, to, place, group, program))
            continue;
        flatten(old_member->type, wanted.type, from + old_member->offset, to + wanted.offset, place, group, program);
    }
}

// A member an annotation speaks for: a void * that points to a known type (MOLT_POINTS_TO), a
// union whose member a discriminant chooses (MOLT_UNION_CASE). False: no annotation applies.
bool ValueConverter::flatten_annotated(const Type &x, const Type &y, const Member &old_member, const Member &wanted,
                                       std::uint64_t from, std::uint64_t to, const std::string &place,
                                       std::uint32_t group, ConversionProgram &program) const
{
    if (m_annotations.empty())
        return false;
    auto pointee = m_annotations.points_to(y, wanted.name);
    if (pointee && *pointee) {
        ConversionStep step;
        step.kind = ConversionStep::Kind::DataPointer;
        step.from = from + old_member.offset;
        step.to = to + wanted.offset;
        step.member = group;
        step.old_type = strip_typedefs_and_qualifiers(m_old, (*pointee)->old_pointee);
        step.new_type = strip_typedefs_and_qualifiers(m_new, (*pointee)->new_pointee);
        step.path = add_path(program, place);
        program.steps.push_back(step);
        return true;
    }
    auto cases = m_annotations.union_cases(x, y, wanted.name);
    if (!cases || cases->cases.empty())
        return false;
    program.unions.push_back(union_conversion(*cases, from, to, old_member, wanted));
    ConversionStep step;
    step.kind = ConversionStep::Kind::Union;
    step.count = program.unions.size() - 1;
    step.member = group;
    step.path = add_path(program, place);
    program.steps.push_back(step);
    return true;
}

UnionConversion ValueConverter::union_conversion(const Annotations::Cases &cases, std::uint64_t from, std::uint64_t to,
                                                 const Member &old_union, const Member &new_union) const
{
    UnionConversion conversion;
    conversion.discriminant = from + cases.discriminant->offset;
    const Type &kind = layout(m_old, cases.discriminant->type);
    conversion.discriminant_size = kind.size;
    conversion.discriminant_signed = schema::is_signed_integral(kind);
    conversion.old_union = from + old_union.offset;
    conversion.old_union_size = layout(m_old, old_union.type).size;
    conversion.new_union = to + new_union.offset;
    conversion.new_union_size = layout(m_new, new_union.type).size;
    for (const UnionCase &each : cases.cases)
        conversion.cases.push_back({each.value, from + old_union.offset + each.old_member->offset,
                                    to + new_union.offset + each.new_member->offset,
                                    &this->program(each.old_member->type, each.new_member->type)});
    return conversion;
}

// The pointers heap discovery follows: those whose pointee changed, as HeapConverter's walk
// found them (members by name, arrays element by element, not through members that a type
// transformer fills, not through unions, void * or function pointers).
void ValueConverter::add_reach(TypeId old_type, TypeId new_type, std::uint64_t offset, ConversionProgram &program) const
{
    if (!changed(old_type, new_type) || m_annotations.opaque(new_type))
        return;  // nothing it reaches changed, or nothing in it is to be followed
    const Type &x = layout(m_old, old_type);
    const Type &y = layout(m_new, new_type);
    if (x.kind == TypeKind::Struct && y.kind == TypeKind::Struct) {
        bool transformed = type_transformer(old_type, new_type) != nullptr;
        const std::vector<const Member *> &matched = matched_members(x, y);
        for (std::size_t index = 0; index < y.members.size(); ++index) {
            const Member &member = y.members[index];
            const Member *old_member = matched[index];
            if (!old_member || member.is_bit_field() || old_member->is_bit_field())
                continue;
            if (transformed && !convertible(old_member->type, member.type))
                continue;
            if (add_annotated_reach(x, y, *old_member, member, offset, program))
                continue;
            std::size_t before = program.reach.size();
            add_reach(old_member->type, member.type, offset + old_member->offset, program);
            if (program.reach.size() == before + 1 && !program.reach.back().element &&
                program.reach.back().union_index < 0 && program.reach.back().offset == offset + old_member->offset)
                add_length(x, y, member, offset, program.reach.back());
        }
    } else if (x.kind == TypeKind::Array && y.kind == TypeKind::Array) {
        if (!changed(x.target, y.target))
            return;
        std::uint64_t old_count = schema::total_elements(x), new_count = schema::total_elements(y);
        const ConversionProgram &element = this->program(x.target, y.target);
        if (element.reach.empty() || std::min(old_count, new_count) == 0)
            return;
        ReachStep step;
        step.offset = offset;
        step.count = std::min(old_count, new_count);
        step.stride = layout(m_old, x.target).size;
        step.element = &element;
        program.reach.push_back(step);
    } else if (x.kind == TypeKind::Pointer && y.kind == TypeKind::Pointer) {
        const Type &old_pointee = layout(m_old, x.target);
        const Type &new_pointee = layout(m_new, y.target);
        if (old_pointee.kind == TypeKind::Function || old_pointee.kind == TypeKind::Void ||
            new_pointee.kind == TypeKind::Void || !changed(x.target, y.target))
            return;
        ReachStep step;
        step.offset = offset;
        step.old_pointee = x.target;  // as declared: a transformer may be registered under a typedef's name
        step.new_pointee = y.target;
        program.reach.push_back(step);
    }
}

// The reach of a member an annotation speaks for (see flatten_annotated).
bool ValueConverter::add_annotated_reach(const Type &x, const Type &y, const Member &old_member, const Member &member,
                                         std::uint64_t offset, ConversionProgram &program) const
{
    if (m_annotations.empty())
        return false;
    auto pointee = m_annotations.points_to(y, member.name);
    if (pointee && *pointee) {
        if (changed((*pointee)->old_pointee, (*pointee)->new_pointee)) {
            ReachStep step;
            step.offset = offset + old_member.offset;
            step.old_pointee = (*pointee)->old_pointee;
            step.new_pointee = (*pointee)->new_pointee;
            add_length(x, y, member, offset, step);
            program.reach.push_back(step);
        }
        return true;
    }
    auto cases = m_annotations.union_cases(x, y, member.name);
    if (!cases || cases->cases.empty())
        return false;
    // The program's unions hold the cases (with offsets in the value); a reach step that names
    // one walks the chosen member's program. Its offsets are this value's, as the steps' are.
    for (std::size_t i = 0; i < program.unions.size(); ++i)
        if (program.unions[i].discriminant == offset + cases->discriminant->offset &&
            !program.unions[i].cases.empty() &&
            program.unions[i].cases[0].from == offset + old_member.offset + cases->cases[0].old_member->offset) {
            ReachStep step;
            step.union_index = static_cast<std::int64_t>(i);
            program.reach.push_back(step);
            return true;
        }
    program.unions.push_back(union_conversion(*cases, offset, offset, old_member, member));
    ReachStep step;
    step.union_index = static_cast<std::int64_t>(program.unions.size() - 1);
    program.reach.push_back(step);
    return true;
}

// MOLT_LENGTH_IN on pointer member `member`: the reach step reads the length in the old value.
void ValueConverter::add_length(const Type &x, const Type &y, const Member &member, std::uint64_t offset, ReachStep &step) const
{
    if (m_annotations.empty())
        return;
    auto length = m_annotations.length_member(x, y, member.name);
    if (!length || !*length)
        return;
    const Type &type = layout(m_old, (*length)->type);
    step.has_length = true;
    step.length_offset = offset + (*length)->offset;
    step.length_size = type.size;
    step.length_signed = schema::is_signed_integral(type);
}

const ConversionProgram *ValueConverter::variable_program(const std::string &new_variable) const
{
    auto pointee = m_annotations.variable_points_to(new_variable);
    if (!pointee || !*pointee)
        return nullptr;
    std::lock_guard lock(m_programs_mutex);
    auto [found, inserted] = m_variable_programs.try_emplace(new_variable);
    if (inserted) {
        auto program = std::make_unique<ConversionProgram>();
        program->old_size = program->new_size = sizeof(void *);
        ConversionStep step;
        step.kind = ConversionStep::Kind::DataPointer;
        step.size = sizeof(void *);
        step.old_type = strip_typedefs_and_qualifiers(m_old, (*pointee)->old_pointee);
        step.new_type = strip_typedefs_and_qualifiers(m_new, (*pointee)->new_pointee);
        program->steps.push_back(step);
        if (changed((*pointee)->old_pointee, (*pointee)->new_pointee)) {
            ReachStep reach;
            reach.old_pointee = (*pointee)->old_pointee;
            reach.new_pointee = (*pointee)->new_pointee;
            program->reach.push_back(reach);
        }
        found->second = std::move(program);
    }
    return found->second.get();
}

bool ValueConverter::precompile(TypeId old_type, TypeId new_type) const
{
    bool lengths = false;
    std::vector<const ConversionProgram *> work{&program(old_type, new_type)};
    std::set<const ConversionProgram *> seen{work.back()};
    auto visit = [&](const ConversionProgram *next) {
        if (next && seen.insert(next).second)
            work.push_back(next);
    };
    while (!work.empty()) {
        const ConversionProgram *current = work.back();
        work.pop_back();
        for (const ReachStep &reach : current->reach) {
            lengths = lengths || reach.has_length;
            if (reach.element)
                visit(reach.element);
            else if (reach.union_index < 0) {
                if (!reach.pointee)
                    reach.pointee = &program(reach.old_pointee, reach.new_pointee);
                visit(reach.pointee);
            }
        }
        for (const ConversionStep &step : current->steps)
            if (step.kind == ConversionStep::Kind::Array)
                visit(step.element);
        for (const UnionConversion &conversion : current->unions)
            for (const UnionConversion::Case &each : conversion.cases)
                visit(each.program);
    }
    return lengths;
}

namespace {

// Most copies are of one member: a word, an int. A memcpy of a size known here is a move, where
// one of a size read from the step is a call (a million objects make millions of them).
inline void copy_bytes(unsigned char *to, const unsigned char *from, std::uint64_t size)
{
    switch (size) {
    case 8:
        std::memcpy(to, from, 8);
        return;
    case 4:
        std::memcpy(to, from, 4);
        return;
    case 16:
        std::memcpy(to, from, 16);
        return;
    default:
        std::memcpy(to, from, size);
    }
}

}  // namespace

Result<bool> ValueConverter::run(const ConversionProgram &program, const unsigned char *from, unsigned char *to,
                                 const Place &where, bool zeroed) const
{
    if (!zeroed)
        zero(to, program.new_size);
    const std::vector<ConversionStep> &steps = program.steps;
    for (std::size_t i = 0; i < steps.size(); ++i) {
        const ConversionStep &step = steps[i];
        if (step.kind == ConversionStep::Kind::Copy) {  // the common step, inline
            copy_bytes(to + step.to, from + step.from, step.size);
            continue;
        }
        if (step.kind == ConversionStep::Kind::DataPointer && translated(step, program, from, to, where))
            continue;  // the next common step, inline too
        auto done = run_step(step, program, from, to, where);
        if (done)
            continue;
        if (!program.transformer)
            return done;
        // Before a transformer: a member whose default conversion fails is left zero for it.
        const ConversionProgram::Member &member = program.members[step.member];
        std::memset(to + member.to, 0, member.size);
        while (i + 1 < steps.size() && steps[i + 1].member == step.member)
            ++i;
    }
    if (program.transformer)
        return run_transformer(program.transformer, to, from, where);
    return true;
}

// A big global (a table of 65,536 connections, half a megabyte) is zeroed by two threads, when
// the runtime lends a second: memset's time is the memory's.
void ValueConverter::zero(unsigned char *to, std::size_t size) const
{
    if (!m_parallel || size < big_array_bytes) {
        std::memset(to, 0, size);
        return;
    }
    std::size_t half = size / 2 / 64 * 64;  // whole cache lines each
    m_parallel([&] { std::memset(to, 0, half); }, [&] { std::memset(to + half, 0, size - half); });
}

// A data pointer step as run_step runs it, without its call; false when there is no translator
// or the pointer cannot be translated (run_step then says why: a failed translation changes
// nothing, and is asked again). With `hint`, one of an array's pointers read in order
// (PointerTranslator::translate_next).
bool ValueConverter::translated(const ConversionStep &step, const ConversionProgram &program, const unsigned char *from,
                                unsigned char *to, const Place &where, std::size_t *hint) const
{
    if (!m_translate)
        return false;
    std::uintptr_t address;
    std::memcpy(&address, from + step.from, sizeof address);
    if (address) {
        Place place(where, program.paths[step.path], Place::Suffix{});
        auto moved = hint ? m_translate->translate_next(address, step.old_type, place, *hint)
                          : m_translate->translate(address, step.old_type, place);
        if (!moved)
            return false;
        address = *moved;
    }
    std::memcpy(to + step.to, &address, sizeof address);
    return true;
}

// Elements [first, end) of an array whose element is one step (run_step's fast path).
Result<bool> ValueConverter::run_slots(const ConversionStep &step, const ConversionProgram &element, const unsigned char *from,
                                       unsigned char *to, const Place &place, std::uint64_t first, std::uint64_t end) const
{
    ConversionStep each = element.steps[0];
    bool pointers = each.kind == ConversionStep::Kind::DataPointer || each.kind == ConversionStep::Kind::FunctionPointer;
    if (pointers && step.old_stride == sizeof(std::uintptr_t) && each.from == 0)
        return run_pointer_slots(step, element, from, to, place, first, end);
    const std::uint64_t first_from = each.from, first_to = each.to;
    each.from = first_from + first * step.old_stride;
    each.to = first_to + first * step.new_stride;
    for (std::uint64_t i = first; i < end; ++i, each.from += step.old_stride, each.to += step.new_stride) {
        if (pointers) {
            std::uintptr_t address;
            std::memcpy(&address, from + step.from + each.from, sizeof address);
            if (!address)
                continue;  // the target is zero already
        }
        auto converted = run_step(each, element, from + step.from, to + step.to, Place(place, i));
        if (!converted)
            return converted;
    }
    return true;
}

// The same for an array of bare pointers (a hash table's bucket heads, a server's table of 65,536
// connections), mostly empty: its slots are read eight at a time, and only the ones that hold a
// pointer are converted (the rest of the target is zero already). Data pointers go to the
// translator in order (translate_next), which mostly guesses their objects from the last one's;
// after a wrong guess, the lookups that translating the next group's pointers will make are asked
// for first, so that their cache misses overlap.
Result<bool> ValueConverter::run_pointer_slots(const ConversionStep &step, const ConversionProgram &element,
                                               const unsigned char *from, unsigned char *to, const Place &place,
                                               std::uint64_t first, std::uint64_t end) const
{
    ConversionStep each = element.steps[0];
    const std::uint64_t first_to = each.to;
    const unsigned char *slots = from + step.from;
    bool data_pointers = each.kind == ConversionStep::Kind::DataPointer && m_translate;
    std::size_t hint = 0;  // the translator's guess where the next pointer's object is (translate_next)
    bool guessed = false;  // the last pointer's object was the guess: its lookup is not needed
    for (std::uint64_t at = first; at < end; at += 8) {
        std::uintptr_t words[8];
        unsigned held = read_pointer_group(slots + at * sizeof(std::uintptr_t), std::min<std::uint64_t>(8, end - at), words);
        if (data_pointers && !guessed)
            for (unsigned bits = held; bits; bits &= bits - 1)
                m_translate->prefetch(words[__builtin_ctz(bits)]);
        for (unsigned bits = held; bits; bits &= bits - 1) {
            std::uint64_t i = at + static_cast<std::uint64_t>(__builtin_ctz(bits));
            each.from = i * sizeof(std::uintptr_t);
            each.to = first_to + i * step.new_stride;
            Place index(place, i);
            if (data_pointers) {
                std::size_t guess = hint;
                bool moved = translated(each, element, slots, to + step.to, index, &hint);
                guessed = hint == guess + 1;
                if (moved)
                    continue;
            }
            auto converted = run_step(each, element, slots, to + step.to, index);
            if (!converted)
                return converted;
        }
    }
    return true;
}

Result<bool> ValueConverter::run_step(const ConversionStep &step, const ConversionProgram &program,
                                      const unsigned char *from, unsigned char *to, const Place &where) const
{
    Place place(where, program.paths[step.path], Place::Suffix{});
    switch (step.kind) {
    case ConversionStep::Kind::Copy:
        std::memcpy(to + step.to, from + step.from, step.size);
        return true;
    case ConversionStep::Kind::Integer: {
        __int128 value = read_integer(from + step.from, step.size, step.old_signed);
        if (step.to_bool)
            value = value != 0;
        if (!fits(value, step.new_size * 8, step.new_signed))
            return failure(place.text(), "value " + text(value) + " does not fit in " + schema::type_to_c(m_new, step.new_type));
        std::memcpy(to + step.to, &value, step.new_size);
        return true;
    }
    case ConversionStep::Kind::BitField: {
        __int128 value = step.old_bits ? read_bits(from, step.from, step.old_bits, step.old_signed)
                                       : read_integer(from + step.from, step.size, step.old_signed);
        std::uint64_t width = step.new_bits ? step.new_bits : step.new_size * 8;
        if (!fits(value, width, step.new_signed))
            return failure(place.text(), "value " + text(value) + " does not fit in " + std::to_string(width) + " bits");
        if (step.new_bits)
            write_bits(to, step.to, step.new_bits, value);
        else
            std::memcpy(to + step.to, &value, step.new_size);
        return true;
    }
    case ConversionStep::Kind::DataPointer: {
        std::uintptr_t address;
        std::memcpy(&address, from + step.from, sizeof address);
        if (address && m_translate) {
            auto moved = m_translate->translate(address, step.old_type, place);
            if (!moved)
                return moved.error();
            address = *moved;
        }
        std::memcpy(to + step.to, &address, sizeof address);
        return true;
    }
    case ConversionStep::Kind::FunctionPointer: {
        std::uintptr_t address;
        std::memcpy(&address, from + step.from, sizeof address);
        if (address)
            if (auto moved = m_remap(address))
                address = *moved;
        std::memcpy(to + step.to, &address, sizeof address);
        return true;
    }
    case ConversionStep::Kind::Array: {
        // An array of pointers or numbers (a server's table of 65,536 connections) runs one step
        // per element, without a nested run each.
        bool slots = step.element->steps.size() == 1 && !step.element->transformer &&
                     step.element->steps[0].kind != ConversionStep::Kind::Array &&
                     step.element->steps[0].kind != ConversionStep::Kind::BitField &&  // its offsets count bits
                     step.element->steps[0].kind != ConversionStep::Kind::Union;       // its offsets are in the program
        auto elements = [&](std::uint64_t first, std::uint64_t end) -> Result<bool> {
            if (slots)
                return run_slots(step, *step.element, from, to, place, first, end);
            for (std::uint64_t i = first; i < end; ++i) {
                Place element(place, i);
                auto converted = run(*step.element, from + step.from + i * step.old_stride,
                                     to + step.to + i * step.new_stride, element, true);
                if (!converted)
                    return converted;
            }
            return true;
        };
        // A big one (a global table of 64 shards of 1024 buckets) on two threads at once, when the
        // runtime lends a second thread and no transformer in it must run alone: each takes the
        // next sixteenth as it finishes one, so that they end together (fixed halves ended up to
        // 0.1 ms apart out of 0.3).
        if (m_parallel && step.element->parallel_safe && step.count >= 2 && step.count * step.old_stride >= big_array_bytes)
            return share_by_stretches(m_parallel, step.count, std::max<std::uint64_t>(step.count / 16, 1), elements,
                                      [&] { return place.text(); });
        return elements(0, step.count);
    }
    case ConversionStep::Kind::Interpreted:
        return convert_value(step.old_type, from + step.from, step.new_type, to + step.to, place);
    case ConversionStep::Kind::Union: {
        const UnionConversion &conversion = program.unions[step.count];
        const UnionConversion::Case *chosen = choose_case(conversion, from);
        if (!chosen && all_zero(from + conversion.old_union, conversion.old_union_size)) {
            std::memset(to + conversion.new_union, 0, conversion.new_union_size);  // nothing in it to convert
            return true;
        }
        if (!chosen)
            return failure(place.text(), "the discriminant holds " +
                                             text(read_integer(from + conversion.discriminant, conversion.discriminant_size,
                                                               conversion.discriminant_signed)) +
                                             ", which no MOLT_UNION_CASE names");
        return run(*chosen->program, from + chosen->from, to + chosen->to, place, true);
    }
    }
    return true;
}

}  // namespace molt::transform
