// VARTALAP_VERSION is defined for this file only (common/CMakeLists.txt), so a new commit
// recompiles one file.
#include "common/version.hpp"

#ifndef VARTALAP_VERSION
#define VARTALAP_VERSION "unknown"
#endif

namespace vartalap {
std::string_view version() { return VARTALAP_VERSION; }
}
