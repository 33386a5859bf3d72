// Supervision (tools/vartalapctl/supervisor.hpp) driven with a fake clock: when children
// are started, restarted and stopped, and the supervisor's exit code. No processes.
#include "tools/vartalapctl/supervisor.hpp"

#include <gtest/gtest.h>

#include <csignal>

namespace vartalap::ctl {
namespace {

using namespace std::chrono_literals;
using Action = Supervision::Action;
using Type = Supervision::Action::Type;

constexpr ExitStatus kCrash{false, 1};
constexpr ExitStatus kKilled{true, SIGKILL};
constexpr ExitStatus kClean{false, 0};

class SupervisionTest : public ::testing::Test {
protected:
    // ws-1 (rank 0), router-1 (rank 1), session-1 and session-2 (rank 2), profile-1 (rank 3).
    Supervision supervision_{{{"ws-1", 0}, {"router-1", 1}, {"session-1", 2}, {"session-2", 2},
                              {"profile-1", 3}}};
    SteadyTime now_ = SteadyTime{} + 1000h; // any fixed origin

    void advance(std::chrono::milliseconds by) { now_ += by; }

    // Takes the actions due now and reports every spawn as successful.
    std::vector<Action> step() {
        auto actions = supervision_.take_actions(now_);
        for (const auto& action : actions)
            if (action.type == Type::spawn) supervision_.spawned(action.child, now_);
        return actions;
    }

    void start_all() {
        ASSERT_EQ(step().size(), supervision_.size());
        for (std::size_t i = 0; i < supervision_.size(); ++i) ASSERT_TRUE(supervision_.alive(i));
    }

    // Crashes `child` now and returns the restart delay it got.
    std::chrono::milliseconds crash(std::size_t child) {
        const auto decision = supervision_.exited(child, kCrash, now_);
        EXPECT_TRUE(decision.restart);
        return decision.delay;
    }

    // Moves the clock to the child's restart and restarts it.
    void restart_when_due(std::size_t child, std::chrono::milliseconds delay) {
        advance(delay - 1ms);
        EXPECT_TRUE(step().empty()) << "restarted before its delay";
        advance(1ms);
        EXPECT_EQ(step(), (std::vector<Action>{{Type::spawn, child}}));
    }
};

TEST(ExitStatusTest, DescribesExitCodesAndSignals) {
    EXPECT_EQ(ExitStatus::from_wait_status(0).describe(), "exit status 0");
    EXPECT_TRUE(ExitStatus::from_wait_status(0).clean());
    EXPECT_EQ(ExitStatus::from_wait_status(1 << 8).describe(), "exit status 1");
    EXPECT_FALSE(ExitStatus::from_wait_status(1 << 8).clean());
    const ExitStatus killed = ExitStatus::from_wait_status(SIGKILL); // WIFSIGNALED encoding
    EXPECT_TRUE(killed.signaled);
    EXPECT_EQ(killed.describe(), "killed by signal 9 (SIGKILL)");
    EXPECT_FALSE(killed.clean());
}

TEST_F(SupervisionTest, StartsEveryChildAtOnce) {
    const auto actions = step();
    ASSERT_EQ(actions.size(), 5u);
    for (std::size_t i = 0; i < actions.size(); ++i)
        EXPECT_EQ(actions[i], (Action{Type::spawn, i}));
    EXPECT_TRUE(step().empty());
    EXPECT_FALSE(supervision_.next_wakeup());
    EXPECT_FALSE(supervision_.finished());
}

TEST_F(SupervisionTest, AnnouncesReadyOnceWhenEveryChildHasBeenReady) {
    start_all();
    for (std::size_t i = 0; i + 1 < supervision_.size(); ++i)
        EXPECT_FALSE(supervision_.became_ready(i, now_));
    EXPECT_FALSE(supervision_.became_ready(0, now_)); // again: still not all
    EXPECT_TRUE(supervision_.became_ready(4, now_));
    // A restarted child reporting ready again does not announce it twice.
    crash(2);
    advance(1s);
    step();
    EXPECT_FALSE(supervision_.became_ready(2, now_));
}

TEST_F(SupervisionTest, CrashRestartsAfterOneSecondDoublingToThirtySeconds) {
    start_all();
    const std::vector<std::chrono::milliseconds> expected{1s, 2s, 4s, 8s, 16s, 30s, 30s, 30s};
    for (std::size_t n = 0; n < expected.size(); ++n) {
        advance(100ms); // crashes right after starting: not a stable run
        const auto decision = supervision_.exited(3, n % 2 ? kKilled : kCrash, now_);
        ASSERT_TRUE(decision.restart);
        EXPECT_EQ(decision.delay, expected[n]) << "crash #" << n + 1;
        EXPECT_EQ(decision.restart_count, static_cast<int>(n) + 1);
        EXPECT_EQ(supervision_.next_wakeup(), now_ + expected[n]);
        restart_when_due(3, decision.delay);
        EXPECT_TRUE(supervision_.alive(3));
    }
}

TEST_F(SupervisionTest, CrashAfterAHealthyRunRestartsAtOnceAndResetsTheBackoff) {
    start_all();
    advance(300ms);
    supervision_.became_ready(2, now_);
    advance(2s); // ready, then 2 s up: a healthy run, killed, not crash-looping
    const auto decision = supervision_.exited(2, kKilled, now_);
    ASSERT_TRUE(decision.restart);
    EXPECT_EQ(decision.delay, 0ms);
    EXPECT_EQ(supervision_.next_wakeup(), now_);
    EXPECT_EQ(step(), (std::vector<Action>{{Type::spawn, 2}})); // no wait at all
    advance(1h);
    EXPECT_EQ(crash(2), 1s); // an hour up but never ready this run: not healthy
    restart_when_due(2, 1s);
    supervision_.became_ready(2, now_);
    advance(1999ms);
    EXPECT_EQ(crash(2), 2s); // ready, but died within 2 s: still the same run of trouble
    restart_when_due(2, 2s);
    supervision_.became_ready(2, now_);
    supervision_.became_ready(2, now_ + 1s); // a repeated line does not move the mark
    advance(2s);
    EXPECT_EQ(crash(2), 0ms); // healthy again: at once, and the count starts over
    EXPECT_EQ(step(), (std::vector<Action>{{Type::spawn, 2}}));
    advance(10ms);
    EXPECT_EQ(crash(2), 1s);
}

TEST_F(SupervisionTest, FailedSpawnsNeverCountAsHealthy) {
    start_all();
    supervision_.became_ready(4, now_);
    advance(1h);
    EXPECT_EQ(crash(4), 0ms);
    auto actions = supervision_.take_actions(now_);
    ASSERT_EQ(actions, (std::vector<Action>{{Type::spawn, 4}}));
    // Its exec fails again and again, long after its last healthy run: backoff, not a spin.
    for (const auto expected : {1s, 2s, 4s}) {
        const auto decision = supervision_.exited(4, ExitStatus{false, 127}, now_);
        EXPECT_EQ(decision.delay, expected);
        advance(decision.delay);
        ASSERT_EQ(supervision_.take_actions(now_), (std::vector<Action>{{Type::spawn, 4}}));
    }
}

TEST_F(SupervisionTest, BackoffIsPerChild) {
    start_all();
    EXPECT_EQ(crash(2), 1s);
    EXPECT_EQ(crash(3), 1s);
    EXPECT_EQ(supervision_.next_wakeup(), now_ + 1s);
    advance(1s);
    const auto actions = step();
    EXPECT_EQ(actions, (std::vector<Action>{{Type::spawn, 2}, {Type::spawn, 3}}));
    advance(10ms);
    EXPECT_EQ(crash(2), 2s);
}

TEST_F(SupervisionTest, FailedSpawnIsRetriedWithBackoff) {
    auto actions = supervision_.take_actions(now_);
    ASSERT_EQ(actions.size(), 5u);
    for (std::size_t i = 0; i < 4; ++i) supervision_.spawned(i, now_);
    // fork or exec of profile-1 failed: reported as an exit.
    const auto decision = supervision_.exited(4, ExitStatus{false, 127}, now_);
    EXPECT_TRUE(decision.restart);
    EXPECT_EQ(decision.delay, 1s);
    restart_when_due(4, 1s);
}

TEST_F(SupervisionTest, CleanExitWithoutStopIsNotRestarted) {
    start_all();
    const auto decision = supervision_.exited(1, kClean, now_);
    EXPECT_FALSE(decision.restart);
    advance(1h);
    EXPECT_TRUE(step().empty());
    EXPECT_FALSE(supervision_.next_wakeup());
    EXPECT_FALSE(supervision_.finished()); // the others still run
    for (std::size_t i : {0u, 2u, 3u, 4u}) supervision_.exited(i, kClean, now_);
    EXPECT_TRUE(supervision_.finished());
    EXPECT_EQ(supervision_.exit_code(), 0);
}

TEST_F(SupervisionTest, StopTerminatesInDrainOrderAndExitsZeroWhenAllDrain) {
    start_all();
    EXPECT_EQ(supervision_.request_stop(now_), Supervision::StopResult::draining);
    EXPECT_TRUE(supervision_.stopping());
    EXPECT_EQ(step(), (std::vector<Action>{{Type::terminate, 0}}));
    EXPECT_TRUE(step().empty()); // each terminate is handed out once

    advance(50ms);
    supervision_.exited(0, kClean, now_);
    EXPECT_EQ(step(), (std::vector<Action>{{Type::terminate, 1}}));
    supervision_.exited(1, kClean, now_);
    EXPECT_EQ(step(), (std::vector<Action>{{Type::terminate, 2}, {Type::terminate, 3}}));
    supervision_.exited(3, kClean, now_);
    EXPECT_TRUE(step().empty()); // session-1 still drains; profile-1 waits for it
    supervision_.exited(2, kClean, now_);
    EXPECT_EQ(step(), (std::vector<Action>{{Type::terminate, 4}}));
    EXPECT_FALSE(supervision_.finished());
    supervision_.exited(4, kClean, now_);
    EXPECT_TRUE(supervision_.finished());
    EXPECT_EQ(supervision_.exit_code(), 0);
}

TEST_F(SupervisionTest, ChildFailingItsDrainMakesTheExitCodeOne) {
    start_all();
    supervision_.request_stop(now_);
    step();
    supervision_.exited(0, kCrash, now_); // vartalapd's own drain budget ran out
    for (std::size_t i = 1; i < 5; ++i) {
        step();
        const auto decision = supervision_.exited(i, kClean, now_);
        EXPECT_FALSE(decision.restart); // nothing is restarted while stopping
    }
    EXPECT_TRUE(supervision_.finished());
    EXPECT_EQ(supervision_.exit_code(), 1);
}

TEST_F(SupervisionTest, StopBudgetKillsWhatIsLeftAndExitsOne) {
    start_all();
    supervision_.request_stop(now_);
    EXPECT_EQ(step().size(), 1u);
    EXPECT_EQ(supervision_.next_wakeup(), now_ + 10s);
    advance(10s - 1ms);
    EXPECT_TRUE(step().empty());
    advance(1ms);
    const auto actions = step();
    ASSERT_EQ(actions.size(), 5u);
    for (std::size_t i = 0; i < 5; ++i) EXPECT_EQ(actions[i], (Action{Type::kill, i}));
    EXPECT_TRUE(supervision_.forcing());
    EXPECT_TRUE(step().empty());
    EXPECT_FALSE(supervision_.next_wakeup());
    for (std::size_t i = 0; i < 5; ++i) supervision_.exited(i, kKilled, now_);
    EXPECT_TRUE(supervision_.finished());
    EXPECT_EQ(supervision_.exit_code(), 1);
}

TEST_F(SupervisionTest, SecondStopKillsAtOnce) {
    start_all();
    supervision_.request_stop(now_);
    step();
    supervision_.exited(0, kClean, now_);
    EXPECT_EQ(supervision_.request_stop(now_), Supervision::StopResult::forcing);
    const auto actions = step();
    ASSERT_EQ(actions.size(), 4u);
    for (const auto& action : actions) EXPECT_EQ(action.type, Type::kill);
    for (std::size_t i = 1; i < 5; ++i) supervision_.exited(i, kKilled, now_);
    EXPECT_TRUE(supervision_.finished());
    EXPECT_EQ(supervision_.exit_code(), 1);
}

TEST_F(SupervisionTest, StopCancelsPendingRestarts) {
    start_all();
    crash(2);
    supervision_.request_stop(now_);
    EXPECT_EQ(supervision_.next_wakeup(), now_ + 10s); // the stop deadline, not the restart
    for (std::size_t i : {0u, 1u, 3u, 4u}) {
        step();
        supervision_.exited(i, kClean, now_);
    }
    advance(5s);
    EXPECT_TRUE(step().empty());
    EXPECT_TRUE(supervision_.finished());
    // The crash before the stop is not a failed drain.
    EXPECT_EQ(supervision_.exit_code(), 0);
}

TEST_F(SupervisionTest, ReadyIsNotAnnouncedOnceStopping) {
    start_all();
    for (std::size_t i = 0; i + 1 < supervision_.size(); ++i) supervision_.became_ready(i, now_);
    supervision_.request_stop(now_);
    EXPECT_FALSE(supervision_.became_ready(4, now_));
}

} // namespace
} // namespace vartalap::ctl
