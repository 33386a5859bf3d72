// Fixtures shared by the unit tests: a temporary directory (for real LMDB environments),
// removed with everything in it when the fixture goes, and a hand-driven clock.
// Thread: the test's.
#pragma once

#include "common/clock.hpp"

#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <unistd.h>

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

} // namespace vartalap::test
