// Converting one value from the old version's type to the new version's type, by the default
// rules of the schema diff: what the update does to globals, statics and MOLT_LOCALs.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "layout_identity.h"
#include "result.h"
#include "schema.h"

namespace molt::transform {

// Where a pointer into the old version's code goes in the new version: old address (as the
// program sees it) to new address, or nullopt when it does not point at an old function.
using FunctionRemap = std::function<std::optional<std::uintptr_t>(std::uintptr_t)>;

class ValueConverter {
public:
    ValueConverter(const schema::Schema &old_schema, const schema::Schema &new_schema, FunctionRemap remap_function);

    // Whether a value of `old_type` can be converted into `new_type` without touching anything
    // but the value itself (this release does not convert heap objects: a pointer whose
    // pointee's layout changed is refused). The error says where and why, e.g.
    // "table[].next: the pointee struct entry changed layout".
    Result<bool> plan(schema::TypeId old_type, schema::TypeId new_type, const std::string &where) const;

    // Writes the converted value into `to` (new_size bytes, zero-filled first). Fails, naming
    // the place, when a value does not fit (narrowing, an enum value without a counterpart, a
    // dropped array element that is not zero).
    Result<bool> convert(schema::TypeId old_type, const void *from, schema::TypeId new_type, void *to,
                         const std::string &where) const;

    const schema::LayoutIdentity &identity() const { return m_identity; }

private:
    Result<bool> plan_array(const schema::Type &x, std::size_t old_dim, const schema::Type &y, std::size_t new_dim,
                            const std::string &where) const;
    Result<bool> convert_array(const schema::Type &x, std::size_t old_dim, const unsigned char *from,
                               const schema::Type &y, std::size_t new_dim, unsigned char *to,
                               const std::string &where) const;
    Result<bool> convert_struct(const schema::Type &x, const unsigned char *from, const schema::Type &y,
                                unsigned char *to, const std::string &where) const;
    Result<bool> convert_scalar(schema::TypeId old_type, const unsigned char *from, schema::TypeId new_type,
                                unsigned char *to, const std::string &where) const;

    const schema::Schema &m_old;
    const schema::Schema &m_new;
    schema::LayoutIdentity m_identity;
    FunctionRemap m_remap;
};

}  // namespace molt::transform
