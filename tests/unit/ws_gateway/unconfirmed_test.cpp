// UnconfirmedMessages (daemons/ws_gateway/unconfirmed.hpp): socket-free, times given by hand.
// Thread: the test's.
#include "daemons/ws_gateway/unconfirmed.hpp"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace vartalap::ws_gateway {
namespace {

Envelope message(std::string id, Route route = Route::chat, std::uint32_t flags = 0) {
    Envelope e;
    e.kind = Kind::client_message;
    e.id = std::move(id);
    e.route = route;
    e.flags = flags;
    e.payload = "{}";
    return e;
}

struct Recorder {
    std::vector<std::string> resent;
    std::vector<std::size_t> routers; // the router each resend was told it went to last
    std::vector<std::pair<std::uint64_t, std::string>> given_up;
    UnconfirmedMessages::Due due() {
        return {[this](const Envelope& m, std::size_t& router) {
                    resent.push_back(m.id);
                    routers.push_back(router);
                    ++router;
                },
                [this](std::uint64_t connection, const Envelope& m) {
                    given_up.emplace_back(connection, m.id);
                }};
    }
};

TEST(UnconfirmedMessages, OnlyMessagesThatGetAServerAckAreKept) {
    EXPECT_TRUE(UnconfirmedMessages::answered(message("m", Route::chat)));
    EXPECT_TRUE(UnconfirmedMessages::answered(message("m", Route::receipt)));
    EXPECT_TRUE(UnconfirmedMessages::answered(message("m", Route::chat, flag_group)));
    EXPECT_FALSE(UnconfirmedMessages::answered(message("m", Route::ack)));
    EXPECT_FALSE(UnconfirmedMessages::answered(message("m", Route::chat, flag_ephemeral)));
    EXPECT_FALSE(UnconfirmedMessages::answered(message("", Route::chat)));
}

TEST(UnconfirmedMessages, AConfirmedMessageIsNeverPushedAgain) {
    UnconfirmedMessages kept({.resend_after_ms = 100, .max_resends = 3, .max_entries = 10});
    kept.add(1, message("a"), 0, 1000);
    kept.add(1, message("b"), 0, 1000);
    kept.add(2, message("a"), 0, 1000); // the same id on another connection is another message
    EXPECT_EQ(kept.size(), 3u);
    EXPECT_TRUE(kept.confirm(1, "a"));
    EXPECT_FALSE(kept.confirm(1, "a")); // a second server_ack (a deduped resend)
    EXPECT_FALSE(kept.confirm(3, "b"));
    EXPECT_EQ(kept.size(), 2u);

    Recorder r;
    const auto early = kept.sweep(1099, r.due());
    EXPECT_EQ(early.resent, 0u);
    EXPECT_TRUE(r.resent.empty());
    const auto late = kept.sweep(1100, r.due());
    EXPECT_EQ(late.resent, 2u);
    EXPECT_EQ(r.resent.size(), 2u);
    EXPECT_EQ(kept.size(), 2u); // still waiting for their server_acks
}

TEST(UnconfirmedMessages, ResendsKeepTheOrderOfTheFirstPush) {
    UnconfirmedMessages kept({.resend_after_ms = 100, .max_resends = 3, .max_entries = 100});
    std::vector<std::string> ids;
    for (int i = 0; i < 40; ++i) {
        ids.push_back("m-" + std::to_string(i));
        kept.add(7, message(ids.back()), 0, 1000 + static_cast<std::uint64_t>(i % 3));
    }
    Recorder r;
    kept.sweep(2000, r.due());
    EXPECT_EQ(r.resent, ids);
    r.resent.clear();
    kept.sweep(2100, r.due());
    EXPECT_EQ(r.resent, ids);
}

TEST(UnconfirmedMessages, GivesUpAfterMaxResendsNamingTheConnection) {
    UnconfirmedMessages kept({.resend_after_ms = 100, .max_resends = 2, .max_entries = 10});
    kept.add(42, message("lost"), 0, 0);
    Recorder r;
    EXPECT_EQ(kept.sweep(100, r.due()).resent, 1u);
    EXPECT_EQ(kept.sweep(150, r.due()).resent, 0u); // 50 ms after the resend: not yet
    EXPECT_EQ(kept.sweep(200, r.due()).resent, 1u);
    EXPECT_TRUE(r.given_up.empty());
    const auto last = kept.sweep(300, r.due());
    EXPECT_EQ(last.resent, 0u);
    EXPECT_EQ(last.given_up, 1u);
    ASSERT_EQ(r.given_up.size(), 1u);
    EXPECT_EQ(r.given_up[0], (std::pair<std::uint64_t, std::string>{42, "lost"}));
    EXPECT_EQ(kept.size(), 0u);
    EXPECT_EQ(r.resent, (std::vector<std::string>{"lost", "lost"}));
    // Each resend starts after the router that took it last.
    EXPECT_EQ(r.routers, (std::vector<std::size_t>{0, 1}));
}

TEST(UnconfirmedMessages, TheClientsOwnResendStartsTheCountAgain) {
    UnconfirmedMessages kept({.resend_after_ms = 100, .max_resends = 1, .max_entries = 10});
    kept.add(1, message("m"), 0, 0);
    Recorder r;
    kept.sweep(100, r.due()); // the one resend
    kept.add(1, message("m"), 0, 150);
    EXPECT_EQ(kept.size(), 1u);
    EXPECT_EQ(kept.sweep(200, r.due()).given_up, 0u); // 50 ms after the client's resend
    EXPECT_EQ(kept.sweep(250, r.due()).resent, 1u);
    EXPECT_EQ(kept.sweep(350, r.due()).given_up, 1u);
}

TEST(UnconfirmedMessages, FullAtMaxEntries) {
    UnconfirmedMessages kept({.resend_after_ms = 100, .max_resends = 1, .max_entries = 2});
    kept.add(1, message("a"), 0, 0);
    EXPECT_FALSE(kept.full());
    kept.add(1, message("b"), 0, 0);
    EXPECT_TRUE(kept.full());
    kept.confirm(1, "a");
    EXPECT_FALSE(kept.full());
}

TEST(UnconfirmedMessages, FullAtMaxBytesOfPayload) {
    UnconfirmedMessages kept({.resend_after_ms = 100, .max_resends = 0, .max_entries = 100,
                              .max_bytes = 1000});
    Envelope big = message("a");
    big.payload.assign(600, 'x');
    kept.add(1, big, 0, 0);
    EXPECT_EQ(kept.bytes(), 600u);
    EXPECT_FALSE(kept.full());
    big.id = "b";
    kept.add(1, big, 0, 0);
    EXPECT_TRUE(kept.full());
    kept.add(1, big, 0, 10); // the client's own resend of b replaces it: counted once
    EXPECT_EQ(kept.bytes(), 1200u);
    kept.confirm(1, "a");
    EXPECT_EQ(kept.bytes(), 600u);
    EXPECT_FALSE(kept.full());
    Recorder r;
    kept.sweep(200, r.due()); // no resends allowed: given up
    EXPECT_EQ(kept.bytes(), 0u);
    EXPECT_EQ(kept.size(), 0u);
}

TEST(UnconfirmedMessages, NothingIsPushedAgainWhileResendingIsOff) {
    UnconfirmedMessages kept({.resend_after_ms = 0, .max_resends = 5, .max_entries = 10});
    kept.add(1, message("a"), 0, 0);
    Recorder r;
    const auto result = kept.sweep(1'000'000, r.due());
    EXPECT_EQ(result.resent + result.given_up, 0u);
    EXPECT_TRUE(r.resent.empty());
}

} // namespace
} // namespace vartalap::ws_gateway
