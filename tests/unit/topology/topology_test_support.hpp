// Thread: the test's. Helpers shared by the topology unit tests: a snippet plus the other
// kinds a topology needs, and matching diagnostics by line and words.
#pragma once

#include "topology/topology.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <initializer_list>
#include <string>
#include <string_view>

namespace vartalap::topology::test {

// The other required kinds, appended after a snippet under test so that the snippet's own
// line numbers start at 1. TCP endpoints with fixed ports keep it valid in multi-host tests;
// plain text (no CURVE keys), which a snippet without its own [system] table allows here
// (one with it says `insecure_tcp = true` itself where it needs a valid file); its profile
// uses the firebase provider, so snippets may listen on any address.
inline std::string required_tail(std::string_view without_kind = {},
                                 bool allow_insecure_tcp = true) {
    std::string tail;
    if (allow_insecure_tcp) tail += "\n[system]\ninsecure_tcp = true\n";
    if (without_kind != "message-router")
        tail += "\n[[daemon]]\nkind = \"message-router\"\nname = \"tail-router\"\n"
                "pull = \"tcp://127.0.0.1:17001\"\n";
    if (without_kind != "session")
        tail += "\n[[daemon]]\nkind = \"session\"\nname = \"tail-session\"\n"
                "pull = \"tcp://127.0.0.1:17002\"\n";
    if (without_kind != "profile")
        tail += "\n[[daemon]]\nkind = \"profile\"\nname = \"tail-profile\"\n"
                "router = \"tcp://127.0.0.1:17003\"\n"
                // Snippets listen on public addresses: the development provider would be refused.
                "[daemon.options]\nidentity_provider = \"firebase\"\nfirebase_project_id = \"t\"\n";
    if (without_kind != "rest-gateway")
        tail += "\n[[daemon]]\nkind = \"rest-gateway\"\nname = \"tail-rest\"\n"
                "listen = \"127.0.0.1:0\"\nrouter = \"tcp://127.0.0.1:17004\"\n";
    return tail;
}

inline LoadResult load(std::string_view snippet, std::string_view without_kind = {}) {
    const bool has_system = snippet.find("[system]") != std::string_view::npos;
    return load_string(std::string(snippet) + required_tail(without_kind, !has_system), "t.toml");
}

inline std::string all_errors(const LoadResult& result) {
    std::string out;
    for (const auto& error : result.errors) out += error.str() + "\n";
    return out;
}

// Passes if some diagnostic is on `line` and contains every one of `parts`.
inline ::testing::AssertionResult has_error(const LoadResult& result, int line,
                                     std::initializer_list<std::string_view> parts) {
    for (const auto& error : result.errors) {
        if (error.line != line) continue;
        const bool all = std::all_of(parts.begin(), parts.end(), [&](std::string_view part) {
            return error.message.find(part) != std::string::npos;
        });
        if (all) return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "no error on line " << line << " with those words in:\n"
                                         << all_errors(result);
}

// Two session instances with the given slot lists (plus the other required kinds).
inline constexpr std::string_view kSessionHead = R"toml([[daemon]]
kind = "session"
name = "s1"
pull = "inproc://s1"
slots = "%1"
[[daemon]]
kind = "session"
name = "s2"
pull = "inproc://s2"
slots = "%2"
)toml";

inline LoadResult load_sessions(std::string_view first_slots, std::string_view second_slots) {
    std::string text(kSessionHead);
    text.replace(text.find("%1"), 2, first_slots);
    text.replace(text.find("%2"), 2, second_slots);
    return load(text, "session");
}

} // namespace vartalap::topology::test
