// Shared fixtures of the group unit tests: a temporary LMDB directory, a hand-driven clock,
// and a decoded view of the event copies a FanoutOutbox would send.
// Thread: the test's.
#pragma once

#include "common/clock.hpp"
#include "common/envelope.hpp"
#include "daemons/group/fanout_outbox.hpp"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

namespace vartalap::test {

class TempDirectory {
public:
    explicit TempDirectory(const std::string& tag) {
        std::random_device random;
        path_ = std::filesystem::temp_directory_path() /
                ("vartalap-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(random()));
        std::filesystem::create_directories(path_);
    }
    ~TempDirectory() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

class ManualClock final : public Clock {
public:
    std::uint64_t monotonic = 1'000'000;
    std::uint64_t wall = 1'700'000'000'000;
    std::uint64_t monotonic_ms() const override { return monotonic; }
    std::uint64_t wall_ms() const override { return wall; }
    void advance(std::uint64_t ms) {
        monotonic += ms;
        wall += ms;
    }
};

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
