// Thread: any (pure functions; see names.hpp).
#include "common/names.hpp"

namespace vartalap {
namespace {

bool allowed_character(unsigned char c) {
    return c > ' ' && c < 0x7f && c != '"' && c != ';' && c != ',' && c != '\\' && c != '/';
}

bool is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool equals_ignoring_case(std::string_view text, std::string_view lower) {
    if (text.size() != lower.size()) return false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        if (c != lower[i]) return false;
    }
    return true;
}

NameProblem check_characters(std::string_view name, std::size_t max_bytes) {
    if (name.empty()) return NameProblem::empty;
    if (name.size() > max_bytes) return NameProblem::too_long;
    for (unsigned char c : name)
        if (!allowed_character(c)) return NameProblem::bad_character;
    if (equals_ignoring_case(name, "server") || name.front() == '~') return NameProblem::reserved;
    return NameProblem::none;
}

} // namespace

bool group_id_shaped(std::string_view name) {
    if (name.size() != 36) return false;
    for (std::size_t i = 0; i < name.size(); ++i) {
        const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? name[i] != '-' : !is_hex(name[i])) return false;
    }
    return true;
}

NameProblem check_username(std::string_view name) {
    const NameProblem problem = check_characters(name, kMaxUsernameBytes);
    if (problem != NameProblem::none) return problem;
    return group_id_shaped(name) ? NameProblem::reserved : NameProblem::none;
}

NameProblem check_group_id(std::string_view id) { return check_characters(id, kMaxGroupIdBytes); }

std::string_view describe(NameProblem problem) {
    switch (problem) {
    case NameProblem::none: return "valid";
    case NameProblem::empty: return "empty";
    case NameProblem::too_long: return "too long";
    case NameProblem::bad_character: return "a character that is not allowed";
    case NameProblem::reserved: return "reserved";
    }
    return "invalid";
}

} // namespace vartalap
