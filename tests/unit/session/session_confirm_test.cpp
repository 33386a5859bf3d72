// Confirmations of fan-out copies (session_confirm.hpp): after the commit, one
// copies_stored per (owner, outbox entry) of a batch, for copies stored, found stored
// already (a resend) or invalid; none for a copy refused for a full map; the stored record
// keeps neither confirm_to nor the owner's request id.
#include "tests/unit/session/session_core_fixture.hpp"

#include <tuple>

namespace vartalap::session {
namespace {

// A copy as a fan-out outbox sends it: no SERVER_ACK, no sender connection.
Envelope copy(const std::string& to, const std::string& id, std::uint64_t seq, const std::string& owner) {
    Envelope e = chat("alice", to, id, flag_group, 0);
    e.origin_gateway.clear();
    e.channel = "group";
    e.request_id = seq;
    e.confirm_to = owner;
    return e;
}

using Confirmed = std::vector<std::tuple<std::string, std::uint64_t, std::vector<std::string>>>;

class SessionConfirmTest : public SessionCoreTest {
protected:
    Confirmed confirmed() const {
        Confirmed out;
        for (const auto& [owner, envelope] : outbox_.confirmations) {
            EXPECT_EQ(envelope.kind, Kind::copies_stored);
            EXPECT_EQ(envelope.to, owner);
            out.emplace_back(owner, envelope.request_id, envelope.ids);
        }
        return out;
    }
};

TEST_F(SessionConfirmTest, OneConfirmationPerOwnerAndEntryAfterTheCommit) {
    outbox_.on_server_ack = [&](const ServerAckCall&) {
        // The 1-to-1 message's SERVER_ACK and the confirmations both follow the commit.
        EXPECT_TRUE(core_->is_stored("bob", "m1"));
    };
    handle({copy("bob", "m1", 7, "group-router-1"), copy("carol", "m1", 7, "group-router-1"),
            chat("erin", "bob", "direct"), copy("bob", "m2", 8, "group-router-1"),
            copy("dave", "~server:g:1", 3, "group-1")});
    EXPECT_EQ(confirmed(), (Confirmed{{"group-router-1", 7, {"bob", "carol"}},
                                      {"group-router-1", 8, {"bob"}},
                                      {"group-1", 3, {"dave"}}}));
    EXPECT_TRUE(core_->is_stored("carol", "m1"));
    EXPECT_EQ(core_->counters().copies_confirmed, 4u);

    // The stored record does not keep the outbox's fields: its delivery carries neither.
    handle(connect("bob", "ws-1", 1));
    ASSERT_FALSE(outbox_.deliveries.empty());
    for (const auto& delivery : outbox_.deliveries) {
        EXPECT_EQ(delivery.request.confirm_to, "");
        EXPECT_NE(delivery.request.request_id, 7u);
    }
}

TEST_F(SessionConfirmTest, AResendIsDedupedAndConfirmedAgain) {
    handle(copy("bob", "m1", 7, "group-router-1"));
    handle(copy("bob", "m1", 7, "group-router-1")); // the owner's timeout, or its restart
    EXPECT_EQ(core_->stored_count("bob"), 1u);
    EXPECT_EQ(core_->counters().duplicates, 1u);
    EXPECT_EQ(confirmed(), (Confirmed{{"group-router-1", 7, {"bob"}}, {"group-router-1", 7, {"bob"}}}));
}

TEST_F(SessionConfirmTest, AnInvalidCopyIsConfirmedAsItCanNeverBeStored) {
    handle(copy("", "m1", 7, "group-router-1"));
    EXPECT_EQ(core_->counters().invalid, 1u);
    EXPECT_EQ(confirmed(), (Confirmed{{"group-router-1", 7, {""}}}));
}

TEST_F(SessionConfirmTest, AConfirmationThatCannotBeQueuedIsCounted) {
    outbox_.accept_confirmations = false;
    handle({copy("bob", "m1", 7, "group-router-1"), copy("carol", "m1", 7, "group-router-1")});
    EXPECT_EQ(core_->counters().confirmations_dropped, 2u);
    EXPECT_EQ(core_->counters().copies_confirmed, 0u);
    EXPECT_TRUE(core_->is_stored("bob", "m1")); // stored all the same; the owner resends
}

TEST_F(SessionConfirmTest, ACopyRefusedForAFullMapIsNotConfirmed) {
    core_.reset();
    env_.reset();
    std::filesystem::remove_all(directory_);
    lmdb::EnvOptions small;
    small.map_size = 1u << 20; // 1 MiB, filled by a few dozen 16 KiB copies
    open(small);
    const std::string big(16 * 1024, 'p');
    int n = 0;
    for (; n < 1000 && core_->counters().map_full_refusals == 0; ++n) {
        Envelope message = copy("bob", "m" + std::to_string(n), static_cast<std::uint64_t>(n + 1), "group-router-1");
        message.payload = big;
        handle(std::move(message));
    }
    ASSERT_LT(n, 1000) << "the map never filled up";
    // Every copy but the refused one (the last) was confirmed.
    const Confirmed got = confirmed();
    ASSERT_EQ(got.size(), static_cast<std::size_t>(n - 1));
    EXPECT_EQ(std::get<1>(got.back()), static_cast<std::uint64_t>(n - 1));
}

} // namespace
} // namespace vartalap::session
