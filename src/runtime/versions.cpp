// Versions: where each is mapped, and its schema.
#include "versions.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>
#include <set>
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

std::atomic<Version *> g_current{nullptr};  // written at commit, read by control-socket threads

std::string real_path(const std::string &path)
{
    char resolved[PATH_MAX];
    return realpath(path.c_str(), resolved) ? std::string(resolved) : path;
}

// The files of every version this process has loaded (a copy is made of any loaded again).
std::set<std::string> &ever_loaded()
{
    static auto *paths = new std::set<std::string>;
    return *paths;
}

Version *remember(std::unique_ptr<Version> version)
{
    std::lock_guard lock(versions_mutex());
    ever_loaded().insert(version->path);
    all_versions().push_back(std::move(version));
    return all_versions().back().get();
}

}  // namespace

std::vector<std::string> version_paths()
{
    std::lock_guard lock(versions_mutex());
    std::vector<std::string> paths;
    for (const auto &version : all_versions()) {
        paths.push_back(version->path);
        if (!version->mapped_path.empty())
            paths.push_back(version->mapped_path);
    }
    return paths;
}

namespace {

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
    static std::mutex loading;  // `molt status` and an update's prepare may ask at once
    std::lock_guard lock(loading);
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

namespace {

// A file already loaded (an update back to an earlier version) would come back from dlopen as
// the same image, its globals as that version left them and its constructors not run again. A
// copy under a name never used before is a new object to the dynamic loader: a fresh image.
// (The loader matches by name first, so /proc/self/fd paths, whose numbers are reused, will
// not do.) The copy is unlinked once mapped.
std::optional<std::string> fresh_copy(const std::string &path)
{
    std::string wanted = real_path(path);
    bool loaded = false;
    {
        std::lock_guard lock(versions_mutex());
        // Every file loaded once, even one unloaded since (after a failed update): dlclose may
        // leave it mapped (another reference, a NODELETE object), and dlopen would hand back
        // that image, its globals as it left them.
        loaded = ever_loaded().count(wanted) != 0;
    }
    if (!loaded)
        return std::nullopt;
    const char *base = std::getenv("TMPDIR");
    std::string directory = std::string(base && *base ? base : "/tmp") + "/molt-" + std::to_string(geteuid());
    mkdir(directory.c_str(), 0700);
    struct stat owner {};
    if (lstat(directory.c_str(), &owner) != 0 || !S_ISDIR(owner.st_mode) || owner.st_uid != geteuid() ||
        (owner.st_mode & 077))
        return std::nullopt;  // not our private directory: load the file itself
    static std::atomic<unsigned> serial{0};
    std::string copy = directory + "/" + std::to_string(getpid()) + "-" + std::to_string(serial.fetch_add(1)) + "-" +
                       wanted.substr(wanted.rfind('/') + 1);
    int source = open(wanted.c_str(), O_RDONLY | O_CLOEXEC);
    int target = open(copy.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
    struct stat status {};
    bool copied = source >= 0 && target >= 0 && fstat(source, &status) == 0;
    for (off_t offset = 0; copied && offset < status.st_size;)
        copied = sendfile(target, source, &offset, static_cast<std::size_t>(status.st_size - offset)) > 0;
    if (source >= 0)
        close(source);
    if (target >= 0)
        close(target);
    if (!copied) {
        unlink(copy.c_str());
        return std::nullopt;
    }
    return copy;
}

Version *remember_opened(const std::string &path, const std::string &mapped_path, void *handle)
{
    auto version = std::make_unique<Version>();
    version->path = real_path(path);
    version->mapped_path = mapped_path;
    version->handle = handle;
    version->bias = bias_of(handle);
    return remember(std::move(version));
}

// molt_refuse_update: where the constructors of the version open_version is loading put their
// refusal (they run on its thread, inside dlopen); null on any other thread, or at any other time.
thread_local std::string *t_refusal = nullptr;

}  // namespace

Result<Version *> open_version(const std::string &path)
{
    std::optional<std::string> copy = fresh_copy(path);
    dlerror();
    std::string refusal;
    t_refusal = &refusal;
    void *handle = dlopen(copy ? copy->c_str() : path.c_str(), RTLD_NOW | RTLD_LOCAL);
    t_refusal = nullptr;
    if (copy)
        unlink(copy->c_str());  // the mapping keeps the copy alive
    if (!handle) {
        const char *why = dlerror();
        return Error{path, std::string("cannot load: ") + (why ? why : "dlopen failed")};
    }
    Version *opened = remember_opened(path, copy ? *copy : real_path(path), handle);
    opened->refusal = refusal;  // the caller fails the update, and unloads it as any other
    return opened;
}

void unload_version(Version *version)
{
    if (!version || !version->handle || version == g_current.load())
        return;
    std::unique_ptr<Version> forgotten;
    {
        std::lock_guard lock(versions_mutex());
        auto &versions = all_versions();
        for (auto at = versions.begin(); at != versions.end(); ++at)
            if (at->get() == version) {
                forgotten = std::move(*at);
                versions.erase(at);
                break;
            }
    }
    if (forgotten)
        dlclose(forgotten->handle);  // its destructors run outside the lock
}

Version *adopt_shared_object(const std::string &path, void *handle)
{
    g_current = remember_opened(path, real_path(path), handle);
    return g_current;
}

}  // namespace molt::runtime

extern "C" __attribute__((visibility("default"))) int molt_refuse_update(const char *reason)
{
    using namespace molt::runtime;
    if (!t_refusal)
        return 0;
    if (t_refusal->empty())  // the first reason given is the one reported
        *t_refusal = reason && *reason ? reason : "no reason given";
    return 1;
}
