// A conversion compiled for one pair of types. The default rules of ValueConverter (members by
// name, widening, pointers redirected...) are decided once per pair of types and flattened into
// steps on byte offsets, so that converting a million objects of one type does not interpret its
// type a million times: a step copies a run of bytes, widens an integer, redirects a pointer, or
// hands one member the interpreter cannot flatten (enums, floats, unions, bit-fields) to it.
// The same program lists the pointers that heap discovery follows in a value of the pair.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "schema.h"

namespace molt::transform {

struct ConversionProgram;

struct ConversionStep {
    enum class Kind : std::uint8_t {
        Copy,             // `size` bytes as they are
        Integer,          // an integer widened, narrowed (checked) or made bool
        DataPointer,      // redirected by the pointer translator
        FunctionPointer,  // remapped to the new version's function of the same name
        BitField,         // an integer to or from a bit-field (checked)
        Union,            // the member a discriminant chooses (MOLT_UNION_CASE): ConversionProgram::unions[count]
        Array,            // `count` elements, each converted by `element`
        Interpreted,      // ValueConverter::convert_value on the pair of member types
    };
    Kind kind = Kind::Copy;
    bool old_signed = false, new_signed = false, to_bool = false;  // Integer
    std::uint64_t from = 0, to = 0;  // offsets in the old and in the new value
    std::uint64_t size = 0;          // Copy: bytes; Integer: the old size
    std::uint64_t new_size = 0;      // Integer, BitField
    // BitField: a side with a width is a bit-field, and its offset (from or to) counts bits.
    std::uint32_t old_bits = 0, new_bits = 0;
    // Interpreted: the pair of types. DataPointer: the pointees (behind typedefs and qualifiers).
    // Integer: the new type, named when a value does not fit. BitField: the old and new types.
    schema::TypeId old_type = 0, new_type = 0;
    std::uint64_t count = 0, old_stride = 0, new_stride = 0;  // Array
    const ConversionProgram *element = nullptr;               // Array
    std::uint32_t path = 0;    // index in ConversionProgram::paths: where the step writes, for messages
    std::uint32_t member = 0;  // the top-level member the step belongs to (a lenient failure zeroes it)
};

// A union converted by the member its discriminant chooses (MOLT_UNION_CASE). Offsets are in
// the whole value: the discriminant's in the old one, each case's member in the old and new.
struct UnionConversion {
    std::uint64_t discriminant = 0, discriminant_size = 0;
    bool discriminant_signed = false;
    // The union itself in each value: one whose bytes are all zero needs no case (an unused slot,
    // a variant without payload) and stays zero.
    std::uint64_t old_union = 0, old_union_size = 0, new_union = 0, new_union_size = 0;
    struct Case {
        __int128 value = 0;
        std::uint64_t from = 0, to = 0;
        const ConversionProgram *program = nullptr;  // of the member's old and new type
    };
    std::vector<Case> cases;
};

// The case a union's discriminant chooses in an old value, or null.
const UnionConversion::Case *choose_case(const UnionConversion &conversion, const unsigned char *from);

// A pointer that discovery follows in a value, or an array whose elements hold some, or a
// union whose active member holds some.
struct ReachStep {
    std::uint64_t offset = 0;
    schema::TypeId old_pointee = 0, new_pointee = 0;  // as the pointer declares them
    mutable const ConversionProgram *pointee = nullptr;  // the pointees' program, linked on first use
    std::uint64_t count = 0, stride = 0;              // an array: count elements...
    const ConversionProgram *element = nullptr;       // ...each reached through this program
    std::int64_t union_index = -1;                    // a union: ConversionProgram::unions[union_index]
    // MOLT_LENGTH_IN: the pointer leads to as many elements as this integer of the old value says.
    bool has_length = false, length_signed = false;
    std::uint64_t length_offset = 0, length_size = 0;
};

struct ConversionProgram {
    schema::TypeId old_type = 0, new_type = 0;  // behind typedefs and qualifiers
    std::uint64_t old_size = 0, new_size = 0;
    std::vector<ConversionStep> steps;
    std::vector<ReachStep> reach;
    // Where the first few pointers its steps redirect lie in the old value: the heap conversion
    // reads them a few objects ahead, to ask early for the table entries their lookups will read.
    std::vector<std::uint64_t> pointers;
    std::vector<std::string> paths = {""};  // ".next", "[3].key": appended to the value's place
    std::vector<UnionConversion> unions;
    // The programmer's transformer for the new type: runs after the steps, which then skip the
    // members the default rules cannot convert and zero a member whose conversion fails.
    const char *(*transformer)(void *to, const void *from) = nullptr;
    // No transformer can run in it (none of its steps leads to one): it may run on any thread.
    bool parallel_safe = true;
    struct Member {
        std::uint64_t to = 0, size = 0;  // where a top-level member lies in the new value
    };
    std::vector<Member> members = {{}};  // index 0: the whole value
};

}  // namespace molt::transform
