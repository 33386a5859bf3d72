// Unit tests of PersistenceCore: real LMDB in a temporary directory, a fake clock and a fake
// outbox that records every reply and notification. No sockets, no sleeps: time moves only
// by advance().
// Thread: the test's own.
#include "daemons/persistence/persistence_core.hpp"

#include "tests/support/fixtures.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <unistd.h>
#include <vector>

namespace vartalap::persistence {
namespace {

using json = nlohmann::json;

constexpr std::uint64_t kWallStart = 1'700'000'000'000;

class FakeClock final : public Clock {
public:
    std::uint64_t monotonic_ms() const override { return now_; }
    std::uint64_t wall_ms() const override { return kWallStart + now_; }
    void advance(std::uint64_t ms) { now_ += ms; }

private:
    std::uint64_t now_ = 5'000;
};

struct ReplyCall {
    std::string to;
    Envelope reply;
};

class FakeOutbox final : public PersistenceOutbox {
public:
    void reply(std::string_view reply_to, const Envelope& reply) override {
        replies.push_back({std::string(reply_to), reply});
        if (on_reply) on_reply(replies.back());
    }
    bool has_push() const override { return push; }
    bool notify(const Envelope& notification) override {
        if (!accept_notify) return false;
        notifications.push_back(notification);
        return true;
    }

    bool has_profile() const override { return profile; }
    bool to_profile(const Envelope& request) override {
        profile_requests.push_back(request);
        return true;
    }

    bool push = true;
    bool profile = false; // the short TTL's registration checks (off unless a test says)
    std::vector<Envelope> profile_requests;
    bool accept_notify = true;
    std::vector<ReplyCall> replies;
    std::vector<Envelope> notifications;
    std::function<void(const ReplyCall&)> on_reply;
};

std::string text_payload(const std::string& id, const std::string& content_type = "text") {
    return json{{"_v", 2.1},
                {"id", id},
                {"head", {{"type", "individual"}, {"contentType", content_type}}},
                {"body", {{"text", "hello " + id}}}}
        .dump();
}

PersistenceInput store(const std::string& to, const std::string& id, std::uint64_t request_id,
                       std::uint32_t flags = 0, std::uint64_t created_at_ms = kWallStart) {
    Envelope e;
    e.kind = Kind::offline_store;
    e.id = id;
    e.channel = "individual";
    e.from = "alice";
    e.to = to;
    e.origin_gateway = "ws-1";
    e.connection = 7;
    e.created_at_ms = created_at_ms;
    e.flags = flags;
    e.method = "chat";
    e.request_id = request_id;
    e.payload = text_payload(id);
    return {"session-1", std::move(e)};
}

PersistenceInput ack(const std::string& user, std::vector<std::string> ids) {
    Envelope e;
    e.kind = Kind::ack;
    e.from = user;
    e.ids = std::move(ids);
    return {"", std::move(e)};
}

PersistenceInput fetch(const std::string& user, std::uint64_t cursor, std::uint32_t limit,
                       std::uint64_t request_id = 900) {
    Envelope e;
    e.kind = Kind::fetch;
    e.to = user;
    e.cursor = cursor;
    e.limit = limit;
    e.request_id = request_id;
    return {"session-1", std::move(e)};
}

PersistenceInput messages_request(const std::string& user, const std::string& body,
                                  std::uint64_t request_id = 800) {
    Envelope e;
    e.kind = Kind::request;
    e.method = "messages";
    e.from = user;
    e.payload = body;
    e.request_id = request_id;
    return {"rest-1", std::move(e)};
}

class PersistenceCoreTest : public ::testing::Test {
protected:
    void SetUp() override { open(); }
    void TearDown() override {
        core_.reset();
        env_.reset();
    }

    void open() {
        env_ = std::make_unique<lmdb::Env>(directory_, persistence_env_options(config_));
        core_ = std::make_unique<PersistenceCore>(*env_, outbox_, clock_, config_);
    }
    void reopen() {
        core_.reset();
        env_.reset();
        open();
    }
    // A fresh store with another config (map size, durability...).
    void recreate() {
        core_.reset();
        env_.reset();
        std::filesystem::remove_all(directory_);
        open();
    }

    void handle(std::vector<PersistenceInput> batch) { core_->handle_batch(batch); }
    void handle(PersistenceInput one) {
        std::vector<PersistenceInput> batch;
        batch.push_back(std::move(one));
        handle(std::move(batch));
    }
    void advance(std::uint64_t ms) {
        clock_.advance(ms);
        core_->on_timer();
    }
    const Envelope& last_reply() const { return outbox_.replies.back().reply; }

    // Fetches one page as a session would; returns the decoded items.
    std::vector<Envelope> fetch_page(const std::string& user, std::uint64_t cursor,
                                     std::uint32_t limit) {
        handle(fetch(user, cursor, limit));
        const Envelope& reply = last_reply();
        EXPECT_EQ(reply.kind, Kind::fetched);
        EXPECT_EQ(reply.status, Status::ok);
        std::vector<Envelope> items;
        for (const std::string& item : reply.items) {
            std::string error;
            auto decoded = decode_envelope(header_frame(Kind::deliver), item, &error);
            EXPECT_TRUE(decoded.has_value()) << error;
            if (decoded) items.push_back(std::move(*decoded));
        }
        return items;
    }

    void store_many(const std::string& user, int count, int first = 0) {
        for (int done = 0; done < count;) {
            std::vector<PersistenceInput> batch;
            for (int i = 0; i < 1000 && done < count; ++i, ++done)
                batch.push_back(store(user, "m" + std::to_string(first + done),
                                      static_cast<std::uint64_t>(first + done + 1)));
            handle(std::move(batch));
        }
    }

    PersistenceConfig config_;
    FakeClock clock_;
    FakeOutbox outbox_;
    test::TempDirectory dir_{"persistence"}; // removed after the environment is closed
    std::filesystem::path directory_ = dir_.path();
    std::unique_ptr<lmdb::Env> env_;
    std::unique_ptr<PersistenceCore> core_;
};

TEST_F(PersistenceCoreTest, StoreRepliesOkOnlyAfterCommit) {
    bool durable_at_reply = false;
    outbox_.on_reply = [&](const ReplyCall& call) {
        // A fresh read transaction sees only committed data.
        durable_at_reply = core_->is_stored("bob", call.reply.id);
    };
    handle(store("bob", "m1", 41));

    ASSERT_EQ(outbox_.replies.size(), 1u);
    EXPECT_TRUE(durable_at_reply);
    EXPECT_EQ(outbox_.replies[0].to, "session-1");
    const Envelope& reply = last_reply();
    EXPECT_EQ(reply.kind, Kind::offline_stored);
    EXPECT_EQ(reply.request_id, 41u);
    EXPECT_EQ(reply.status, Status::ok);
    EXPECT_EQ(reply.id, "m1");
    EXPECT_EQ(reply.to, "bob");
    EXPECT_EQ(core_->counters().stored, 1u);
    EXPECT_EQ(core_->stored_count("bob"), 1u);
}

TEST_F(PersistenceCoreTest, DuplicateIsOkAndStoredOnce) {
    handle(store("bob", "m1", 1));
    handle(store("bob", "m1", 2)); // a session re-sent after a lost reply
    ASSERT_EQ(outbox_.replies.size(), 2u);
    EXPECT_EQ(last_reply().request_id, 2u);
    EXPECT_EQ(last_reply().status, Status::ok);
    EXPECT_EQ(core_->counters().duplicates, 1u);
    EXPECT_EQ(core_->stored_count("bob"), 1u);

    // Within one batch too; the same id for another user is another message.
    handle(std::vector<PersistenceInput>{store("bob", "m2", 3), store("bob", "m2", 4),
                                         store("carol", "m2", 5)});
    EXPECT_EQ(core_->counters().duplicates, 2u);
    EXPECT_EQ(core_->stored_count("bob"), 2u);
    EXPECT_EQ(core_->stored_count("carol"), 1u);
    for (const ReplyCall& call : outbox_.replies) EXPECT_EQ(call.reply.status, Status::ok);
}

// Issue 14, section 2: the same id from two senders is two messages; acks name the sender.
TEST_F(PersistenceCoreTest, AnotherSendersIdCannotSuppressAMessageAndAcksArePerSender) {
    PersistenceInput from_mallory = store("bob", "m1", 1);
    from_mallory.envelope.from = "mallory";
    handle(from_mallory);
    handle(store("bob", "m1", 2)); // alice's
    EXPECT_EQ(core_->counters().duplicates, 0u);
    EXPECT_EQ(core_->stored_count("bob"), 2u);
    EXPECT_TRUE(core_->is_stored("bob", "m1", "alice"));
    EXPECT_TRUE(core_->is_stored("bob", "m1", "mallory"));
    handle(store("bob", "m1", 3)); // alice's again: a resend
    EXPECT_EQ(core_->counters().duplicates, 1u);
    ASSERT_EQ(fetch_page("bob", 0, 10).size(), 2u);

    PersistenceInput acked = ack("bob", {"m1"});
    acked.envelope.to = "alice"; // a receipt to alice, forwarded by the session
    handle(acked);
    EXPECT_FALSE(core_->is_stored("bob", "m1", "alice"));
    EXPECT_TRUE(core_->is_stored("bob", "m1", "mallory"));
    handle(ack("bob", {"m1"})); // naming nobody: one copy (the oldest left)
    EXPECT_FALSE(core_->is_stored("bob", "m1"));
    EXPECT_EQ(core_->total_count(), 0u);
}

TEST_F(PersistenceCoreTest, OneCommitPerBatch) {
    std::vector<PersistenceInput> batch;
    for (int i = 0; i < 200; ++i) batch.push_back(store("bob", "m" + std::to_string(i), i + 1));
    batch.push_back(ack("bob", {"m0", "m1"}));
    batch.push_back(fetch("bob", 0, 10));
    handle(std::move(batch));
    EXPECT_EQ(core_->counters().commits, 1u); // the group commit: one sync for the batch
    EXPECT_EQ(core_->counters().stored, 200u);
    EXPECT_EQ(core_->counters().acked, 2u);
    // Replies in batch order; the fetch sees the batch's writes.
    ASSERT_EQ(outbox_.replies.size(), 201u);
    EXPECT_EQ(outbox_.replies[0].reply.request_id, 1u);
    EXPECT_EQ(last_reply().kind, Kind::fetched);
    EXPECT_EQ(last_reply().items.size(), 10u);

    // A batch of reads only does not write at all.
    handle(fetch("bob", 0, 10));
    EXPECT_EQ(core_->counters().commits, 1u);
}

TEST_F(PersistenceCoreTest, FetchReturnsStoredDeliverEnvelopesOldestFirstWithCursors) {
    handle(std::vector<PersistenceInput>{store("bob", "m1", 1), store("carol", "x", 2),
                                         store("bob", "m2", 3, flag_system)});
    handle(store("bob", "m3", 4));

    auto items = fetch_page("bob", 0, 10);
    ASSERT_EQ(items.size(), 3u);
    EXPECT_EQ(items[0].id, "m1");
    EXPECT_EQ(items[1].id, "m2");
    EXPECT_EQ(items[2].id, "m3");
    EXPECT_TRUE(items[1].has(flag_system));
    for (const Envelope& item : items) {
        EXPECT_EQ(item.to, "bob");
        EXPECT_EQ(item.from, "alice");
        EXPECT_EQ(item.channel, "individual");
        EXPECT_EQ(item.payload, text_payload(item.id));
        EXPECT_EQ(item.request_id, 0u);
        EXPECT_TRUE(item.origin_gateway.empty());
        EXPECT_GT(item.cursor, 0u);
    }
    EXPECT_LT(items[0].cursor, items[1].cursor);
    EXPECT_LT(items[1].cursor, items[2].cursor);
    EXPECT_EQ(last_reply().cursor, items[2].cursor); // cursor = seq of the last item
    EXPECT_EQ(last_reply().limit, 0u);               // the end of the queue
    EXPECT_EQ(last_reply().request_id, 900u);
    EXPECT_EQ(last_reply().to, "bob");

    // From a cursor, with a limit: "more" is set while messages follow.
    auto page = fetch_page("bob", items[0].cursor, 1);
    ASSERT_EQ(page.size(), 1u);
    EXPECT_EQ(page[0].id, "m2");
    EXPECT_EQ(last_reply().limit, 1u);
    EXPECT_TRUE(fetch_page("bob", items[2].cursor, 10).empty());
    EXPECT_EQ(last_reply().cursor, items[2].cursor); // unchanged when empty
    EXPECT_EQ(last_reply().limit, 0u);
    EXPECT_TRUE(fetch_page("nobody", 0, 10).empty());
}

TEST_F(PersistenceCoreTest, FetchIsBoundedByTheLimitMaximumAndReplyBytes) {
    store_many("bob", 700);
    EXPECT_EQ(fetch_page("bob", 0, 100000).size(), config_.fetch_limit_max);
    EXPECT_EQ(fetch_page("bob", 0, 0).size(), config_.fetch_limit_max); // 0 = the maximum

    config_.max_reply_bytes = 1000; // a few records
    reopen();
    auto page = fetch_page("bob", 0, 100);
    EXPECT_GE(page.size(), 1u);
    EXPECT_LT(page.size(), 100u);
    EXPECT_EQ(last_reply().limit, 1u);
    // One record over the budget still goes out alone: a queue never gets stuck.
    config_.max_reply_bytes = 1;
    reopen();
    EXPECT_EQ(fetch_page("bob", 0, 100).size(), 1u);
}

TEST_F(PersistenceCoreTest, PagingOverTenThousandMessagesReturnsEachExactlyOnce) {
    config_.max_messages_per_recipient = 0; // more than the default offline quota
    recreate();
    store_many("bob", 10000);
    store_many("carol", 10, 20000);
    std::set<std::string> seen;
    std::uint64_t cursor = 0;
    int pages = 0;
    int next_new = 10000;
    for (;;) {
        auto page = fetch_page("bob", cursor, 500);
        const bool more = last_reply().limit != 0;
        cursor = last_reply().cursor;
        for (const Envelope& item : page) EXPECT_TRUE(seen.insert(item.id).second) << item.id;
        ++pages;
        // Acks of what was seen and new arrivals while paging must not disturb the pages.
        if (pages % 3 == 0 && !page.empty()) handle(ack("bob", {page.front().id}));
        if (pages <= 4) store_many("bob", 1, next_new++);
        if (!more) break;
        ASSERT_LT(pages, 100);
    }
    EXPECT_EQ(seen.size(), 10004u);
    for (int i = 0; i < 10004; ++i) EXPECT_TRUE(seen.contains("m" + std::to_string(i)));
}

TEST_F(PersistenceCoreTest, RestPagingOverTenThousandMessagesReturnsEachExactlyOnce) {
    store_many("bob", 10000);
    std::set<std::string> seen;
    json cursor = nullptr;
    int pages = 0;
    for (;;) {
        json body = {{"limit", 1000}}; // above the maximum: pages of fetch_limit_max
        if (!cursor.is_null()) body["cursor"] = cursor;
        handle(messages_request("bob", body.dump()));
        const Envelope& reply = last_reply();
        ASSERT_EQ(reply.kind, Kind::reply);
        ASSERT_EQ(reply.status, Status::ok) << reply.error;
        EXPECT_EQ(reply.request_id, 800u);
        EXPECT_EQ(outbox_.replies.back().to, "rest-1");
        const json page = json::parse(reply.payload);
        ASSERT_TRUE(page["messages"].is_array());
        EXPECT_LE(page["messages"].size(), config_.fetch_limit_max);
        for (const json& message : page["messages"]) {
            ASSERT_TRUE(message.is_object()); // the client JSON, not a string
            EXPECT_TRUE(seen.insert(message["id"].get<std::string>()).second);
        }
        ++pages;
        cursor = page["next"];
        if (cursor.is_null()) break;
        ASSERT_TRUE(cursor.is_string());
        ASSERT_LT(pages, 100);
    }
    EXPECT_EQ(seen.size(), 10000u);
    EXPECT_EQ(pages, 20);
}

TEST_F(PersistenceCoreTest, RestRequestDefaultsAndErrors) {
    store_many("bob", 60);
    handle(messages_request("bob", ""));
    json page = json::parse(last_reply().payload);
    EXPECT_EQ(page["messages"].size(), config_.rest_default_limit);
    EXPECT_TRUE(page["next"].is_string());
    EXPECT_EQ(page["messages"][0]["id"], "m0");

    handle(messages_request("bob", R"({"limit":100})"));
    page = json::parse(last_reply().payload);
    EXPECT_EQ(page["messages"].size(), 60u);
    EXPECT_TRUE(page["next"].is_null());

    // Only the authenticated user's messages: `from` decides, nothing in the body does.
    handle(messages_request("carol", R"({"user":"bob","to":"bob"})"));
    page = json::parse(last_reply().payload);
    EXPECT_TRUE(page["messages"].empty());
    EXPECT_TRUE(page["next"].is_null());

    const std::pair<std::string, Status> bad[] = {
        {"[1,2]", Status::bad_request},
        {"not json", Status::bad_request},
        {R"({"limit":0})", Status::bad_request},
        {R"({"limit":-3})", Status::bad_request},
        {R"({"limit":"ten"})", Status::bad_request},
        {R"({"cursor":"12x"})", Status::bad_request},
        {R"({"cursor":""})", Status::bad_request},
        {R"({"cursor":12})", Status::bad_request},
        {R"({"cursor":"123456789012345678901234"})", Status::bad_request},
    };
    for (const auto& [body, status] : bad) {
        handle(messages_request("bob", body));
        EXPECT_EQ(last_reply().status, status) << body;
        EXPECT_FALSE(last_reply().error.empty()) << body;
        EXPECT_TRUE(json::parse(last_reply().payload).contains("error")) << body;
    }
    handle(messages_request("", ""));
    EXPECT_EQ(last_reply().status, Status::unauthorized);
    PersistenceInput other = messages_request("bob", "");
    other.envelope.method = "delete_everything";
    handle(std::move(other));
    EXPECT_EQ(last_reply().status, Status::not_found);
}

TEST_F(PersistenceCoreTest, AckDeletesFromEveryIndex) {
    handle(std::vector<PersistenceInput>{store("bob", "m1", 1), store("bob", "m2", 2),
                                         store("carol", "m1", 3)});
    const std::size_t replies = outbox_.replies.size();
    handle(ack("bob", {"m1", "unknown", ""}));
    EXPECT_EQ(outbox_.replies.size(), replies); // acks are never answered
    EXPECT_FALSE(core_->is_stored("bob", "m1"));
    EXPECT_TRUE(core_->is_stored("bob", "m2"));
    EXPECT_TRUE(core_->is_stored("carol", "m1")); // bob cannot ack carol's copy
    EXPECT_EQ(core_->counters().acked, 1u);
    EXPECT_EQ(core_->total_count(), 2u); // the expiry index entry went too
    auto items = fetch_page("bob", 0, 10);
    ASSERT_EQ(items.size(), 1u);
    EXPECT_EQ(items[0].id, "m2");

    // Within the dedupe window an acked id is a duplicate (AnAckedIdIsADuplicate...).
    handle(store("bob", "m1", 4));
    EXPECT_FALSE(core_->is_stored("bob", "m1"));
    EXPECT_EQ(core_->counters().stored, 3u);
    EXPECT_EQ(core_->counters().duplicates, 1u);
}

TEST_F(PersistenceCoreTest, StoreAndAckInTheSameBatch) {
    handle(std::vector<PersistenceInput>{store("bob", "m1", 1), ack("bob", {"m1"})});
    EXPECT_EQ(last_reply().status, Status::ok);
    EXPECT_FALSE(core_->is_stored("bob", "m1"));
    EXPECT_EQ(core_->total_count(), 0u);
}

TEST_F(PersistenceCoreTest, ExpiryDeletesOldMessagesInBoundedRuns) {
    config_.ttl_seconds = 3600;
    config_.expiry_batch = 4;
    recreate();
    const std::uint64_t now = clock_.wall_ms();
    std::vector<PersistenceInput> batch;
    for (int i = 0; i < 10; ++i) // ten messages 2 hours old
        batch.push_back(store("bob", "old" + std::to_string(i), i + 1, 0, now - 7'200'000));
    batch.push_back(store("bob", "recent", 20, 0, now - 60'000));
    batch.push_back(store("bob", "future", 21, 0, now + 1'000'000'000)); // skewed: counts from now
    batch.push_back(store("carol", "unknown-time", 22, 0, 0));           // counts from now
    handle(std::move(batch));
    EXPECT_EQ(core_->total_count(), 13u);

    // The first run is at the first tick; each run deletes at most expiry_batch, and while
    // runs find full batches the next run is at the next tick.
    advance(0);
    EXPECT_EQ(core_->counters().expired, 4u);
    advance(0);
    EXPECT_EQ(core_->counters().expired, 8u);
    advance(0);
    EXPECT_EQ(core_->counters().expired, 10u);
    EXPECT_EQ(core_->total_count(), 3u);
    for (int i = 0; i < 10; ++i) EXPECT_FALSE(core_->is_stored("bob", "old" + std::to_string(i)));
    auto items = fetch_page("bob", 0, 10);
    ASSERT_EQ(items.size(), 2u);
    EXPECT_EQ(items[0].id, "recent");

    // Not before its time, then at the next run after it.
    advance(3600'000 - 60'000 - 2);
    advance(config_.expiry_interval_ms);
    EXPECT_FALSE(core_->is_stored("bob", "recent"));
    EXPECT_TRUE(core_->is_stored("bob", "future"));
    EXPECT_EQ(core_->counters().expired, 11u);

    advance(3600'000);
    EXPECT_EQ(core_->total_count(), 0u);
    EXPECT_EQ(core_->counters().expired, 13u);
}

TEST_F(PersistenceCoreTest, AShorterTtlFromSighupExpiresWhatIsAlreadyStored) {
    const std::uint64_t now = clock_.wall_ms();
    handle({store("bob", "hour-old", 1, 0, now - 3'600'000)});
    advance(config_.expiry_interval_ms);
    EXPECT_TRUE(core_->is_stored("bob", "hour-old")); // the default TTL is 30 days

    core_->set_limits(1800, 7, 3);
    advance(config_.expiry_interval_ms);
    EXPECT_FALSE(core_->is_stored("bob", "hour-old"));
    EXPECT_EQ(core_->config().ttl_seconds, 1800u);
    EXPECT_EQ(core_->config().fetch_limit_max, 7u);
    EXPECT_EQ(core_->config().rest_default_limit, 3u);
    // Clamped as at construction: at least 1, the default page at most the maximum.
    core_->set_limits(1800, 0, 50);
    EXPECT_EQ(core_->config().fetch_limit_max, 1u);
    EXPECT_EQ(core_->config().rest_default_limit, 1u);
}

TEST_F(PersistenceCoreTest, InvalidStoresAreAnsweredBadRequest) {
    std::vector<PersistenceInput> batch;
    batch.push_back(store("", "m1", 1));
    batch.push_back(store("bob", "", 2));
    batch.push_back(store(std::string(300, 'u'), "m1", 3));
    batch.push_back(store("bob", std::string(300, 'i'), 4));
    batch.push_back(store("bob", "typing", 5, flag_ephemeral));
    PersistenceInput big = store("bob", "big", 6);
    big.envelope.payload.assign(config_.max_payload_bytes + 1, 'x');
    batch.push_back(std::move(big));
    handle(std::move(batch));
    ASSERT_EQ(outbox_.replies.size(), 6u);
    for (const ReplyCall& call : outbox_.replies) {
        EXPECT_EQ(call.reply.kind, Kind::offline_stored);
        EXPECT_EQ(call.reply.status, Status::bad_request);
        EXPECT_FALSE(call.reply.error.empty());
    }
    EXPECT_EQ(core_->total_count(), 0u);
    EXPECT_EQ(core_->counters().bad_requests, 6u);
    EXPECT_TRUE(outbox_.notifications.empty());

    handle(fetch("", 0, 10));
    EXPECT_EQ(last_reply().status, Status::bad_request);
}

TEST_F(PersistenceCoreTest, MapFullIsARefusalNeverACrash) {
    config_.map_size_mb = 1; // filled by a few dozen 16 KiB messages
    recreate();
    const std::string big(16 * 1024, 'p');
    int stored = 0;
    for (; stored < 1000; ++stored) {
        PersistenceInput message = store("bob", "m" + std::to_string(stored), stored + 1);
        message.envelope.payload = big;
        handle(std::move(message));
        if (last_reply().status != Status::ok) break;
    }
    ASSERT_GT(stored, 0);
    ASSERT_LT(stored, 1000) << "the map never filled up";
    EXPECT_EQ(last_reply().kind, Kind::offline_stored);
    EXPECT_EQ(last_reply().status, Status::refused);
    EXPECT_EQ(last_reply().error, "offline store full");
    EXPECT_EQ(last_reply().request_id, static_cast<std::uint64_t>(stored + 1));
    EXPECT_EQ(core_->counters().map_full_refusals, 1u);
    EXPECT_FALSE(core_->is_stored("bob", "m" + std::to_string(stored)));

    // A duplicate of a stored message is still ok; a new one in the same batch as acks is
    // refused while the acks are applied.
    std::vector<std::string> ids;
    for (int i = 0; i < stored; ++i) ids.push_back("m" + std::to_string(i));
    PersistenceInput refused = store("bob", "late", 5000);
    refused.envelope.payload = big;
    std::vector<PersistenceInput> batch;
    batch.push_back(store("bob", "m0", 4999));
    batch.push_back(std::move(refused));
    batch.push_back(ack("bob", ids));
    handle(std::move(batch));
    ASSERT_GE(outbox_.replies.size(), 2u);
    EXPECT_EQ(outbox_.replies[outbox_.replies.size() - 2].reply.status, Status::ok);
    EXPECT_EQ(last_reply().status, Status::refused);
    EXPECT_EQ(core_->counters().acked, static_cast<std::uint64_t>(stored));
    EXPECT_EQ(core_->total_count(), 0u);

    // The space is usable again (LMDB reuses freed pages after the next commit).
    handle(store("bob", "small", 6000));
    PersistenceInput again = store("bob", "again", 6001);
    again.envelope.payload = big;
    handle(std::move(again));
    EXPECT_EQ(last_reply().status, Status::ok);
    EXPECT_TRUE(core_->is_stored("bob", "again"));
}

TEST_F(PersistenceCoreTest, MapGrowsUpToTheConfiguredMaximum) {
    config_.map_size_mb = 1;
    config_.grow_by_mb = 1;
    config_.max_map_size_mb = 3;
    recreate();
    const std::string big(16 * 1024, 'p');
    int stored = 0;
    for (; stored < 1000; ++stored) {
        PersistenceInput message = store("bob", "m" + std::to_string(stored), stored + 1);
        message.envelope.payload = big;
        handle(std::move(message));
        if (last_reply().status != Status::ok) break;
    }
    EXPECT_EQ(core_->counters().map_grows, 2u);
    EXPECT_EQ(env_->map_size(), 3u << 20);
    EXPECT_GT(stored, 100); // about three times what fits in 1 MiB
    EXPECT_LT(stored, 1000);
    EXPECT_EQ(last_reply().status, Status::refused);
}

TEST_F(PersistenceCoreTest, FsyncDurabilityCommitsSyncAndNeverNeedAPeriodicSync) {
    ASSERT_EQ(config_.durability, Durability::fsync); // the default
    unsigned flags = 0;
    mdb_env_get_flags(env_->get(), &flags);
    EXPECT_EQ(flags & MDB_NOSYNC, 0u);
    handle(store("bob", "m1", 1));
    advance(config_.sync_interval_ms * 3);
    EXPECT_EQ(core_->counters().syncs, 0u);
    EXPECT_EQ(core_->counters().commits, 1u);
}

TEST_F(PersistenceCoreTest, ProcessDurabilitySyncsPeriodicallyOnlyWhenSomethingChanged) {
    config_.durability = Durability::process;
    recreate();
    unsigned flags = 0;
    mdb_env_get_flags(env_->get(), &flags);
    EXPECT_NE(flags & MDB_NOSYNC, 0u);

    advance(config_.sync_interval_ms);
    EXPECT_EQ(core_->counters().syncs, 0u); // nothing committed yet

    handle(std::vector<PersistenceInput>{store("bob", "m1", 1), store("bob", "m2", 2)});
    EXPECT_EQ(last_reply().status, Status::ok); // answered at the commit, before the sync
    advance(config_.sync_interval_ms - 1);
    EXPECT_EQ(core_->counters().syncs, 0u);
    advance(1);
    EXPECT_EQ(core_->counters().syncs, 1u);
    advance(config_.sync_interval_ms * 5);
    EXPECT_EQ(core_->counters().syncs, 1u);

    handle(ack("bob", {"m1"}));
    core_->flush(); // the drain's final sync
    EXPECT_EQ(core_->counters().syncs, 2u);

    reopen();
    EXPECT_FALSE(core_->is_stored("bob", "m1"));
    EXPECT_TRUE(core_->is_stored("bob", "m2"));
}

TEST_F(PersistenceCoreTest, OfflineNotifyRules) {
    std::vector<PersistenceInput> batch;
    batch.push_back(store("bob", "m1", 1));                   // text: notify
    batch.push_back(store("bob", "r1", 2, flag_system));      // receipt: no
    PersistenceInput group_event = store("bob", "g1", 3, flag_group);
    group_event.envelope.payload = text_payload("g1", "notification"); // notification: no
    batch.push_back(std::move(group_event));
    PersistenceInput opaque = store("bob", "o1", 4);
    opaque.envelope.payload = "not json"; // not ours to judge: notify
    batch.push_back(std::move(opaque));
    handle(std::move(batch));
    ASSERT_EQ(outbox_.notifications.size(), 2u);
    const Envelope& n = outbox_.notifications[0];
    EXPECT_EQ(n.kind, Kind::offline_notify);
    EXPECT_EQ(n.to, "bob");
    EXPECT_EQ(n.id, "m1");
    EXPECT_EQ(n.from, "alice");
    EXPECT_EQ(n.payload, text_payload("m1"));
    EXPECT_EQ(outbox_.notifications[1].id, "o1");
    EXPECT_EQ(core_->counters().notified, 2u);

    // Only once: a duplicate store does not notify again.
    handle(store("bob", "m1", 5));
    EXPECT_EQ(outbox_.notifications.size(), 2u);

    // The push queue full: dropped and counted, the store itself is fine.
    outbox_.accept_notify = false;
    handle(store("bob", "m2", 6));
    EXPECT_EQ(last_reply().status, Status::ok);
    EXPECT_EQ(core_->counters().notify_dropped, 1u);

    // No push daemon in the topology: nothing is built.
    outbox_.accept_notify = true;
    outbox_.push = false;
    handle(store("bob", "m3", 7));
    EXPECT_EQ(outbox_.notifications.size(), 2u);
    EXPECT_EQ(core_->counters().notify_dropped, 1u);
}

TEST_F(PersistenceCoreTest, RestartKeepsTheSeqCounterAndTheCursorsStable) {
    handle(std::vector<PersistenceInput>{store("bob", "m1", 1), store("bob", "m2", 2)});
    auto first = fetch_page("bob", 0, 1);
    ASSERT_EQ(first.size(), 1u);
    const std::uint64_t cursor = last_reply().cursor;

    reopen();
    handle(store("bob", "m3", 3)); // must sort after the ones stored before
    handle(store("bob", "m1", 4)); // still deduped after the restart
    EXPECT_EQ(core_->counters().duplicates, 1u);
    auto rest = fetch_page("bob", cursor, 10);
    ASSERT_EQ(rest.size(), 2u);
    EXPECT_EQ(rest[0].id, "m2");
    EXPECT_EQ(rest[1].id, "m3");
}

TEST_F(PersistenceCoreTest, ReaderCheckRunsPeriodically) {
    // No dead readers to find here; the duty must run without disturbing anything.
    advance(config_.reader_check_interval_ms);
    advance(config_.reader_check_interval_ms);
    EXPECT_EQ(core_->counters().stale_readers, 0u);
    handle(store("bob", "m1", 1));
    EXPECT_EQ(last_reply().status, Status::ok);
}

// Issue 14, 3a: an id acked from persistence's copy stays known for the dedupe window: a
// session's offline_store of it (the sender resent after a lost SERVER_ACK) is answered ok
// and not stored again; after the window it is a new message. Another sender's message with
// the same id is never a duplicate of it.
TEST_F(PersistenceCoreTest, AnAckedIdIsADuplicateWithinTheDedupeWindowOnly) {
    config_.dedupe_window_ms = 60'000;
    reopen();
    handle(store("bob", "m1", 1));
    PersistenceInput acked = ack("bob", {"m1"});
    acked.envelope.to = "alice";
    handle(std::move(acked));
    ASSERT_FALSE(core_->is_stored("bob", "m1"));

    advance(59'000);
    handle(store("bob", "m1", 2));
    EXPECT_EQ(last_reply().status, Status::ok); // the session deletes its copy
    EXPECT_FALSE(core_->is_stored("bob", "m1"));
    EXPECT_EQ(core_->counters().duplicates, 1u);
    EXPECT_TRUE(outbox_.notifications.size() == 1u); // no second push either
    PersistenceInput other = store("bob", "m1", 3);
    other.envelope.from = "carol";
    handle(std::move(other));
    EXPECT_TRUE(core_->is_stored("bob", "m1", std::string_view("carol")));

    reopen(); // kept across a restart
    handle(store("bob", "m1", 4));
    EXPECT_FALSE(core_->is_stored("bob", "m1", std::string_view("alice")));

    advance(2'000); // past the window: pruned by the periodic run
    EXPECT_EQ(core_->counters().acked_ids_pruned, 1u);
    handle(store("bob", "m1", 5));
    EXPECT_TRUE(core_->is_stored("bob", "m1", std::string_view("alice")));
}

PersistenceInput unacked_write(const std::string& user, const std::string& sender,
                               const std::string& id, std::uint32_t limit) {
    PersistenceInput input = ack(user, {id});
    input.envelope.to = sender;
    input.envelope.limit = limit;
    return input;
}

// Issue 14, 3b: socket writes without an ack are counted across the session and persistence
// (offline_store's retry_count carries the session's count) and across restarts; at the
// session's limit the message counts as delivered: deleted, and its id kept as acked.
TEST_F(PersistenceCoreTest, UnackedWritesAreCountedAndTheMessageIsDeletedAtTheLimit) {
    PersistenceInput first = store("bob", "m1", 1);
    first.envelope.retry_count = 1; // written once while the session held it
    handle(std::vector<PersistenceInput>{std::move(first), store("bob", "m2", 2)});
    handle(unacked_write("bob", "alice", "m1", 3));
    handle(unacked_write("bob", "alice", "m2", 3));
    EXPECT_TRUE(core_->is_stored("bob", "m1"));
    EXPECT_EQ(core_->counters().acked, 0u);
    reopen();
    handle(unacked_write("bob", "carol", "m1", 3)); // another sender's m1: not there
    EXPECT_TRUE(core_->is_stored("bob", "m1"));
    handle(unacked_write("bob", "alice", "m1", 3)); // the third write
    EXPECT_FALSE(core_->is_stored("bob", "m1"));
    EXPECT_TRUE(core_->is_stored("bob", "m2"));
    EXPECT_EQ(core_->counters().unacked_delivered, 1u);
    EXPECT_EQ(core_->counters().unacked_writes, 1u); // since the reopen
    EXPECT_EQ(core_->total_count(), 1u); // the expiry index follows
    handle(store("bob", "m1", 3));       // a resend: acked, not stored again
    EXPECT_FALSE(core_->is_stored("bob", "m1"));
    // An ordinary ack still deletes m2 with its count.
    handle(ack("bob", {"m2"}));
    EXPECT_EQ(core_->total_count(), 0u);
}

} // namespace
} // namespace vartalap::persistence

namespace vartalap::persistence {
namespace {

// Issue 12: the per-recipient offline quota. Past it an offline_store is refused with
// kRecipientQuotaFull (within a batch too); a duplicate is still ok; another recipient is
// served; an ack frees room again. The byte limit refuses the same way.
class PersistenceQuotaTest : public PersistenceCoreTest {
protected:
    void SetUp() override {
        config_.max_messages_per_recipient = 3;
        PersistenceCoreTest::SetUp();
    }
};

TEST_F(PersistenceQuotaTest, MessagesPastTheRecipientsQuotaAreRefused) {
    handle(std::vector<PersistenceInput>{store("bob", "m1", 1), store("bob", "m2", 2)});
    handle(std::vector<PersistenceInput>{store("bob", "m3", 3), store("bob", "m4", 4),
                                         store("carol", "c1", 5)});
    ASSERT_EQ(outbox_.replies.size(), 5u);
    EXPECT_EQ(outbox_.replies[2].reply.status, Status::ok);
    EXPECT_EQ(outbox_.replies[3].reply.status, Status::refused);
    EXPECT_EQ(outbox_.replies[3].reply.error, kRecipientQuotaFull);
    EXPECT_EQ(outbox_.replies[4].reply.status, Status::ok); // carol has her own quota
    EXPECT_EQ(core_->stored_count("bob"), 3u);
    EXPECT_EQ(core_->counters().quota_refusals, 1u);
    handle(store("bob", "m2", 6)); // a resend of a stored one: still ok
    EXPECT_EQ(last_reply().status, Status::ok);
    handle(ack("bob", {"m1"}));
    handle(store("bob", "m4", 7));
    EXPECT_EQ(last_reply().status, Status::ok);
    EXPECT_EQ(core_->stored_count("bob"), 3u);
}

TEST_F(PersistenceQuotaTest, TheByteLimitRefusesToo) {
    config_.max_messages_per_recipient = 0;
    config_.max_bytes_per_recipient = 2000;
    recreate();
    handle(store("bob", "m1", 1));
    EXPECT_EQ(last_reply().status, Status::ok);
    PersistenceInput big = store("bob", "m2", 2);
    big.envelope.payload = text_payload(std::string(1800, 'x'));
    handle(std::move(big));
    EXPECT_EQ(last_reply().status, Status::refused);
    EXPECT_EQ(last_reply().error, kRecipientQuotaFull);
    handle(store("bob", "m3", 3)); // a small one still fits
    EXPECT_EQ(last_reply().status, Status::ok);
}

} // namespace
} // namespace vartalap::persistence

namespace vartalap::persistence {
namespace {

// Issue 12: messages to a name that never registered expire after short_ttl_seconds (3
// days) instead of ttl_seconds (30). The core asks the profile daemon (contactbook_sync)
// about the names it stores for; the never-registered ones get the short TTL with every
// message they have, and later messages get it at once.
class PersistenceShortTtlTest : public PersistenceCoreTest {
protected:
    void SetUp() override {
        outbox_.profile = true;
        PersistenceCoreTest::SetUp();
    }
    // The profile daemon's answer to the last check: `registered` are known users.
    void answer_check(const std::vector<std::string>& registered) {
        ASSERT_FALSE(outbox_.profile_requests.empty());
        const Envelope& request = outbox_.profile_requests.back();
        EXPECT_EQ(request.kind, Kind::request);
        EXPECT_EQ(request.method, "contactbook_sync");
        json answer = json::object();
        for (const auto& name : registered) answer[name] = true;
        Envelope reply;
        reply.kind = Kind::reply;
        reply.request_id = request.request_id;
        reply.payload = answer.dump();
        core_->on_registration_reply(reply);
    }
    static constexpr std::uint64_t kDayMs = 24ull * 3600 * 1000;
};

TEST_F(PersistenceShortTtlTest, MessagesToNamesThatNeverRegisteredExpireAfterTheShortTtl) {
    handle(std::vector<PersistenceInput>{store("ghost", "g1", 1), store("bob", "b1", 2)});
    advance(100); // the check goes out
    ASSERT_EQ(outbox_.profile_requests.size(), 1u);
    const json users = json::parse(outbox_.profile_requests[0].payload)["users"];
    EXPECT_EQ(users.size(), 2u);
    answer_check({"bob"});
    EXPECT_EQ(core_->counters().unregistered_recipients, 1u);
    EXPECT_EQ(core_->counters().short_ttl_messages, 1u);
    // Known now: a later message to either name asks nothing more.
    handle(std::vector<PersistenceInput>{store("ghost", "g2", 3), store("bob", "b2", 4)});
    advance(100);
    EXPECT_EQ(outbox_.profile_requests.size(), 1u);
    EXPECT_EQ(core_->unchecked_recipients(), 0u);

    advance(3 * kDayMs - 10'000); // not yet 3 days after they were stored
    EXPECT_TRUE(core_->is_stored("ghost", "g1"));
    advance(20'000);
    advance(1000);
    EXPECT_FALSE(core_->is_stored("ghost", "g1"));
    EXPECT_FALSE(core_->is_stored("ghost", "g2"));
    EXPECT_TRUE(core_->is_stored("bob", "b1")); // a registered user keeps the 30 days
    EXPECT_TRUE(core_->is_stored("bob", "b2"));
    advance(27 * kDayMs + 20'000);
    advance(1000);
    EXPECT_FALSE(core_->is_stored("bob", "b1"));
    EXPECT_EQ(core_->total_count(), 0u); // the leftover expiry entries are gone too
}

TEST_F(PersistenceShortTtlTest, AnUnansweredCheckIsAskedAgainAndAnAckBeforeTheShortTtlIsFine) {
    handle(store("ghost", "g1", 1));
    advance(100);
    ASSERT_EQ(outbox_.profile_requests.size(), 1u);
    advance(config_.registration_timeout_ms + 100); // profile never answered
    ASSERT_EQ(outbox_.profile_requests.size(), 2u);
    EXPECT_EQ(json::parse(outbox_.profile_requests[1].payload)["users"], json::array({"ghost"}));
    answer_check({});
    handle(ack("ghost", {"g1"})); // delivered after all (the name registered meanwhile)
    EXPECT_FALSE(core_->is_stored("ghost", "g1"));
    advance(3 * kDayMs + 10'000);
    advance(1000);
    EXPECT_EQ(core_->total_count(), 0u);
}

} // namespace
} // namespace vartalap::persistence

