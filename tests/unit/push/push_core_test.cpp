#include "daemons/push/push_core.hpp"

#include "common/wire/envelope.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <vector>

namespace vartalap::push {
namespace {

using nlohmann::json;

class FakeClock final : public Clock {
public:
    std::uint64_t monotonic_ms() const override { return now; }
    std::uint64_t wall_ms() const override { return 1700000000000 + now; }
    std::uint64_t now = 1000;
};

// Answers lookups by hand (answer_next) or at once (synchronous = true).
class FakeTokens final : public TokenDirectory {
public:
    struct Lookup {
        std::string user;
        std::function<void(TokenLookup)> done;
    };
    void lookup(const std::string& user, std::function<void(TokenLookup)> done) override {
        looked_up.push_back(user);
        if (synchronous)
            done(answer_for(user));
        else
            pending.push_back({user, std::move(done)});
    }
    void remove(const std::string& user, const std::string& token) override { removed.emplace_back(user, token); }
    void answer_next() {
        ASSERT_FALSE(pending.empty());
        Lookup lookup = std::move(pending.front());
        pending.erase(pending.begin());
        lookup.done(answer_for(lookup.user));
    }
    TokenLookup answer_for(const std::string& user) {
        if (unavailable) return {TokenLookup::Status::unavailable, {}};
        if (user == "nobody") return {TokenLookup::Status::none, {}};
        return {TokenLookup::Status::found, "token-" + user};
    }

    bool synchronous = false;
    bool unavailable = false;
    std::vector<std::string> looked_up;
    std::vector<Lookup> pending;
    std::vector<std::pair<std::string, std::string>> removed;
};

class FakeProvider final : public PushProvider {
public:
    void send(const PushMessage& message, std::function<void(PushResult)> done) override {
        sent.push_back(message);
        if (automatic)
            done(*automatic);
        else
            pending.push_back(std::move(done));
    }
    const char* name() const override { return "fake"; }
    void complete_next(PushResult result) {
        ASSERT_FALSE(pending.empty());
        auto done = std::move(pending.front());
        pending.erase(pending.begin());
        done(std::move(result));
    }

    std::optional<PushResult> automatic;
    std::vector<PushMessage> sent;
    std::vector<std::function<void(PushResult)>> pending;
};

std::string message_json(const std::string& id, const std::string& content_type = "text") {
    return json{{"_v", 2.1},
                {"id", id},
                {"head", {{"type", "individual"}, {"to", "bob"}, {"from", "alice"}, {"contentType", content_type}}},
                {"body", {{"text", "hi"}}}}
        .dump();
}

class PushCoreTest : public ::testing::Test {
protected:
    PushCoreTest() { make_core(); }

    void make_core() {
        core_ = std::make_unique<PushCore>(config_, tokens_, provider_, clock_, [this](std::uint64_t bound) {
            random_bounds_.push_back(bound);
            return random_lowest_ ? 0 : bound;
        });
    }
    Offer offer(const std::string& to, const std::string& id, const std::string& content_type = "text") {
        return core_->offer(Notification{to, id, message_json(id, content_type)});
    }

    PushConfig config_;
    FakeClock clock_;
    FakeTokens tokens_;
    FakeProvider provider_;
    std::vector<std::uint64_t> random_bounds_;
    bool random_lowest_ = false;
    std::unique_ptr<PushCore> core_;
};

TEST_F(PushCoreTest, LooksUpTheTokenAndSendsTheMessageJson) {
    EXPECT_EQ(offer("bob", "m1"), Offer::queued);
    ASSERT_EQ(tokens_.looked_up, std::vector<std::string>{"bob"});
    tokens_.answer_next();
    ASSERT_EQ(provider_.sent.size(), 1u);
    EXPECT_EQ(provider_.sent[0].device_token, "token-bob");
    EXPECT_EQ(provider_.sent[0].to, "bob");
    EXPECT_EQ(provider_.sent[0].message_json, message_json("m1"));
    provider_.complete_next(PushResult::delivered());
    EXPECT_EQ(core_->counters().delivered, 1u);
    EXPECT_EQ(core_->held(), 0u);
    EXPECT_EQ(core_->in_flight(), 0u);
}

TEST_F(PushCoreTest, NotificationContentAndMalformedPayloadsAreSkipped) {
    EXPECT_EQ(offer("bob", "g1", "notification"), Offer::skipped_notification);
    EXPECT_EQ(core_->offer(Notification{"bob", "x", "not json"}), Offer::malformed);
    EXPECT_EQ(core_->offer(Notification{"bob", "y", "[1,2]"}), Offer::malformed);
    EXPECT_TRUE(tokens_.looked_up.empty());
    EXPECT_EQ(core_->counters().skipped_notification, 1u);
    EXPECT_EQ(core_->counters().malformed, 2u);
    EXPECT_EQ(core_->held(), 0u);
}

TEST_F(PushCoreTest, SystemAndEphemeralEnvelopesAreSkipped) {
    EXPECT_EQ(core_->offer(Notification{"bob", "r1", message_json("r1"), flag_system}), Offer::skipped_system);
    EXPECT_EQ(core_->offer(Notification{"bob", "t1", message_json("t1"), flag_ephemeral}), Offer::skipped_system);
    EXPECT_EQ(core_->offer(Notification{"bob", "m1", message_json("m1"), flag_wants_server_ack}), Offer::queued);
    EXPECT_EQ(core_->counters().skipped_system, 2u);
    EXPECT_EQ(tokens_.looked_up.size(), 1u);
}

TEST_F(PushCoreTest, QueueFullDropsTheNewestAndCountsIt) {
    config_.queue_limit = 3;
    config_.max_in_flight = 1;
    make_core();
    EXPECT_EQ(offer("bob", "m1"), Offer::queued);
    EXPECT_EQ(offer("bob", "m2"), Offer::queued);
    EXPECT_EQ(offer("bob", "m3"), Offer::queued);
    EXPECT_EQ(offer("bob", "m4"), Offer::dropped_queue_full);
    EXPECT_EQ(offer("carol", "m5"), Offer::dropped_queue_full);
    EXPECT_EQ(core_->counters().dropped_queue_full, 2u);
    EXPECT_EQ(core_->held(), 3u);

    // The three oldest are the ones pushed, in order.
    for (int i = 0; i < 3; ++i) {
        tokens_.answer_next();
        provider_.complete_next(PushResult::delivered());
    }
    ASSERT_EQ(provider_.sent.size(), 3u);
    EXPECT_EQ(json::parse(provider_.sent[0].message_json)["id"], "m1");
    EXPECT_EQ(json::parse(provider_.sent[2].message_json)["id"], "m3");
    // Room again.
    EXPECT_EQ(offer("bob", "m6"), Offer::queued);
}

TEST_F(PushCoreTest, TheLimitCountsNotificationsWaitingForARetry) {
    config_.queue_limit = 1;
    make_core();
    offer("bob", "m1");
    tokens_.answer_next();
    provider_.complete_next(PushResult::retry(std::nullopt, "503"));
    EXPECT_EQ(core_->in_flight(), 0u);
    EXPECT_EQ(offer("bob", "m2"), Offer::dropped_queue_full);
}

TEST_F(PushCoreTest, AtMostMaxInFlightAtOnce) {
    config_.max_in_flight = 2;
    make_core();
    for (int i = 0; i < 5; ++i) offer("bob", "m" + std::to_string(i));
    EXPECT_EQ(tokens_.looked_up.size(), 2u);
    EXPECT_EQ(core_->in_flight(), 2u);
    tokens_.answer_next();
    tokens_.answer_next();
    EXPECT_EQ(tokens_.looked_up.size(), 2u) << "sends still occupy their slots";
    provider_.complete_next(PushResult::delivered());
    EXPECT_EQ(tokens_.looked_up.size(), 3u);
    EXPECT_EQ(core_->in_flight(), 2u);
}

TEST_F(PushCoreTest, SynchronousAdaptersDrainTheWholeQueueWithoutRecursion) {
    config_.max_in_flight = 1;
    make_core();
    for (int i = 0; i < 5000; ++i) offer("bob", "m" + std::to_string(i));
    EXPECT_EQ(core_->in_flight(), 1u);
    // From now on every adapter answers inside the call: finishing one item frees the slot
    // for the next, 4999 times over, which must loop rather than recurse.
    tokens_.synchronous = true;
    provider_.automatic = PushResult::delivered();
    tokens_.answer_next();
    EXPECT_EQ(core_->counters().delivered, 5000u);
    EXPECT_EQ(core_->held(), 0u);
    EXPECT_EQ(core_->in_flight(), 0u);
}

TEST_F(PushCoreTest, RetriesWithExponentialBackoffThenGivesUp) {
    config_.backoff.max_attempts = 4;
    make_core();
    offer("bob", "m1");
    const std::uint64_t expected_ceilings[] = {1000, 2000, 4000};
    for (std::uint64_t ceiling : expected_ceilings) {
        tokens_.answer_next();
        provider_.complete_next(PushResult::retry(std::nullopt, "HTTP 503"));
        ASSERT_EQ(core_->next_retry_at_ms(), clock_.now + ceiling); // fake random: the ceiling
        EXPECT_EQ(random_bounds_.back(), ceiling);
        clock_.now += ceiling - 1;
        core_->on_timer();
        EXPECT_TRUE(tokens_.pending.empty()) << "not before the backoff has passed";
        clock_.now += 1;
        core_->on_timer();
        ASSERT_EQ(tokens_.pending.size(), 1u);
    }
    tokens_.answer_next();
    provider_.complete_next(PushResult::retry(std::nullopt, "HTTP 503"));
    EXPECT_EQ(core_->counters().retries, 3u);
    EXPECT_EQ(core_->counters().gave_up, 1u);
    EXPECT_EQ(provider_.sent.size(), 4u);
    EXPECT_EQ(core_->held(), 0u);
    EXPECT_EQ(core_->next_retry_at_ms(), std::nullopt);
}

TEST_F(PushCoreTest, RetryAfterIsHonouredWhenLongerThanTheJitteredBackoff) {
    random_lowest_ = true;
    make_core();
    offer("bob", "m1");
    tokens_.answer_next();
    provider_.complete_next(PushResult::retry(1000, "HTTP 503"));
    EXPECT_EQ(core_->next_retry_at_ms(), clock_.now + 1000);
}

TEST_F(PushCoreTest, UnregisteredTokenIsRemovedFromTheProfile) {
    offer("bob", "m1");
    tokens_.answer_next();
    provider_.complete_next(PushResult::unregistered("UNREGISTERED"));
    ASSERT_EQ(tokens_.removed.size(), 1u);
    EXPECT_EQ(tokens_.removed[0], (std::pair<std::string, std::string>{"bob", "token-bob"}));
    EXPECT_EQ(core_->counters().unregistered, 1u);
    EXPECT_EQ(core_->held(), 0u);
}

TEST_F(PushCoreTest, UserWithoutATokenIsNotPushed) {
    offer("nobody", "m1");
    tokens_.answer_next();
    EXPECT_TRUE(provider_.sent.empty());
    EXPECT_EQ(core_->counters().no_token, 1u);
    EXPECT_EQ(core_->held(), 0u);
}

TEST_F(PushCoreTest, AnUnansweredLookupIsRetriedAndTheTokenLookedUpAgain) {
    tokens_.unavailable = true;
    offer("bob", "m1");
    tokens_.answer_next();
    EXPECT_EQ(core_->counters().lookup_failures, 1u);
    ASSERT_TRUE(core_->next_retry_at_ms());
    tokens_.unavailable = false;
    clock_.now = *core_->next_retry_at_ms();
    core_->on_timer();
    tokens_.answer_next();
    EXPECT_EQ(provider_.sent.size(), 1u);
    EXPECT_EQ(tokens_.looked_up.size(), 2u);
}

TEST_F(PushCoreTest, PermanentFailureEndsTheNotification) {
    offer("bob", "m1");
    tokens_.answer_next();
    provider_.complete_next(PushResult::failed("HTTP 400"));
    EXPECT_EQ(core_->counters().failed, 1u);
    EXPECT_EQ(core_->held(), 0u);
    EXPECT_TRUE(tokens_.removed.empty());
}

TEST_F(PushCoreTest, DuplicatesOfAHeldNotificationAreIgnored) {
    EXPECT_EQ(offer("bob", "m1"), Offer::queued);
    EXPECT_EQ(offer("bob", "m1"), Offer::duplicate);
    EXPECT_EQ(offer("carol", "m1"), Offer::queued) << "same id, another recipient";
    EXPECT_EQ(core_->counters().duplicates, 1u);
    tokens_.answer_next();
    provider_.complete_next(PushResult::delivered());
    EXPECT_EQ(offer("bob", "m1"), Offer::queued) << "no longer held";
}

TEST_F(PushCoreTest, StopStartingLetsInFlightWorkFinishButStartsNothing) {
    config_.max_in_flight = 1;
    make_core();
    offer("bob", "m1");
    offer("bob", "m2");
    core_->stop_starting();
    tokens_.answer_next();
    provider_.complete_next(PushResult::delivered());
    EXPECT_EQ(tokens_.looked_up.size(), 1u);
    EXPECT_EQ(core_->in_flight(), 0u);
    EXPECT_EQ(core_->held(), 1u);
}

} // namespace
} // namespace vartalap::push
