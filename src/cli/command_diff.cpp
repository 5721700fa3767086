#include "commands.h"
namespace molt::cli {
int run_diff(const Options &) { return report_error("diff: not built yet"); }
int run_check(const Options &) { return report_error("check: not built yet"); }
}
