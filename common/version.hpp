// The build's version: the project version from CMakeLists.txt, plus "+g<commit>" when the
// source was a git checkout at configure time ("0.1.0+g1f552b9").
// Thread-safety: returns a constant.
#pragma once

#include <string_view>

namespace vartalap {
std::string_view version();
}
