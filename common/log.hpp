// Logging: spdlog, one line per event. Under systemd (JOURNAL_STREAM set) each line starts
// with a syslog level prefix "<N>" that journald understands; secrets are never logged
// (access keys, tokens, message bodies).
// Thread-safety: spdlog's loggers are thread-safe.
#pragma once

#include <spdlog/spdlog.h>
#include <string_view>

namespace vartalap {

// level: trace, debug, info, warn, error, critical, off. Unknown names fall back to info.
void init_logging(std::string_view level);

} // namespace vartalap
