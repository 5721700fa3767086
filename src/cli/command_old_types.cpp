#include "commands.h"
namespace molt::cli {
int run_old_types(const Options &) { return report_error("old-types: not built yet"); }
}
