// `molt update --verify`: after the conversion, a conservative scan of the process's memory for
// words that still point into the old copies of converted objects: pointers Molt could not see
// (a void * without an annotation, a library's context pointer, an integer holding an address),
// which would lead the new version to freed memory once the old copies go.
//
// Scanned, word by word: the new version's variables (named), the writable data of the other
// libraries, and every live heap block allocated through Molt (found by its chunk header and
// trailer; free and realloc erase a block's trailer, so freed memory is not read). Not scanned: the old version's
// own data and objects (they are replaced), Molt's own bookkeeping, and thread stacks (the old
// frames are dropped at the commit; the new ones do not exist yet).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "heap_conversion.h"

namespace molt::transform {

struct StaleScan {
    std::size_t bytes_scanned = 0;
    std::size_t found = 0;              // words pointing into a replaced object
    std::vector<std::string> examples;  // the first ones, each spelled out
};

// `version_paths` name the files of every version loaded, as mapped: their data is not scanned
// as a library's (the old ones are dead; the new one's variables are scanned by name, from
// `new_image`). With `parallel`, the heaps are read in two halves at once.
using Parallel = HeapConverter::Parallel;
StaleScan find_stale_pointers(const HeapConverter &heap, const Image &new_image,
                              const std::vector<std::string> &version_paths, const Parallel &parallel = {},
                              std::size_t max_examples = 20);

}  // namespace molt::transform
