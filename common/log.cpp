#include "common/log.hpp"

#include <cstdlib>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace vartalap {
namespace {

// "%*" in the pattern: the sd-daemon(3) priority prefix for the message's level.
class JournalLevelFlag final : public spdlog::custom_flag_formatter {
public:
    void format(const spdlog::details::log_msg& msg, const std::tm&,
                spdlog::memory_buf_t& dest) override {
        static const char* prefixes[] = {"<7>", "<7>", "<6>", "<4>", "<3>", "<2>", ""};
        const auto level = static_cast<std::size_t>(msg.level);
        const char* prefix = prefixes[level < 7 ? level : 6];
        dest.append(prefix, prefix + std::char_traits<char>::length(prefix));
    }
    std::unique_ptr<custom_flag_formatter> clone() const override {
        return std::make_unique<JournalLevelFlag>();
    }
};

} // namespace

void init_logging(std::string_view level, std::string_view process) {
    // spdlog patterns treat '%' specially; instance names cannot contain it (validator).
    const std::string tag = process.empty() ? std::string() : "[" + std::string(process) + "] ";
    auto logger = spdlog::get("vartalap");
    if (!logger) logger = spdlog::stderr_logger_mt("vartalap");
    spdlog::set_default_logger(logger);
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    if (std::getenv("JOURNAL_STREAM")) {
        // The journal adds its own timestamp.
        formatter->add_flag<JournalLevelFlag>('*').set_pattern("%*" + tag + "%v");
    } else {
        formatter->set_pattern("%Y-%m-%d %H:%M:%S.%e %L " + tag + "%v");
    }
    spdlog::set_formatter(std::move(formatter));
    auto parsed = spdlog::level::from_str(std::string(level));
    if (parsed == spdlog::level::off && level != "off") parsed = spdlog::level::info;
    spdlog::set_level(parsed);
}

} // namespace vartalap
