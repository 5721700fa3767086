// `molt run V.so [ARGS]`: driver mode. Executes molt-driver (beside this binary), a small program
// linked with the runtime that loads V.so as the first version and runs its main.
#include <limits.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "commands.h"
#include "schema_cache.h"

namespace molt::cli {

int run_run(const Options &options, const std::vector<std::string> &arguments)
{
    char self[PATH_MAX];
    ssize_t length = readlink("/proc/self/exe", self, sizeof self - 1);
    if (length <= 0)
        return report_error(std::string("cannot find the molt binary: ") + std::strerror(errno));
    self[length] = '\0';
    std::string driver = std::string(self);
    driver = driver.substr(0, driver.rfind('/') + 1) + "molt-driver";
    if (auto schema = load_schema(options, options.file); !schema)
        return report_error(schema.error().to_string());
    char resolved[PATH_MAX];
    if (!realpath(options.file.c_str(), resolved))
        return report_error(options.file + ": " + std::strerror(errno));
    std::vector<char *> argv;
    argv.push_back(const_cast<char *>(driver.c_str()));
    argv.push_back(resolved);
    for (const std::string &argument : arguments)
        argv.push_back(const_cast<char *>(argument.c_str()));
    argv.push_back(nullptr);
    execv(driver.c_str(), argv.data());
    return report_error(driver + ": " + std::strerror(errno));
}

}  // namespace molt::cli
