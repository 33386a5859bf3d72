// Unit tests of SessionCore's offline path (a topology with persistence shards): handoff to
// persistence on offline and at the retry limit, deletion only after the confirmation,
// re-sends, refusals, forwarded acks, and fetching a user's stored messages in windows on
// connect. The fake outbox plays persistence; nothing here sleeps.
// Thread: the test's own.
#include "tests/unit/session/session_core_fixture.hpp"

#include <set>

namespace vartalap::session {
namespace {


class OfflinePathTest : public SessionCoreTest {
protected:
    void SetUp() override {
        outbox_.persistence = true; // read by the core when it is built
        SessionCoreTest::SetUp();
    }
    // A new core over the same store, with the current config_ and outbox settings.
    void rebuild() {
        core_.reset();
        core_ = std::make_unique<SessionCore>(*env_, outbox_, clock_, config_);
    }

    std::vector<Envelope> requests_of(Kind kind) const {
        std::vector<Envelope> out;
        for (const Envelope& request : outbox_.persistence_requests)
            if (request.kind == kind) out.push_back(request);
        return out;
    }
    Envelope last_of(Kind kind) const {
        auto requests = requests_of(kind);
        EXPECT_FALSE(requests.empty());
        return requests.empty() ? Envelope{} : requests.back();
    }

    static Envelope stored_reply(std::uint64_t request_id, Status status = Status::ok) {
        Envelope e;
        e.kind = Kind::offline_stored;
        e.request_id = request_id;
        e.status = status;
        if (status == Status::refused) e.error = "offline store full";
        return e;
    }
    // Confirms every offline_store from index `from` of the persistence requests on.
    void confirm_handoffs_from(std::size_t from) {
        std::vector<Envelope> batch;
        for (std::size_t i = from; i < outbox_.persistence_requests.size(); ++i)
            if (outbox_.persistence_requests[i].kind == Kind::offline_store)
                batch.push_back(stored_reply(outbox_.persistence_requests[i].request_id));
        handle(std::move(batch));
    }

    // A message as persistence stores it for bob: a deliver envelope with its seq in cursor.
    static Envelope remote(const std::string& id, std::uint64_t cursor, std::uint32_t flags = 0) {
        Envelope e = chat("alice", "bob", id, flags);
        e.origin_gateway.clear();
        e.connection = 0;
        e.cursor = cursor;
        return e;
    }
    static Envelope fetched_reply(std::uint64_t request_id, const std::vector<Envelope>& items,
                                  bool more, std::uint64_t cursor = 0) {
        Envelope e;
        e.kind = Kind::fetched;
        e.to = "bob";
        e.request_id = request_id;
        e.cursor = cursor;
        for (const Envelope& item : items) {
            e.items.push_back(encode_envelope(item));
            e.cursor = item.cursor;
        }
        e.limit = more ? 1 : 0;
        return e;
    }
    // Answers the last fetch: bob's queue in persistence is empty.
    void finish_fetch() {
        handle(fetched_reply(last_of(Kind::fetch).request_id, {}, false));
    }
};

TEST_F(OfflinePathTest, MessageForAnOfflineUserIsHandedOffAndDeletedOnlyAfterConfirmation) {
    handle(chat("alice", "bob", "m1"));
    ASSERT_EQ(outbox_.server_acks.size(), 1u); // durable here first: the sender is answered

    auto stores = requests_of(Kind::offline_store);
    ASSERT_EQ(stores.size(), 1u);
    const Envelope& store = stores[0];
    EXPECT_EQ(store.to, "bob");
    EXPECT_EQ(store.id, "m1");
    EXPECT_EQ(store.from, "alice");
    EXPECT_EQ(store.payload, chat("alice", "bob", "m1").payload);
    EXPECT_NE(store.request_id, 0u);
    EXPECT_EQ(core_->counters().handoffs_sent, 1u);

    // Until persistence confirms, the copy here is the durable one.
    EXPECT_TRUE(core_->is_stored("bob", "m1"));
    EXPECT_EQ(core_->outstanding_handoffs(), 1u);
    advance(config_.handoff_timeout_ms - 1);
    EXPECT_EQ(outbox_.persistence_requests.size(), 1u);
    EXPECT_TRUE(core_->is_stored("bob", "m1"));

    handle(stored_reply(store.request_id));
    EXPECT_FALSE(core_->is_stored("bob", "m1"));
    EXPECT_EQ(core_->counters().handed_off, 1u);
    EXPECT_EQ(core_->outstanding_handoffs(), 0u);
    EXPECT_FALSE(core_->next_deadline_ms().has_value());

    // A second answer (to a re-send) is harmless.
    handle(stored_reply(store.request_id));
    EXPECT_EQ(core_->counters().stale_results, 1u);
    EXPECT_TRUE(outbox_.deliveries.empty());
}

TEST_F(OfflinePathTest, HandoffIsSentAgainWhenNoAnswerComes) {
    handle(chat("alice", "bob", "m1"));
    const std::uint64_t request_id = last_of(Kind::offline_store).request_id;
    EXPECT_EQ(*core_->next_deadline_ms(), clock_.monotonic_ms() + config_.handoff_timeout_ms);

    advance(config_.handoff_timeout_ms);
    auto stores = requests_of(Kind::offline_store);
    ASSERT_EQ(stores.size(), 2u);
    EXPECT_EQ(stores[1].id, "m1");
    EXPECT_EQ(stores[1].request_id, request_id); // an answer to either attempt confirms
    EXPECT_EQ(stores[1].payload, stores[0].payload);
    EXPECT_EQ(core_->counters().handoff_resends, 1u);
    EXPECT_TRUE(core_->is_stored("bob", "m1"));

    handle(stored_reply(request_id));
    EXPECT_FALSE(core_->is_stored("bob", "m1"));

    // Our own queue to persistence full: the attempt is repeated after the overload pause.
    outbox_.accept_persistence = false;
    handle(chat("alice", "bob", "m2"));
    EXPECT_EQ(requests_of(Kind::offline_store).size(), 2u);
    EXPECT_EQ(core_->outstanding_handoffs(), 1u);
    outbox_.accept_persistence = true;
    advance(config_.overload_retry_ms);
    ASSERT_EQ(requests_of(Kind::offline_store).size(), 3u);
    EXPECT_EQ(last_of(Kind::offline_store).id, "m2");
}

TEST_F(OfflinePathTest, RefusalKeepsTheLocalCopyAndOffersItAgainLater) {
    handle(chat("alice", "bob", "m1"));
    handle(stored_reply(last_of(Kind::offline_store).request_id, Status::refused));
    EXPECT_TRUE(core_->is_stored("bob", "m1"));
    EXPECT_EQ(core_->counters().handoff_refusals, 1u);
    EXPECT_EQ(core_->outstanding_handoffs(), 0u);

    advance(config_.handoff_refused_retry_ms - 1);
    EXPECT_EQ(requests_of(Kind::offline_store).size(), 1u);
    advance(1);
    ASSERT_EQ(requests_of(Kind::offline_store).size(), 2u);
    const Envelope again = last_of(Kind::offline_store);
    EXPECT_EQ(again.id, "m1");

    handle(stored_reply(again.request_id));
    EXPECT_FALSE(core_->is_stored("bob", "m1"));
    EXPECT_EQ(core_->stored_count("bob"), 0u);
}

TEST_F(OfflinePathTest, RejectedMessageStaysHereAndIsNotOfferedAgain) {
    handle(chat("alice", "bob", "m1"));
    handle(stored_reply(last_of(Kind::offline_store).request_id, Status::bad_request));
    EXPECT_TRUE(core_->is_stored("bob", "m1"));
    handle(chat("alice", "carol", "c1")); // another handoff, so the scan has a reason to run
    handle(stored_reply(last_of(Kind::offline_store).request_id, Status::refused));
    advance(config_.handoff_refused_retry_ms);
    auto stores = requests_of(Kind::offline_store);
    ASSERT_EQ(stores.size(), 3u);
    EXPECT_EQ(stores[2].id, "c1");

    // It is delivered from here on bob's next connection (after his queue in persistence).
    handle(connect("bob", "ws-1", 1));
    EXPECT_TRUE(outbox_.deliveries.empty());
    finish_fetch();
    EXPECT_EQ(delivered_ids(), (std::vector<std::string>{"m1"}));
}

TEST_F(OfflinePathTest, RetryLimitHandsOffAndALateAckIsForwarded) {
    handle(connect("bob", "ws-1", 1));
    finish_fetch();
    handle(chat("alice", "bob", "m1"));
    ASSERT_EQ(outbox_.deliveries.size(), 1u);
    answer_from(0); // written; the ack never comes
    EXPECT_TRUE(requests_of(Kind::offline_store).empty());
    advance(config_.ack_timeout_ms);
    EXPECT_EQ(core_->counters().parked, 1u);
    auto stores = requests_of(Kind::offline_store);
    ASSERT_EQ(stores.size(), 1u);
    EXPECT_EQ(stores[0].id, "m1");
    EXPECT_EQ(stores[0].retry_count, 1u); // its one unacked write goes with it
    EXPECT_TRUE(core_->is_stored("bob", "m1")); // until confirmed
    EXPECT_EQ(core_->in_flight_of("bob"), 0u);
    advance(config_.ack_timeout_ms * 10);
    EXPECT_EQ(outbox_.deliveries.size(), 1u); // not written to this connection again

    handle(stored_reply(stores[0].request_id));
    EXPECT_FALSE(core_->is_stored("bob", "m1"));

    // The client's ack comes after all: persistence holds the copy now.
    handle(ack("bob", {"m1"}));
    ASSERT_EQ(outbox_.forwarded_acks.size(), 1u);
    EXPECT_EQ(outbox_.forwarded_acks[0], (ForwardedAck{"bob", {"m1"}}));
    EXPECT_EQ(core_->counters().acks_forwarded, 1u);
}

TEST_F(OfflinePathTest, AckOfALocalCopyWithAHandoffOutstandingIsForwardedToo) {
    handle(chat("alice", "bob", "m1"));
    handle(ack("bob", {"m1", "m9"}));
    EXPECT_FALSE(core_->is_stored("bob", "m1"));
    ASSERT_EQ(outbox_.forwarded_acks.size(), 1u);
    // m1: persistence may have stored it already; m9: not here, maybe there.
    EXPECT_EQ(outbox_.forwarded_acks[0], (ForwardedAck{"bob", {"m1", "m9"}}));

    // The unanswered handoff finds nothing left to hand off and is dropped.
    advance(config_.handoff_timeout_ms);
    EXPECT_EQ(requests_of(Kind::offline_store).size(), 1u);
    EXPECT_EQ(core_->outstanding_handoffs(), 0u);

    // Confirmed after the ack: the ack is forwarded again, since the first one travelled on
    // another socket and may have reached persistence before the message did.
    handle(chat("alice", "bob", "m3"));
    const std::uint64_t handoff = last_of(Kind::offline_store).request_id;
    handle(ack("bob", {"m3"}));
    ASSERT_EQ(outbox_.forwarded_acks.size(), 2u);
    handle(stored_reply(handoff));
    ASSERT_EQ(outbox_.forwarded_acks.size(), 3u);
    EXPECT_EQ(outbox_.forwarded_acks[2], (ForwardedAck{"bob", {"m3"}}));
    EXPECT_EQ(core_->outstanding_handoffs(), 0u);

    // A local ack with no handoff involved stays local.
    handle(connect("bob", "ws-1", 1));
    finish_fetch();
    handle(chat("alice", "bob", "m2"));
    answer_from(0);
    handle(ack("bob", {"m2"}));
    EXPECT_EQ(outbox_.forwarded_acks.size(), 3u);
}

TEST_F(OfflinePathTest, ConnectFetchesStoredMessagesInWindows) {
    config_.window = 4;
    rebuild();
    handle(connect("bob", "ws-1", 1));
    auto fetches = requests_of(Kind::fetch);
    ASSERT_EQ(fetches.size(), 1u);
    EXPECT_EQ(fetches[0].to, "bob");
    EXPECT_EQ(fetches[0].cursor, 0u);
    EXPECT_EQ(fetches[0].limit, 4u); // the free window
    EXPECT_EQ(core_->counters().fetches, 1u);

    handle(fetched_reply(fetches[0].request_id,
                         {remote("r1", 11), remote("r2", 12), remote("r3", 13), remote("r4", 14)},
                         /*more=*/true));
    EXPECT_EQ(delivered_ids(), (std::vector<std::string>{"r1", "r2", "r3", "r4"}));
    for (const Delivery& d : outbox_.deliveries) {
        EXPECT_EQ(d.gateway, "ws-1");
        EXPECT_EQ(d.request.kind, Kind::deliver);
        EXPECT_EQ(d.request.connection, 1u);
        EXPECT_EQ(d.request.payload, chat("alice", "bob", d.request.id).payload);
    }
    EXPECT_EQ(core_->in_flight_of("bob"), 4u);
    EXPECT_EQ(core_->stored_count("bob"), 0u); // never re-stored here
    EXPECT_EQ(requests_of(Kind::fetch).size(), 1u); // the window is full: no fetch yet

    answer_from(0);
    handle(ack("bob", {"r1", "r2"}));
    ASSERT_EQ(outbox_.forwarded_acks.size(), 1u);
    EXPECT_EQ(outbox_.forwarded_acks[0], (ForwardedAck{"bob", {"r1", "r2"}}));
    EXPECT_EQ(core_->in_flight_of("bob"), 2u);
    fetches = requests_of(Kind::fetch);
    ASSERT_EQ(fetches.size(), 2u);
    EXPECT_EQ(fetches[1].cursor, 14u); // after the last message taken
    EXPECT_EQ(fetches[1].limit, 2u);

    handle(fetched_reply(fetches[1].request_id, {remote("r5", 15), remote("r6", 16)},
                         /*more=*/false));
    EXPECT_EQ(delivered_ids(4), (std::vector<std::string>{"r5", "r6"}));
    answer_from(4);
    handle(ack("bob", {"r3", "r4", "r5", "r6"}));
    EXPECT_EQ(core_->in_flight_of("bob"), 0u);
    EXPECT_EQ(core_->remote_bytes(), 0u);
    // The queue is exhausted for this connection: no more fetches.
    advance(config_.fetch_timeout_ms * 2);
    EXPECT_EQ(requests_of(Kind::fetch).size(), 2u);
    EXPECT_EQ(core_->counters().fetched_items, 6u);
}

TEST_F(OfflinePathTest, NewMessagesWaitForTheOlderOnesInPersistence) {
    config_.window = 2;
    rebuild();
    handle(connect("bob", "ws-1", 1));
    const Envelope fetch = last_of(Kind::fetch);
    EXPECT_EQ(fetch.limit, 2u);
    handle(chat("alice", "bob", "new")); // newer than what persistence holds: waits
    EXPECT_TRUE(outbox_.deliveries.empty());
    handle(fetched_reply(fetch.request_id, {remote("r1", 21)}, false));
    EXPECT_EQ(delivered_ids(), (std::vector<std::string>{"r1", "new"}));
}

TEST_F(OfflinePathTest, AnUnansweredFetchLetsLocalMessagesGoAndAFullWindowLeavesTheRest) {
    config_.window = 2;
    rebuild();
    handle(connect("bob", "ws-1", 1));
    const Envelope fetch = last_of(Kind::fetch);
    handle(chat("alice", "bob", "new"));
    advance(config_.fetch_timeout_ms); // persistence may be down: local messages go meanwhile
    EXPECT_EQ(delivered_ids(), (std::vector<std::string>{"new"}));
    const Envelope next = last_of(Kind::fetch);
    EXPECT_NE(next.request_id, fetch.request_id);
    EXPECT_EQ(next.cursor, 0u);
    // The window filled meanwhile: r2 is not taken now.
    handle(fetched_reply(next.request_id, {remote("r1", 21), remote("r2", 22)}, false));
    EXPECT_EQ(delivered_ids(), (std::vector<std::string>{"new", "r1"}));
    answer_from(0);
    handle(ack("bob", {"new"}));
    const Envelope again = last_of(Kind::fetch);
    EXPECT_NE(again.request_id, next.request_id);
    EXPECT_EQ(again.cursor, 21u); // r2 comes again
    handle(fetched_reply(again.request_id, {remote("r2", 22)}, false));
    EXPECT_EQ(delivered_ids(1), (std::vector<std::string>{"r1", "r2"}));
}

// Issue 14, 3b: persistence holds a user's older messages (handoffs go in seq order), so on
// connect its part of the queue goes first; a message fetched while its local copy still
// waits for the handoff's confirmation is delivered once, in persistence's order.
TEST_F(OfflinePathTest, PersistenceComesFirstAndAHandoffInFlightIsNotDeliveredTwice) {
    handle(chat("alice", "bob", "m1")); // offline: handoff outstanding
    const std::uint64_t handoff = last_of(Kind::offline_store).request_id;
    handle(connect("bob", "ws-1", 1));
    EXPECT_TRUE(outbox_.deliveries.empty()); // nothing before persistence's answer
    const Envelope fetch = last_of(Kind::fetch);
    EXPECT_EQ(fetch.limit, config_.window);
    // Persistence has the older m0 and m1 already; m1's confirmation is on its way.
    handle(fetched_reply(fetch.request_id, {remote("m0", 1), remote("m1", 2)}, false));
    EXPECT_EQ(delivered_ids(), (std::vector<std::string>{"m0", "m1"}));
    EXPECT_TRUE(core_->is_stored("bob", "m1"));
    handle(chat("alice", "bob", "m2")); // new: after the older ones, from here
    EXPECT_EQ(delivered_ids(), (std::vector<std::string>{"m0", "m1", "m2"}));
    handle(stored_reply(handoff));
    EXPECT_FALSE(core_->is_stored("bob", "m1"));
    EXPECT_EQ(core_->in_flight_of("bob"), 3u);

    answer_from(0);
    handle(ack("bob", {"m1", "m0", "m2"}));
    EXPECT_EQ(core_->in_flight_of("bob"), 0u);
    ASSERT_EQ(outbox_.forwarded_acks.size(), 1u);
    EXPECT_EQ(outbox_.forwarded_acks[0], (ForwardedAck{"bob", {"m1", "m0"}}));
    EXPECT_EQ(outbox_.deliveries.size(), 3u);
}

TEST_F(OfflinePathTest, AMessageConfirmedWhileDeliveredFromHereGoesOnFromMemory) {
    handle(chat("alice", "bob", "m1")); // offline: handoff outstanding
    const std::uint64_t handoff = last_of(Kind::offline_store).request_id;
    handle(connect("bob", "ws-1", 1));
    // Persistence has not committed m1 yet: its queue holds only the older m0.
    handle(fetched_reply(last_of(Kind::fetch).request_id, {remote("m0", 1)}, false));
    EXPECT_EQ(delivered_ids(), (std::vector<std::string>{"m0", "m1"}));
    handle(stored_reply(handoff));
    EXPECT_FALSE(core_->is_stored("bob", "m1"));
    EXPECT_EQ(core_->in_flight_of("bob"), 2u); // m1 goes on from memory
    // No answer from the gateway: both are sent again, m1 from memory.
    advance(config_.send_timeout_ms);
    ASSERT_EQ(outbox_.deliveries.size(), 4u);
    for (std::size_t i = 2; i < 4; ++i) {
        if (outbox_.deliveries[i].request.id == "m1") {
            EXPECT_EQ(outbox_.deliveries[i].request.payload, outbox_.deliveries[1].request.payload);
        }
    }
    handle(ack("bob", {"m1", "m0"}));
    EXPECT_EQ(core_->in_flight_of("bob"), 0u);
}

TEST_F(OfflinePathTest, RemoteMessagePastTheRetryLimitIsLeftInPersistence) {
    handle(connect("bob", "ws-1", 1));
    handle(fetched_reply(last_of(Kind::fetch).request_id, {remote("r1", 5)}, false));
    ASSERT_EQ(outbox_.deliveries.size(), 1u);
    answer_from(0);
    advance(config_.ack_timeout_ms); // written, no ack: it leaves the window
    EXPECT_EQ(core_->counters().remote_parked, 1u);
    EXPECT_EQ(core_->counters().parked, 0u);
    EXPECT_EQ(core_->in_flight_of("bob"), 0u);
    EXPECT_TRUE(requests_of(Kind::offline_store).empty()); // it is in persistence already
    // Persistence counts the unacked write (and deletes the message at the limit).
    ASSERT_EQ(outbox_.unacked_writes.size(), 1u);
    EXPECT_EQ(outbox_.unacked_writes[0],
              (FakeOutbox::UnackedWriteCall{"bob", "alice", "r1", config_.max_unacked_writes}));
    EXPECT_EQ(requests_of(Kind::fetch).size(), 1u);
    advance(config_.ack_timeout_ms * 10);
    EXPECT_EQ(outbox_.deliveries.size(), 1u);

    // The next connection fetches from the start again.
    handle(connect("bob", "ws-1", 2));
    ASSERT_EQ(requests_of(Kind::fetch).size(), 2u);
    EXPECT_EQ(last_of(Kind::fetch).cursor, 0u);
}

// Issue 14, 3a: an ack of a message fetched from persistence is kept as acked here too (the
// sender is known from the fetched copy, or named by a receipt), so the sender's resend is
// SERVER_ACKed and neither stored nor delivered again.
TEST_F(OfflinePathTest, AResendOfAnIdAckedFromPersistencesCopyIsADuplicate) {
    handle(connect("bob", "ws-1", 1));
    handle(fetched_reply(last_of(Kind::fetch).request_id, {remote("r1", 5)}, false));
    answer_from(0);
    handle(ack("bob", {"r1"})); // a CLIENT_ACK: no sender named
    ASSERT_EQ(outbox_.forwarded_acks.size(), 1u);
    handle(chat("alice", "bob", "r1")); // the resend
    EXPECT_EQ(outbox_.deliveries.size(), 1u);
    EXPECT_FALSE(core_->is_stored("bob", "r1"));
    EXPECT_EQ(core_->counters().duplicates, 1u);
    EXPECT_EQ(outbox_.server_acks.back().id, "r1");

    // A receipt naming its sender, for a message that is in persistence only.
    Envelope receipt = ack("bob", {"x1"});
    receipt.to = "carol";
    handle(receipt);
    handle(chat("carol", "bob", "x1"));
    EXPECT_EQ(core_->counters().duplicates, 2u);
    handle(chat("dave", "bob", "x1")); // another sender's x1 is new
    EXPECT_TRUE(core_->is_stored("bob", "x1", std::string_view("dave")));
}

// 3b: a fetched message written but not acked when the user goes offline is counted by
// persistence (an ack with limit = max_unacked_writes); one never written is not.
TEST_F(OfflinePathTest, AFetchedMessageWrittenButNotAckedIsCountedByPersistence) {
    handle(connect("bob", "ws-1", 1));
    handle(fetched_reply(last_of(Kind::fetch).request_id, {remote("r1", 5), remote("r2", 6)},
                         false));
    ASSERT_EQ(outbox_.deliveries.size(), 2u);
    handle(result(outbox_.deliveries[0].request.request_id)); // only r1 was written
    handle(disconnect("bob", "ws-1", 1));
    ASSERT_EQ(outbox_.unacked_writes.size(), 1u);
    EXPECT_EQ(outbox_.unacked_writes[0],
              (FakeOutbox::UnackedWriteCall{"bob", "alice", "r1", config_.max_unacked_writes}));
    EXPECT_EQ(core_->counters().unacked_writes, 1u);
}

TEST_F(OfflinePathTest, RemoteReceiptIsDeletedInPersistenceOnceWritten) {
    handle(connect("bob", "ws-1", 1));
    handle(fetched_reply(last_of(Kind::fetch).request_id, {remote("r1", 5, flag_system)}, false));
    ASSERT_EQ(outbox_.deliveries.size(), 1u);
    answer_from(0);
    ASSERT_EQ(outbox_.forwarded_acks.size(), 1u);
    EXPECT_EQ(outbox_.forwarded_acks[0], (ForwardedAck{"bob", {"r1"}}));
    EXPECT_EQ(core_->in_flight_of("bob"), 0u);
}

TEST_F(OfflinePathTest, FetchWithoutAnswerIsRepeatedFromTheSameCursor) {
    handle(connect("bob", "ws-1", 1));
    const Envelope first = last_of(Kind::fetch);
    advance(config_.fetch_timeout_ms);
    const Envelope second = last_of(Kind::fetch);
    ASSERT_NE(second.request_id, first.request_id);
    EXPECT_EQ(second.cursor, first.cursor);

    handle(fetched_reply(first.request_id, {remote("r1", 5)}, false)); // late: ignored
    EXPECT_TRUE(outbox_.deliveries.empty());
    EXPECT_EQ(core_->counters().stale_results, 1u);
    handle(fetched_reply(second.request_id, {remote("r1", 5)}, false));
    EXPECT_EQ(delivered_ids(), (std::vector<std::string>{"r1"}));

    // A reply for a connection that was replaced is stale too.
    handle(connect("bob", "ws-1", 2));
    const Envelope third = last_of(Kind::fetch);
    handle(connect("bob", "ws-1", 3));
    handle(fetched_reply(third.request_id, {remote("r1", 5)}, false));
    EXPECT_EQ(core_->counters().stale_results, 2u);
}

TEST_F(OfflinePathTest, DisconnectHandsOffWhatWasInFlight) {
    handle(connect("bob", "ws-1", 1));
    finish_fetch();
    handle(chat("alice", "bob", "m1"));
    answer_from(0);
    EXPECT_TRUE(requests_of(Kind::offline_store).empty()); // bob is online
    handle(disconnect("bob", "ws-1", 1));
    advance(0);
    ASSERT_EQ(requests_of(Kind::offline_store).size(), 1u);
    EXPECT_EQ(last_of(Kind::offline_store).id, "m1");
}

TEST_F(OfflinePathTest, RestartHandsOffWhatWasLeftBehindWithinTheBound) {
    // A run that crashed before handing anything off (simulated by a core without
    // persistence) left three messages of offline bob and one of carol.
    outbox_.persistence = false;
    rebuild();
    handle(std::vector<Envelope>{chat("alice", "bob", "m1"), chat("alice", "bob", "m2"),
                                 chat("alice", "bob", "m3"), chat("alice", "carol", "c1")});
    ASSERT_TRUE(outbox_.persistence_requests.empty());

    outbox_.persistence = true;
    config_.max_handoffs = 2;
    restart();
    handle(connect("carol", "ws-1", 1)); // online: her message is delivered from here
    finish_fetch();
    EXPECT_EQ(delivered_ids(), (std::vector<std::string>{"c1"}));
    advance(0);
    auto stores = requests_of(Kind::offline_store);
    ASSERT_EQ(stores.size(), 2u); // the bound
    EXPECT_EQ(stores[0].id, "m1");
    EXPECT_EQ(stores[1].id, "m2");

    confirm_handoffs_from(0);
    advance(0);
    stores = requests_of(Kind::offline_store);
    ASSERT_EQ(stores.size(), 3u);
    EXPECT_EQ(stores[2].id, "m3");
    confirm_handoffs_from(0);
    EXPECT_EQ(core_->stored_count("bob"), 0u);
    EXPECT_TRUE(core_->is_stored("carol", "c1"));
    advance(0);
    EXPECT_EQ(requests_of(Kind::offline_store).size(), 3u);
}

TEST_F(OfflinePathTest, HandoffBoundDefersTheRestToTheScan) {
    config_.max_handoffs = 2;
    rebuild();
    std::vector<Envelope> batch;
    for (int i = 0; i < 5; ++i) batch.push_back(chat("alice", "bob", "m" + std::to_string(i)));
    handle(std::move(batch));
    EXPECT_EQ(requests_of(Kind::offline_store).size(), 2u);
    EXPECT_EQ(core_->outstanding_handoffs(), 2u);
    EXPECT_EQ(core_->counters().handoffs_deferred, 3u);
    advance(0);
    EXPECT_EQ(requests_of(Kind::offline_store).size(), 2u); // still at the bound

    for (int round = 0; round < 3 && core_->stored_count("bob") > 0; ++round) {
        std::vector<Envelope> answers;
        for (const Envelope& store : requests_of(Kind::offline_store))
            answers.push_back(stored_reply(store.request_id));
        handle(std::move(answers));
        advance(0);
        EXPECT_LE(core_->outstanding_handoffs(), 2u);
    }
    EXPECT_EQ(core_->stored_count("bob"), 0u);
    std::set<std::string> handed;
    for (const Envelope& store : requests_of(Kind::offline_store)) handed.insert(store.id);
    EXPECT_EQ(handed.size(), 5u);
}

TEST_F(OfflinePathTest, MapFullRefusalWithPersistenceToo) {
    core_.reset();
    env_.reset();
    std::filesystem::remove_all(directory_);
    lmdb::EnvOptions small;
    small.map_size = 1u << 20;
    open(small);
    Envelope big = chat("alice", "bob", "x");
    big.payload.assign(2u << 20, 'p'); // larger than the whole map
    handle(std::move(big));
    EXPECT_TRUE(outbox_.server_acks.empty());
    ASSERT_EQ(outbox_.refusals.size(), 1u);
    EXPECT_EQ(outbox_.refusals[0].status, Status::storage_full);
    EXPECT_EQ(outbox_.refusals[0].reason, "server storage full");
    EXPECT_TRUE(requests_of(Kind::offline_store).empty()); // never durable: never handed off
}

} // namespace
} // namespace vartalap::session
