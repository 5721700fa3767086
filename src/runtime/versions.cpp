// Versions: where each is mapped, and its schema.
#include "versions.h"

#include <dlfcn.h>
#include <link.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <mutex>
#include <vector>

#include "schema_cache.h"

namespace molt::runtime {
namespace {

std::mutex &versions_mutex()
{
    static std::mutex mutex;
    return mutex;
}

std::vector<std::unique_ptr<Version>> &all_versions()
{
    static auto *versions = new std::vector<std::unique_ptr<Version>>;  // versions outlive exit
    return *versions;
}

Version *g_current = nullptr;

std::string real_path(const std::string &path)
{
    char resolved[PATH_MAX];
    return realpath(path.c_str(), resolved) ? std::string(resolved) : path;
}

Version *remember(std::unique_ptr<Version> version)
{
    std::lock_guard lock(versions_mutex());
    all_versions().push_back(std::move(version));
    return all_versions().back().get();
}

std::uintptr_t bias_of(void *handle)
{
    link_map *map = nullptr;
    if (dlinfo(handle, RTLD_DI_LINKMAP, &map) != 0 || !map)
        return 0;
    return map->l_addr;
}

}  // namespace

Result<const schema::Schema *> Version::load_schema()
{
    if (!schema) {
        auto loaded = schema::load_schema(path);
        if (!loaded)
            return loaded.error();
        schema = std::move(*loaded);
        build_id = schema->build_id;
    }
    return &*schema;
}

Version &current_version() { return *g_current; }
void set_current_version(Version *version) { g_current = version; }

void adopt_executable()
{
    auto version = std::make_unique<Version>();
    version->path = real_path("/proc/self/exe");
    dl_iterate_phdr(
        [](dl_phdr_info *info, size_t, void *data) {
            *static_cast<std::uintptr_t *>(data) = info->dlpi_addr;
            return 1;  // the first object is the executable
        },
        &version->bias);
    g_current = remember(std::move(version));
}

Result<Version *> open_version(const std::string &path)
{
    dlerror();
    void *handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *why = dlerror();
        return Error{path, std::string("cannot load: ") + (why ? why : "dlopen failed")};
    }
    auto version = std::make_unique<Version>();
    version->path = real_path(path);
    version->handle = handle;
    version->bias = bias_of(handle);
    return remember(std::move(version));
}

Version *adopt_shared_object(const std::string &path, void *handle)
{
    auto version = std::make_unique<Version>();
    version->path = real_path(path);
    version->handle = handle;
    version->bias = bias_of(handle);
    g_current = remember(std::move(version));
    return g_current;
}

}  // namespace molt::runtime
