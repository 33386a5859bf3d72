// Thread: any (pure functions); the push daemon calls them on its io thread.
#include "daemons/push/backoff.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cctype>

namespace vartalap::push {

std::uint64_t backoff_delay_ms(const BackoffPolicy& policy, std::uint32_t failed_attempts,
                               std::optional<std::uint64_t> retry_after_ms,
                               const UniformRandom& random) {
    // base * 2^(n-1) without overflow: stop doubling once the cap is reached.
    std::uint64_t ceiling = std::min(policy.base_ms, policy.cap_ms);
    for (std::uint32_t i = 1; i < failed_attempts && ceiling < policy.cap_ms; ++i)
        ceiling = std::min(ceiling * 2, policy.cap_ms);
    std::uint64_t delay = std::min(random(ceiling), ceiling); // a bad random stays in bounds
    if (retry_after_ms) delay = std::max(delay, std::min(*retry_after_ms, policy.max_retry_after_ms));
    return delay;
}

namespace {

// A tiny cursor over the header value; every reader returns false on a mismatch.
struct Reader {
    std::string_view text;
    std::size_t at = 0;

    bool done() const { return at == text.size(); }
    bool literal(char c) {
        if (at < text.size() && text[at] == c) {
            ++at;
            return true;
        }
        return false;
    }
    void spaces() {
        while (at < text.size() && text[at] == ' ') ++at;
    }
    // Exactly `digits` digits when digits > 0; 1 or 2 when digits == 0 (asctime's day).
    bool number(int digits, int& out) {
        const int most = digits > 0 ? digits : 2;
        int read = 0;
        out = 0;
        while (read < most && at < text.size() && std::isdigit(static_cast<unsigned char>(text[at]))) {
            out = out * 10 + (text[at++] - '0');
            ++read;
        }
        return digits > 0 ? read == digits : read >= 1;
    }
    bool word(std::string_view& out) {
        const std::size_t start = at;
        while (at < text.size() && std::isalpha(static_cast<unsigned char>(text[at]))) ++at;
        out = text.substr(start, at - start);
        return at > start;
    }
};

bool month_number(std::string_view name, int& month) {
    static constexpr std::array<std::string_view, 12> months = {
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    for (std::size_t i = 0; i < months.size(); ++i)
        if (name == months[i]) {
            month = static_cast<int>(i) + 1;
            return true;
        }
    return false;
}

bool time_of_day(Reader& reader, int& hour, int& minute, int& second) {
    return reader.number(2, hour) && reader.literal(':') && reader.number(2, minute) &&
           reader.literal(':') && reader.number(2, second) && hour < 24 && minute < 60 &&
           second <= 60; // 60: a leap second is a valid HTTP-date
}


std::optional<std::int64_t> parse_http_date_seconds(std::string_view value) {
    Reader reader{value};
    std::string_view weekday, month_name;
    int day = 0, month = 0, year = 0, hour = 0, minute = 0, second = 0;
    if (!reader.word(weekday)) return std::nullopt;
    if (reader.literal(',')) {
        reader.spaces();
        if (!reader.number(2, day)) return std::nullopt;
        if (reader.literal(' ')) {
            // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
            if (!reader.word(month_name) || !reader.literal(' ') || !reader.number(4, year))
                return std::nullopt;
        } else if (reader.literal('-')) {
            // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"; two-digit years are 1970-2069.
            if (!reader.word(month_name) || !reader.literal('-') || !reader.number(2, year))
                return std::nullopt;
            year += year < 70 ? 2000 : 1900;
        } else {
            return std::nullopt;
        }
        if (!reader.literal(' ') || !time_of_day(reader, hour, minute, second) ||
            !reader.literal(' ') || !reader.literal('G') || !reader.literal('M') || !reader.literal('T'))
            return std::nullopt;
    } else {
        // asctime: "Sun Nov  6 08:49:37 1994"
        if (!reader.literal(' ') || !reader.word(month_name)) return std::nullopt;
        reader.spaces();
        if (!reader.number(0, day) || !reader.literal(' ') || !time_of_day(reader, hour, minute, second) ||
            !reader.literal(' ') || !reader.number(4, year))
            return std::nullopt;
    }
    reader.spaces();
    if (!reader.done() || !month_number(month_name, month) || day < 1 || day > 31) return std::nullopt;
    // A proleptic Gregorian date in UTC, independent of the process's time zone (timegm is
    // not standard C++). A day past the month's end counts on into the next month.
    namespace chrono = std::chrono;
    const chrono::year_month_day date{chrono::year{year},
                                      chrono::month{static_cast<unsigned>(month)},
                                      chrono::day{static_cast<unsigned>(day)}};
    const chrono::sys_seconds at = chrono::sys_days{date} + chrono::hours{hour} +
                                   chrono::minutes{minute} + chrono::seconds{second};
    return at.time_since_epoch().count();
}

} // namespace

std::optional<std::uint64_t> parse_retry_after(std::string_view value, std::uint64_t now_wall_ms) {
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (value.empty()) return std::nullopt;
    if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        // delta-seconds; a value too long to be sensible saturates at ~31 years instead of
        // overflowing (the policy clamps it long before that).
        if (value.size() > 9) return std::uint64_t{999999999} * 1000;
        std::uint64_t seconds = 0;
        for (char c : value) seconds = seconds * 10 + static_cast<std::uint64_t>(c - '0');
        return seconds * 1000;
    }
    const auto date = parse_http_date_seconds(value);
    if (!date) return std::nullopt;
    const std::int64_t at_ms = *date * 1000;
    const auto now = static_cast<std::int64_t>(now_wall_ms);
    return at_ms > now ? static_cast<std::uint64_t>(at_ms - now) : 0;
}

} // namespace vartalap::push
