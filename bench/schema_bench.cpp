// Schema build time: cold (reading DWARF) and from the on-disk cache, on a large program.
// Prints its figures; the targets (issue 2): under 1 s cold, under 50 ms from the cache.
//
//   schema_bench FILE [REPETITIONS]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

#include "dwarf_reader.h"
#include "schema_cache.h"

namespace {

using Clock = std::chrono::steady_clock;

double milliseconds_since(Clock::time_point start)
{
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

double median(std::vector<double> values)
{
    std::sort(values.begin(), values.end());
    return values[values.size() / 2];
}

}  // namespace

int main(int argc, char **argv)
{
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s FILE [REPETITIONS]\n", argv[0]);
        return 2;
    }
    std::string path = argv[1];
    int repetitions = argc > 2 ? std::atoi(argv[2]) : 5;

    std::vector<double> cold, cached, cached_file;
    std::size_t variables = 0, functions = 0, types = 0, warnings = 0;
    std::string bytes;
    for (int i = 0; i < repetitions; ++i) {
        auto start = Clock::now();
        auto schema = molt::schema::read_schema(path);
        cold.push_back(milliseconds_since(start));
        if (!schema) {
            std::fprintf(stderr, "schema_bench: %s\n", schema.error().to_string().c_str());
            return 1;
        }
        variables = schema->variables.size();
        functions = schema->functions.size();
        types = schema->types.size();
        warnings = schema->warnings.size();
        bytes = molt::schema::serialize_schema(*schema);
    }
    // The cache path as `molt` takes it: build-id lookup, file read, deserialisation.
    std::string cache = std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") + "/molt-bench-cache";
    setenv("MOLT_CACHE_DIR", cache.c_str(), 1);
    (void)molt::schema::load_schema(path);  // fills the cache
    for (int i = 0; i < repetitions; ++i) {
        auto start = Clock::now();
        auto schema = molt::schema::load_schema(path);
        cached_file.push_back(milliseconds_since(start));
        start = Clock::now();
        auto again = molt::schema::deserialize_schema(bytes);
        cached.push_back(milliseconds_since(start));
        if (!schema || !again)
            return 1;
    }
    std::printf("schema of %s: %zu variables, %zu functions, %zu types, %zu warnings\n", path.c_str(), variables,
                functions, types, warnings);
    std::printf("cold (DWARF):          median %8.1f ms  best %8.1f ms  (target < 1000 ms)\n", median(cold),
                *std::min_element(cold.begin(), cold.end()));
    std::printf("from cache (load):     median %8.1f ms  best %8.1f ms  (target < 50 ms)\n", median(cached_file),
                *std::min_element(cached_file.begin(), cached_file.end()));
    std::printf("deserialise only:      median %8.1f ms\n", median(cached));
    std::printf("cache entry size:      %8.1f KiB\n", bytes.size() / 1024.0);
    return 0;
}
