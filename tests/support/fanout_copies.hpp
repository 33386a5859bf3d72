// The event copies a FanoutOutbox would send, decoded, for the tests of the outbox and of
// the daemons that use it (group, group-router).
// Thread: the test's.
#pragma once

#include "tests/support/fixtures.hpp"
#include "common/wire/envelope.hpp"
#include "common/store/fanout_outbox.hpp"

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace vartalap::test {

struct SentCopy {
    std::size_t shard = 0;
    Envelope envelope;
    nlohmann::json payload() const { return nlohmann::json::parse(envelope.payload); }
};

// Sends every pending copy of `outbox` into `out` (all shards accept).
inline std::size_t drain(FanoutOutbox& outbox, std::vector<SentCopy>& out) {
    return outbox.send_pending([&](std::size_t shard, const Envelope& copy) {
        out.push_back({shard, copy});
        return true;
    });
}

} // namespace vartalap::test
