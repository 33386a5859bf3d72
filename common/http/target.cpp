// Thread-safety: pure functions (see target.hpp).
#include "common/http/target.hpp"

namespace vartalap {

namespace {

// Calls visit(key, value, has_equals) for each '&'-separated parameter until it returns
// true; returns whether one did.
template <class Visit>
bool find_param(std::string_view query, Visit&& visit) {
    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        const auto eq = pair.find('=');
        const std::string_view key = pair.substr(0, eq);
        const std::string_view value =
            eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
        if (visit(key, value)) return true;
    }
    return false;
}

} // namespace

RequestTarget split_target(std::string_view target) {
    const auto question = target.find('?');
    if (question == std::string_view::npos) return {target, {}};
    return {target.substr(0, question), target.substr(question + 1)};
}

std::optional<std::string_view> query_param(std::string_view query, std::string_view key) {
    std::optional<std::string_view> found;
    find_param(query, [&](std::string_view k, std::string_view v) {
        if (k != key) return false;
        found = v;
        return true;
    });
    return found;
}

bool query_has(std::string_view query, std::string_view key, std::string_view value) {
    return find_param(query,
                      [&](std::string_view k, std::string_view v) { return k == key && v == value; });
}

} // namespace vartalap
