// Fakes and the fixture shared by the SessionCore tests (session_core_test.cpp: batches;
// session_delivery_test.cpp: delivery, acks, retries; session_offline_test.cpp: the offline
// path; session_ephemeral_test.cpp, session_metrics_test.cpp): real LMDB in a temporary
// directory, a fake clock and a fake outbox that records every request. No sockets, no
// sleeps: time moves only by advance().
// Thread: the test's own.
#pragma once

#include "daemons/session/session_core.hpp"

#include "tests/support/fixtures.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <unistd.h>
#include <vector>

namespace vartalap::session {

class FakeClock final : public Clock {
public:
    std::uint64_t monotonic_ms() const override { return now_; }
    std::uint64_t wall_ms() const override { return 1'700'000'000'000 + now_; }
    void advance(std::uint64_t ms) { now_ += ms; }

private:
    std::uint64_t now_ = 5'000;
};

struct Delivery {
    std::string gateway;
    Envelope request;
};
struct ServerAckCall {
    std::string gateway;
    std::uint64_t connection;
    std::string id;
    std::string sender;
};
struct CloseCall {
    std::string gateway;
    std::uint64_t connection;
    std::string user;
};
struct RefusalCall {
    std::string gateway;
    std::uint64_t connection;
    std::string id;
    std::string sender;
    Status status;
    std::string reason;
};
struct ForwardedAck {
    std::string user;
    std::vector<std::string> ids;
    bool operator==(const ForwardedAck&) const = default;
};

class FakeOutbox final : public Outbox {
public:
    bool deliver(std::string_view gateway, const Envelope& request) override {
        if (!accept) return false;
        deliveries.push_back({std::string(gateway), request});
        return true;
    }
    void server_ack(std::string_view gateway, std::uint64_t connection, std::string_view id,
                    std::string_view sender) override {
        server_acks.push_back(
            {std::string(gateway), connection, std::string(id), std::string(sender)});
        if (on_server_ack) on_server_ack(server_acks.back());
    }
    void close_connection(std::string_view gateway, std::uint64_t connection,
                          std::string_view user) override {
        closes.push_back({std::string(gateway), connection, std::string(user)});
    }
    void refuse(std::string_view gateway, std::uint64_t connection, std::string_view id,
                std::string_view sender, Status status, std::string_view reason) override {
        refusals.push_back({std::string(gateway), connection, std::string(id), std::string(sender),
                            status, std::string(reason)});
    }
    bool knows_gateway(std::string_view gateway) const override { return gateway != "ws-unknown"; }

    // The offline path; off unless a test turns it on before the core is built.
    bool has_persistence() const override { return persistence; }
    bool to_persistence(const Envelope& request) override {
        if (!accept_persistence) return false;
        persistence_requests.push_back(request);
        return true;
    }
    bool ack_to_persistence(std::string_view user, std::string_view /*sender*/,
                            std::span<const std::string> ids) override {
        forwarded_acks.push_back({std::string(user), std::vector<std::string>(ids.begin(), ids.end())});
        return true;
    }
    bool unacked_write_to_persistence(std::string_view user, std::string_view sender,
                                      std::string_view id, std::uint32_t limit) override {
        unacked_writes.push_back({std::string(user), std::string(sender), std::string(id), limit});
        return true;
    }
    bool confirm_copies(std::string_view owner, const Envelope& confirmation) override {
        if (!accept_confirmations) return false;
        confirmations.push_back({std::string(owner), confirmation});
        return true;
    }

    bool accept = true; // false: every deliver reports a full queue
    std::vector<Delivery> deliveries;
    std::vector<ServerAckCall> server_acks;
    std::vector<CloseCall> closes;
    std::vector<RefusalCall> refusals;
    std::function<void(const ServerAckCall&)> on_server_ack;
    bool persistence = false;
    bool accept_persistence = true; // false: the DEALER to persistence reports a full queue
    std::vector<Envelope> persistence_requests; // offline_store and fetch, in order
    std::vector<ForwardedAck> forwarded_acks;
    struct UnackedWriteCall {
        std::string user, sender, id;
        std::uint32_t limit;
        bool operator==(const UnackedWriteCall&) const = default;
    };
    std::vector<UnackedWriteCall> unacked_writes; // remote messages written, not acked
    bool accept_confirmations = true; // false: the DEALER to the owner reports a full queue
    std::vector<std::pair<std::string, Envelope>> confirmations; // (owner, copies_stored)
};

inline Envelope chat(const std::string& from, const std::string& to, const std::string& id,
              std::uint32_t flags = flag_wants_server_ack, std::uint64_t sender_connection = 7) {
    Envelope e;
    e.kind = Kind::deliver;
    e.id = id;
    e.channel = "individual";
    e.from = from;
    e.to = to;
    e.origin_gateway = "ws-1";
    e.connection = sender_connection;
    e.created_at_ms = 1'700'000'000'000;
    e.flags = flags;
    e.method = "chat";
    e.payload = "{\"id\":\"" + id + "\",\"text\":\"hello\"}";
    return e;
}

inline Envelope connect(const std::string& user, const std::string& gateway, std::uint64_t connection) {
    Envelope e;
    e.kind = Kind::connect;
    e.from = user;
    e.origin_gateway = gateway;
    e.connection = connection;
    return e;
}

inline Envelope disconnect(const std::string& user, const std::string& gateway,
                    std::uint64_t connection) {
    Envelope e = connect(user, gateway, connection);
    e.kind = Kind::disconnect;
    return e;
}

inline Envelope ack(const std::string& user, std::vector<std::string> ids) {
    Envelope e;
    e.kind = Kind::ack;
    e.from = user;
    e.ids = std::move(ids);
    return e;
}

inline Envelope result(std::uint64_t request_id, Status status = Status::ok) {
    Envelope e;
    e.kind = Kind::deliver_result;
    e.origin_gateway = "ws-1";
    e.request_id = request_id;
    e.status = status;
    return e;
}

class SessionCoreTest : public ::testing::Test {
protected:
    void SetUp() override { open(); }
    void TearDown() override {
        core_.reset();
        env_.reset();
    }

    void open(lmdb::EnvOptions options = {}) {
        env_ = std::make_unique<lmdb::Env>(directory_, options);
        core_ = std::make_unique<SessionCore>(*env_, outbox_, clock_, config_);
    }
    // Simulates a crash/restart: drop all memory state, keep the files.
    void restart() {
        core_.reset();
        env_.reset();
        outbox_.deliveries.clear();
        open();
    }

    void handle(std::vector<Envelope> batch) { core_->handle_batch(batch); }
    void handle(Envelope one) { handle(std::vector<Envelope>{std::move(one)}); }
    void advance(std::uint64_t ms) {
        clock_.advance(ms);
        core_->on_timer();
    }
    // Answers every delivery from index `from` on with `status`.
    void answer_from(std::size_t from, Status status = Status::ok) {
        std::vector<Envelope> batch;
        for (std::size_t i = from; i < outbox_.deliveries.size(); ++i)
            batch.push_back(result(outbox_.deliveries[i].request.request_id, status));
        handle(std::move(batch));
    }
    std::vector<std::string> delivered_ids(std::size_t from = 0) const {
        std::vector<std::string> ids;
        for (std::size_t i = from; i < outbox_.deliveries.size(); ++i)
            ids.push_back(outbox_.deliveries[i].request.id);
        return ids;
    }
    const Envelope& last_delivery() const { return outbox_.deliveries.back().request; }

    SessionConfig config_;
    FakeClock clock_;
    FakeOutbox outbox_;
    test::TempDirectory dir_{"session"}; // removed after the environment is closed
    std::filesystem::path directory_ = dir_.path();
    std::unique_ptr<lmdb::Env> env_;
    std::unique_ptr<SessionCore> core_;
};

} // namespace vartalap::session
