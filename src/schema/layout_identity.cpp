// Layout identity across two schemas by one partition refinement over both type graphs.
#include "layout_identity.h"

#include <algorithm>
#include <stdexcept>
#include <tuple>

#include "type_merge.h"

namespace molt::schema {
namespace {

void add(const Schema &schema, TypeId offset, std::vector<Type> &combined)
{
    for (TypeId id = 0; id < schema.types.size(); ++id) {
        Type type = schema.type(strip_typedefs_and_qualifiers(schema, id));
        auto strip = [&](TypeId &ref) { ref = offset + strip_typedefs_and_qualifiers(schema, ref); };
        strip(type.target);
        for (Member &member : type.members)
            strip(member.type);
        for (TypeId &param : type.params)
            strip(param);
        if (type.kind == TypeKind::Base || type.kind == TypeKind::Enum)
            type.name.clear();  // `long` and `long long` of one size are the same bits
        std::sort(type.enumerators.begin(), type.enumerators.end(), [](const Enumerator &x, const Enumerator &y) {
            return std::tie(x.name, x.value) < std::tie(y.name, y.value);
        });
        type.prototyped = true;
        type.file.clear();
        combined.push_back(std::move(type));
    }
}

}  // namespace

LayoutIdentity::LayoutIdentity(const Schema &old_schema, const Schema &new_schema)
    : m_old(old_schema), m_new(new_schema), m_new_offset(static_cast<TypeId>(old_schema.types.size()))
{
    std::vector<Type> combined;
    combined.reserve(old_schema.types.size() + new_schema.types.size());
    add(old_schema, 0, combined);
    add(new_schema, m_new_offset, combined);
    try {
        m_classes = structural_classes(combined);
    } catch (const std::runtime_error &) {
        // Both schemas passed the same check alone; if together they do not, call no two
        // types identical: every change is then reported, never one missed.
        m_classes.resize(combined.size());
        for (std::size_t i = 0; i < combined.size(); ++i)
            m_classes[i] = static_cast<std::uint32_t>(i);
    }
}

bool LayoutIdentity::identical(TypeId a, TypeId b) const
{
    return m_classes[strip_typedefs_and_qualifiers(m_old, a)] ==
           m_classes[m_new_offset + strip_typedefs_and_qualifiers(m_new, b)];
}

}  // namespace molt::schema
