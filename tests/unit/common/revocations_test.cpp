// The gateways' copy of the revocation list (common/revocations.hpp): poll timing, replies,
// a new epoch, expired entries.
#include "common/revocations.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace vartalap {
namespace {

using nlohmann::json;

Envelope reply_to(const Envelope& poll, json body, Status status = Status::ok) {
    Envelope e;
    e.kind = Kind::reply;
    e.request_id = poll.request_id;
    e.status = status;
    e.payload = body.dump();
    return e;
}

json entry(std::uint64_t seq, const char* user, const char* key, std::uint64_t expires = 0) {
    return {{"seq", seq}, {"user", user}, {"key", key}, {"expires", expires}};
}

TEST(RevocationList, PollsAppliesAndStartsAgainOnANewEpoch) {
    RevocationList list;
    std::vector<std::pair<std::string, std::string>> added;
    auto poll = list.poll(1000, 1, 250);
    ASSERT_TRUE(poll);
    EXPECT_EQ(poll->method, "revocations");
    EXPECT_FALSE(list.poll(1100, 2, 250)); // in flight
    EXPECT_FALSE(list.is_reply(reply_to(Envelope{}, json::object())));
    EXPECT_TRUE(list.is_reply(reply_to(*poll, json::object())));
    ASSERT_TRUE(list.apply(reply_to(*poll, {{"epoch", "e1"}, {"version", 3}, {"complete", false},
                                            {"entries", {entry(1, "a", "k1"), entry(2, "b", "k2", 50)}}}),
                           100, added));
    // b's key expired at 50: refused by its age anyway, not kept.
    ASSERT_EQ(added.size(), 1u);
    EXPECT_EQ(added[0], (std::pair<std::string, std::string>{"a", "k1"}));
    EXPECT_TRUE(list.revoked("a", "k1"));
    EXPECT_FALSE(list.revoked("a", "k2"));
    EXPECT_FALSE(list.synced()); // more follow
    auto more = list.poll(1001, 4, 250); // at once
    ASSERT_TRUE(more);
    EXPECT_EQ(json::parse(more->payload), (json{{"epoch", "e1"}, {"since", 2}}));
    added.clear();
    ASSERT_TRUE(list.apply(reply_to(*more, {{"epoch", "e1"}, {"version", 3}, {"complete", true},
                                            {"entries", {entry(3, "c", "k3")}}}),
                           100, added));
    EXPECT_TRUE(list.synced());
    EXPECT_EQ(list.size(), 2u);
    EXPECT_FALSE(list.poll(1100, 5, 250)); // not yet due
    auto later = list.poll(1300, 6, 250);
    ASSERT_TRUE(later);
    // A profile store made anew: its list replaces ours.
    added.clear();
    ASSERT_TRUE(list.apply(reply_to(*later, {{"epoch", "e2"}, {"version", 1}, {"complete", true},
                                             {"entries", {entry(1, "d", "k4")}}}),
                           100, added));
    EXPECT_FALSE(list.revoked("a", "k1"));
    EXPECT_TRUE(list.revoked("d", "k4"));
    EXPECT_EQ(list.size(), 1u);
}

TEST(RevocationList, AFailedOrLostPollIsCountedAndAskedAgain) {
    RevocationList list;
    std::vector<std::pair<std::string, std::string>> added;
    auto poll = list.poll(1000, 1, 250);
    ASSERT_TRUE(poll);
    EXPECT_FALSE(list.apply(reply_to(*poll, json::object(), Status::internal), 100, added));
    EXPECT_EQ(list.polls_failed(), 1u);
    auto again = list.poll(1300, 2, 250);
    ASSERT_TRUE(again);
    EXPECT_FALSE(list.poll(2000, 3, 250, 2000)); // in flight, not yet lost
    EXPECT_TRUE(list.poll(3300, 4, 250, 2000));  // lost: asked again
    EXPECT_EQ(list.polls_failed(), 2u);
    EXPECT_FALSE(list.synced());
}

TEST(RevocationList, AnUnsentPollIsAskedAgainAtTheNextTick) {
    RevocationList list;
    ASSERT_TRUE(list.poll(1000, 1, 250));
    list.send_failed(); // e.g. no profile daemon connected yet
    EXPECT_EQ(list.polls_failed(), 1u);
    EXPECT_FALSE(list.poll(1100, 2, 250)); // the interval still applies
    auto again = list.poll(1250, 3, 250);  // not the lost-poll timeout
    ASSERT_TRUE(again);
    Envelope unsent;
    unsent.request_id = 1;
    EXPECT_FALSE(list.is_reply(reply_to(unsent, json::object())));
    EXPECT_TRUE(list.is_reply(reply_to(*again, json::object())));
}

TEST(RevocationList, ALostPollIsAskedAgainSoonAndALateAnswerStillCounts) {
    RevocationList list;
    std::vector<std::pair<std::string, std::string>> added;
    auto first = list.poll(1000, 7, 250);
    ASSERT_TRUE(first);
    EXPECT_FALSE(list.poll(1499, 8, 250)); // default timeout: max(2 x 250, 500) ms
    auto second = list.poll(1500, 9, 250);
    ASSERT_TRUE(second);
    // The first poll's answer arrives after all: it is applied, and the second's is not needed.
    const auto late = reply_to(*first, json{{"epoch", "e"}, {"complete", true},
                                            {"entries", json::array({entry(1, "a", "k")})}});
    ASSERT_TRUE(list.is_reply(late));
    ASSERT_TRUE(list.apply(late, 100, added));
    EXPECT_TRUE(list.revoked("a", "k"));
    EXPECT_FALSE(list.is_reply(reply_to(*second, json::object())));
}

} // namespace
} // namespace vartalap
