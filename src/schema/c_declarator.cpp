// C declarators for schema types: built inside out, as C reads them.
#include "c_declarator.h"

namespace molt::schema {
namespace {

// Bound on nesting, so a malformed schema (a qualifier cycle) cannot recurse forever.
constexpr int max_declarator_depth = 64;

std::string join(const std::string &base, std::string_view declarator)
{
    if (declarator.empty())
        return base;
    return base + " " + std::string(declarator);
}

std::string declaration(const Schema &schema, TypeId id, std::string declarator,
                        const TypeNamer &namer, int depth)
{
    if (depth > max_declarator_depth)
        return join("void /* type nested too deeply */", declarator);
    const Type &type = schema.type(id);
    switch (type.kind) {
    case TypeKind::Void:
        return join("void", declarator);
    case TypeKind::Base:
    case TypeKind::Struct:
    case TypeKind::Union:
    case TypeKind::Enum:
    case TypeKind::Typedef:
        return join(namer(id), declarator);
    case TypeKind::Pointer: {
        TypeKind pointee = schema.type(type.target).kind;
        std::string inner = "*" + declarator;
        if (pointee == TypeKind::Array || pointee == TypeKind::Function)
            inner = "(" + inner + ")";
        return declaration(schema, type.target, inner, namer, depth + 1);
    }
    case TypeKind::Const:
    case TypeKind::Volatile:
    case TypeKind::Restrict:
    case TypeKind::Atomic: {
        const char *word = type.kind == TypeKind::Const      ? "const"
                           : type.kind == TypeKind::Volatile ? "volatile"
                           : type.kind == TypeKind::Restrict ? "restrict"
                                                             : "_Atomic";
        // A qualified pointer puts the qualifier after the star: `char *const p`; look through
        // the rest of the qualifier chain (`char *const volatile p`).
        TypeId below = type.target;
        for (int i = 0; i < max_declarator_depth; ++i) {
            TypeKind kind = schema.type(below).kind;
            if (kind != TypeKind::Const && kind != TypeKind::Volatile && kind != TypeKind::Restrict &&
                kind != TypeKind::Atomic)
                break;
            below = schema.type(below).target;
        }
        if (schema.type(below).kind == TypeKind::Pointer)
            return declaration(schema, type.target,
                               declarator.empty() ? std::string(word) : std::string(word) + " " + declarator,
                               namer, depth + 1);
        return std::string(word) + " " + declaration(schema, type.target, declarator, namer, depth + 1);
    }
    case TypeKind::Array: {
        std::string dims;
        for (std::uint64_t count : type.counts)
            dims += count == unknown_count ? "[]" : "[" + std::to_string(count) + "]";
        return declaration(schema, type.target, declarator + dims, namer, depth + 1);
    }
    case TypeKind::Function: {
        std::string params;
        for (std::size_t i = 0; i < type.params.size(); ++i) {
            if (i)
                params += ", ";
            params += declaration(schema, type.params[i], "", namer, depth + 1);
        }
        if (type.variadic)
            params += type.params.empty() ? "..." : ", ...";
        if (params.empty() && type.prototyped)
            params = "void";
        return declaration(schema, type.target, declarator + "(" + params + ")", namer, depth + 1);
    }
    }
    return join("void", declarator);
}

}  // namespace

std::string c_declaration(const Schema &schema, TypeId id, std::string_view declarator,
                          const TypeNamer &namer)
{
    return declaration(schema, id, std::string(declarator), namer, 0);
}

}  // namespace molt::schema
