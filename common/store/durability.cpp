// Thread: caller's; see durability.hpp.
#include "common/store/durability.hpp"

namespace vartalap::lmdb {

std::optional<Durability> parse_durability(std::string_view text) {
    if (text == "fsync") return Durability::fsync;
    if (text == "process") return Durability::process;
    return std::nullopt;
}

const char* to_string(Durability durability) {
    return durability == Durability::fsync ? "fsync" : "process";
}

} // namespace vartalap::lmdb
