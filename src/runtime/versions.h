// The versions loaded in this process: the first (the executable, or the shared object that
// `molt run` started) and every version an update loaded. None is ever unloaded.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "result.h"
#include "schema.h"
#include "threads.h"

namespace molt::runtime {

struct Version {
    std::string path;
    void *handle = nullptr;  // from dlopen; null for the executable
    std::string mapped_path;  // the file as mapped (a fresh copy for a version loaded again)
    std::uintptr_t bias = 0;  // load bias: run-time address = bias + schema address
    std::string build_id;
    std::optional<schema::Schema> schema;  // read before any pause, kept for later updates
    std::string refusal;  // what its constructors said through molt_refuse_update, if they refused

    std::uintptr_t address(std::uint64_t link_address) const { return bias + link_address; }
    // Reads the schema if it is not read yet (never call while threads are parked).
    Result<const schema::Schema *> load_schema();
};

Version &current_version();

// The files of every version loaded so far (each copy of a version loaded twice).
std::vector<std::string> version_paths();
void set_current_version(Version *version);

// Describes the executable as the first version (from the runtime's constructor).
void adopt_executable();

// dlopen(RTLD_NOW | RTLD_LOCAL) of a new version; the error is dlerror's, in one line. When its
// constructors refused the update (molt_refuse_update), the version is loaded all the same, with
// the reason in `refusal`: the caller fails the update and unloads it.
Result<Version *> open_version(const std::string &path);

// Unloads a version that never became current (an update that failed before its code ran):
// dlclose, and forgotten. Null does nothing.
void unload_version(Version *version);

// Makes an already opened shared object the first version (driver mode, `molt run`).
Version *adopt_shared_object(const std::string &path, void *handle);

}  // namespace molt::runtime
