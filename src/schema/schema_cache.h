// Schemas cached on disk by build-id: a version's DWARF is read once, later loads take the cache.
#pragma once

#include <optional>
#include <string>

#include "result.h"
#include "schema.h"

namespace molt::schema {

enum class CacheUse { Use, Bypass };

// Reads FILE's schema, from the cache when an entry for its build-id exists, otherwise from
// its DWARF (then stores it). Files without a build-id are always read from DWARF. A cache
// that cannot be read or written is ignored: the cache only ever saves time.
Result<Schema> load_schema(const std::string &path, CacheUse use = CacheUse::Use);

// $MOLT_CACHE_DIR, else $XDG_CACHE_HOME/molt, else $HOME/.cache/molt; nullopt if none is set.
std::optional<std::string> cache_directory();

// The binary form of a schema (exposed for tests and the benchmark).
std::string serialize_schema(const Schema &schema);
std::optional<Schema> deserialize_schema(const std::string &bytes);

}  // namespace molt::schema
