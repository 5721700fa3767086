// Structural merge of per-unit types: partition refinement over the type graph.
#include "type_merge.h"

#include <algorithm>
#include <map>
#include <stdexcept>
#include <string_view>
#include <unordered_map>

namespace molt::schema {
namespace {

constexpr int max_chain = 64;
constexpr int max_refinement_rounds = 1000;

// Hash for vectors of ids (the refinement's signatures).
struct IdsHash {
    std::size_t operator()(const std::vector<std::uint32_t> &ids) const noexcept
    {
        std::size_t hash = 1469598103934665603ull;
        for (std::uint32_t id : ids)
            hash = (hash ^ id) * 1099511628211ull;
        return hash;
    }
};

// Everything about a type except the types it refers to.
std::string shape_of(const Type &type)
{
    std::string shape;
    auto add = [&shape](std::string_view part) {
        shape += part;
        shape += '\x1f';
    };
    add(std::to_string(static_cast<int>(type.kind)));
    add(type.name);
    add(std::to_string(type.size));
    add(type.declaration ? "d" : "");
    add(std::to_string(static_cast<int>(type.encoding)));
    add(type.enum_signed ? "s" : "");
    add(type.variadic ? "v" : "");
    add(type.prototyped ? "p" : "");
    for (std::uint64_t count : type.counts)
        add(std::to_string(count));
    add("|");
    for (const Member &member : type.members) {
        add(member.name);
        add(std::to_string(member.offset) + ":" + std::to_string(member.bit_offset) + ":" + std::to_string(member.bit_size));
    }
    add("|");
    for (const Enumerator &enumerator : type.enumerators)
        add(enumerator.name + "=" + std::to_string(enumerator.value));
    add(std::to_string(type.params.size()));
    return shape;
}

template <typename Visit>
void for_each_reference(const Type &type, Visit &&visit)
{
    visit(type.target);
    for (const Member &member : type.members)
        visit(member.type);
    for (TypeId param : type.params)
        visit(param);
}

template <typename Visit>
void for_each_reference(Type &type, Visit &&visit)
{
    visit(type.target);
    for (Member &member : type.members)
        visit(member.type);
    for (TypeId &param : type.params)
        visit(param);
}

// Assigns class ids to raw types: same class = same shape and same classes referred to.
std::vector<std::uint32_t> refine(const std::vector<Type> &types)
{
    std::vector<std::uint32_t> classes(types.size());
    std::unordered_map<std::string, std::uint32_t> by_shape;
    for (std::size_t i = 0; i < types.size(); ++i)
        classes[i] = by_shape.try_emplace(shape_of(types[i]), static_cast<std::uint32_t>(by_shape.size())).first->second;
    std::size_t count = by_shape.size();
    std::vector<std::uint32_t> signature;
    for (int round = 0;; ++round) {
        // Each round costs a pass over all types; real programs settle in a few dozen rounds
        // (names tell most types apart at once). Only adversarial input gets here.
        if (round > max_refinement_rounds)
            throw std::runtime_error("the type graph is too deep to compare (over " +
                                     std::to_string(max_refinement_rounds) + " refinement rounds)");
        std::unordered_map<std::vector<std::uint32_t>, std::uint32_t, IdsHash> by_signature;
        std::vector<std::uint32_t> next(types.size());
        for (std::size_t i = 0; i < types.size(); ++i) {
            signature.clear();
            signature.push_back(classes[i]);
            for_each_reference(types[i], [&](TypeId ref) { signature.push_back(classes[ref]); });
            next[i] = by_signature.try_emplace(signature, static_cast<std::uint32_t>(by_signature.size())).first->second;
        }
        classes.swap(next);
        if (by_signature.size() == count)
            return classes;
        count = by_signature.size();
    }
}

bool is_tagged(TypeKind kind) { return kind == TypeKind::Struct || kind == TypeKind::Union || kind == TypeKind::Enum; }

// Points references to an incomplete `struct node` at the one complete `struct node`.
bool resolve_declarations(std::vector<Type> &types, const std::vector<std::uint32_t> &classes)
{
    // (kind, name) -> the raw id of a definition, or -1 when two different definitions exist.
    std::map<std::pair<TypeKind, std::string>, std::int64_t> definitions;
    for (std::size_t i = 0; i < types.size(); ++i) {
        const Type &type = types[i];
        if (!is_tagged(type.kind) || type.declaration || type.name.empty())
            continue;
        auto [it, inserted] = definitions.try_emplace({type.kind, type.name}, static_cast<std::int64_t>(i));
        if (!inserted && it->second >= 0 && classes[it->second] != classes[i])
            it->second = -1;
    }
    std::vector<TypeId> redirect(types.size());
    bool changed = false;
    for (std::size_t i = 0; i < types.size(); ++i) {
        redirect[i] = static_cast<TypeId>(i);
        const Type &type = types[i];
        if (!type.declaration || !is_tagged(type.kind))
            continue;
        auto it = definitions.find({type.kind, type.name});
        if (it != definitions.end() && it->second >= 0) {
            redirect[i] = static_cast<TypeId>(it->second);
            changed = true;
        }
    }
    if (!changed)
        return false;
    for (Type &type : types)
        for_each_reference(type, [&](TypeId &ref) { ref = redirect[ref]; });
    // A declaration now stands for its definition: give it the same shape so that it merges.
    for (std::size_t i = 0; i < types.size(); ++i)
        if (redirect[i] != i)
            types[i] = types[redirect[i]];
    return true;
}

// Tells same-named distinct types apart by the file that declares them (`a.c/struct node`).
void qualify_clashing_names(std::vector<Type> &merged, const std::vector<std::string> &files)
{
    auto category = [](TypeKind kind) { return is_tagged(kind) ? static_cast<int>(kind) : kind == TypeKind::Typedef ? 100 : -1; };
    std::map<std::pair<int, std::string>, std::vector<std::size_t>> by_name;
    for (std::size_t i = 0; i < merged.size(); ++i)
        if (category(merged[i].kind) >= 0 && !merged[i].name.empty())
            by_name[{category(merged[i].kind), merged[i].name}].push_back(i);
    for (auto &[key, ids] : by_name) {
        if (ids.size() < 2)
            continue;
        std::map<std::string, int> uses;
        for (std::size_t id : ids) {
            std::string file = files[id];
            int n = ++uses[file];
            merged[id].file = n == 1 ? file : file + "~" + std::to_string(n);
        }
    }
}

}  // namespace

std::uint64_t RawTypes::size_of(TypeId id) const
{
    // Iterative, with a bound: called while reading, before the nesting check has run.
    std::uint64_t elements = 1;
    for (int i = 0; i < max_chain * 8; ++i) {
        const Type &type = types[id];
        switch (type.kind) {
        case TypeKind::Typedef: case TypeKind::Const: case TypeKind::Volatile:
        case TypeKind::Restrict: case TypeKind::Atomic:
            id = type.target;
            continue;
        case TypeKind::Array:
            for (std::uint64_t count : type.counts) {
                if (count == unknown_count || (count && elements > UINT64_MAX / count))
                    return 0;
                elements *= count;
            }
            id = type.target;
            continue;
        default:
            return elements && type.size > UINT64_MAX / elements ? 0 : type.size * elements;
        }
    }
    return 0;
}

bool RawTypes::is_const(TypeId id) const
{
    for (int i = 0; i < max_chain; ++i) {
        const Type &type = types[id];
        if (type.kind == TypeKind::Const)
            return true;
        if (type.kind == TypeKind::Array) {  // const int a[3]: DWARF puts the const on the element
            id = type.target;
            continue;
        }
        if (type.kind != TypeKind::Typedef && type.kind != TypeKind::Volatile && type.kind != TypeKind::Atomic)
            return false;
        id = type.target;
    }
    return false;
}

std::vector<std::uint32_t> structural_classes(const std::vector<Type> &types) { return refine(types); }

std::string check_value_nesting(const std::vector<Type> &types, std::size_t max_depth)
{
    auto children = [&types](TypeId id) {
        std::vector<TypeId> inside;
        const Type &type = types[id];
        switch (type.kind) {
        case TypeKind::Struct: case TypeKind::Union:
            for (const Member &member : type.members)
                inside.push_back(member.type);
            break;
        case TypeKind::Array: case TypeKind::Typedef: case TypeKind::Const: case TypeKind::Volatile:
        case TypeKind::Restrict: case TypeKind::Atomic:
            inside.push_back(type.target);
            break;
        default:
            break;
        }
        return inside;
    };
    // Iterative depth-first search (no recursion: the input is what we distrust).
    enum : std::uint8_t { unseen, open, done };
    std::vector<std::uint8_t> state(types.size(), unseen);
    std::vector<std::size_t> depth(types.size(), 1);  // longest by-value chain from a type
    for (TypeId root = 0; root < types.size(); ++root) {
        if (state[root] != unseen)
            continue;
        std::vector<std::pair<TypeId, std::vector<TypeId>>> stack;
        stack.emplace_back(root, children(root));
        state[root] = open;
        while (!stack.empty()) {
            auto &[id, pending] = stack.back();
            if (pending.empty()) {
                state[id] = done;
                TypeId finished = id;
                stack.pop_back();
                if (!stack.empty()) {
                    TypeId parent = stack.back().first;
                    depth[parent] = std::max(depth[parent], depth[finished] + 1);
                    if (depth[parent] > max_depth)
                        return "types nested by value deeper than " + std::to_string(max_depth);
                }
                continue;
            }
            TypeId next = pending.back();
            pending.pop_back();
            if (next >= types.size())
                return "a type refers to a type that does not exist";
            if (state[next] == open)
                return "type " + (types[next].name.empty() ? std::string("<anonymous>") : types[next].name) +
                       " contains itself by value";
            if (state[next] == done) {
                depth[id] = std::max(depth[id], depth[next] + 1);
                if (depth[id] > max_depth)
                    return "types nested by value deeper than " + std::to_string(max_depth);
                continue;
            }
            state[next] = open;
            stack.emplace_back(next, children(next));
        }
    }
    return {};
}

std::vector<TypeId> merge_types(RawTypes &raw, std::vector<Type> &merged)
{
    std::vector<Type> &types = raw.types;
    raw.files.resize(types.size());
    // Sizes of typedefs, qualifiers and arrays come from what they refer to.
    auto derive_sizes = [&] {
        for (std::size_t i = 0; i < types.size(); ++i)
            if (types[i].kind != TypeKind::Struct && types[i].kind != TypeKind::Union &&
                types[i].kind != TypeKind::Base && types[i].kind != TypeKind::Enum && types[i].kind != TypeKind::Pointer)
                types[i].size = raw.size_of(static_cast<TypeId>(i));
    };
    derive_sizes();
    std::vector<std::uint32_t> classes = refine(types);
    // Resolving one declaration can make two definitions of another type equal (struct a
    // holds a `struct b *` that was incomplete in one unit), so resolve until nothing moves.
    for (int round = 0; round < 8 && resolve_declarations(types, classes); ++round) {
        derive_sizes();  // `typedef struct node node_t` had size 0 where node was incomplete
        classes = refine(types);
    }

    std::vector<bool> reachable(types.size());
    std::vector<TypeId> pending = raw.roots;
    pending.push_back(void_type);
    while (!pending.empty()) {
        TypeId id = pending.back();
        pending.pop_back();
        if (reachable[id])
            continue;
        reachable[id] = true;
        for_each_reference(types[id], [&](TypeId ref) { pending.push_back(ref); });
    }

    // One merged type per class, in order of first appearance (raw 0, void, stays 0).
    std::vector<TypeId> final_id(types.size(), void_type);
    std::unordered_map<std::uint32_t, TypeId> class_to_final;
    std::vector<std::string> files;
    merged.clear();
    for (std::size_t i = 0; i < types.size(); ++i) {
        if (!reachable[i])
            continue;
        auto [it, inserted] = class_to_final.try_emplace(classes[i], static_cast<TypeId>(merged.size()));
        final_id[i] = it->second;
        if (inserted) {
            merged.push_back(types[i]);
            files.push_back(raw.files[i]);
        }
    }
    for (Type &type : merged)
        for_each_reference(type, [&](TypeId &ref) { ref = final_id[ref]; });
    qualify_clashing_names(merged, files);
    return final_id;
}

}  // namespace molt::schema
