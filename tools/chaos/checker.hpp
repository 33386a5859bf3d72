// vartalap-chaos: the checker client. Users who behave like the app (PROTOCOL.md and the
// app's socket_service.dart): each keeps one WebSocket (`?ack=true`) to either ws-gateway,
// reconnects to the other one (or the same, whichever is up) when it closes, and on every
// (re)connect sends again, with the same id, every message of its own that has no SERVER_ACK
// yet; an error frame naming one of its messages makes it send that message again soon. It
// acks what it receives: a `delivered` receipt for a 1-to-1 message, a CLIENT_ACK for a
// group copy or group event, and counts each (recipient, id) received, so duplicates show.
//
// Steady traffic: 1-to-1 messages between random users and messages to one group, at the
// rates asked for, whatever is being killed meanwhile (a user whose socket is down queues
// its messages, as the app does, and sends them on reconnect).
//
// reconcile() compares what was SERVER_ACKed with what arrived: a message is lost when it
// was acked and some recipient never received it.
//
// Thread: the io_context thread.
#pragma once

#include "tools/bench/ws_client.hpp"
#include "tools/chaos/cluster.hpp"

#include <boost/asio/steady_timer.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

namespace vartalap::chaos {

struct CheckerOptions {
    int users = 8;
    int group_members = 5;       // users 0..group_members-1 form the group
    double chat_rate = 100;      // 1-to-1 messages per second, all users together
    double group_rate = 10;      // group messages per second
};

// The figures of one class of messages (1-to-1, or group copies).
struct Tally {
    std::uint64_t acked = 0;      // SERVER_ACKed (group: copies the acked messages owe)
    std::uint64_t delivered = 0;  // of those, received at least once
    std::uint64_t lost = 0;       // acked, never received
    std::uint64_t duplicates = 0; // receptions beyond the first
    std::uint64_t unacked = 0;    // sent (again and again) but never SERVER_ACKed
};

class Checker {
public:
    Checker(boost::asio::io_context& io, Cluster& cluster, CheckerOptions options, std::uint32_t seed);

    // Logs every user in (REST), creates the group, connects every user. Throws on failure.
    void setup();
    // Sends at the configured rates until stop_traffic().
    void start_traffic();
    void stop_traffic();
    // Every message acked and every acked message received by every recipient.
    bool quiescent() const;
    // Users still waiting for a SERVER_ACK reconnect now (what the app does when it is
    // opened again): called while waiting for quiescence.
    void reconnect_waiting_users();
    Tally chat() const { return tally(false); }
    Tally group() const { return tally(true); }
    // Sockets closed by the server with 4000 ("replaced") although the user had no newer
    // connection: a stale connect won over the live one.
    std::uint64_t replaced_closes() const { return replaced_closes_; }
    std::uint64_t reconnects() const { return reconnects_; }
    std::uint64_t resends() const { return resends_; }
    const std::map<std::string, std::uint64_t>& errors() const { return errors_; }
    void close_all();
    // One line per acked copy never received (at most `limit`): recipient, id, when it was
    // sent and acked, and the kills around then, for whoever looks for the cause.
    void print_lost(std::size_t limit) const;

private:
    struct Sent {
        std::string from;
        std::string to;            // user or group id
        bool group = false;
        bool acked = false;
        std::string frame;
        double sent_s = 0, acked_s = 0; // seconds since the checker started
    };
    struct User {
        std::string name;
        std::string key;
        std::shared_ptr<bench::ws::Connection> connection;
        bool connected = false;
        bool connecting = false;
        std::size_t gateway = 0;   // index into the gateways last tried
        std::uint64_t generation = 0; // of the current connection; older callbacks are stale
        std::vector<std::string> pending; // own message ids without SERVER_ACK, in order
        std::unique_ptr<boost::asio::steady_timer> retry;
    };

    void connect(std::size_t user);
    void reconnect_later(std::size_t user, std::chrono::milliseconds delay);
    void on_frame(std::size_t user, std::string_view text);
    void on_message(std::size_t user, const bench::ws::json& message);
    void send_pending(std::size_t user);
    void send_new(std::size_t from, bool group);
    void tick();
    Tally tally(bool group) const;
    std::string rest_post(const std::string& target, const std::string& user, const std::string& key,
                          const std::string& body);

    boost::asio::io_context& io_;
    Cluster& cluster_;
    CheckerOptions options_;
    std::mt19937 random_;
    std::vector<User> users_;
    std::string group_id_;
    std::vector<std::string> group_members_;
    // Every message sent, by id (ids are unique across users: "<user>.<n>").
    std::unordered_map<std::string, Sent> sent_;
    // (recipient '\n' id) -> times received.
    std::unordered_map<std::string, std::uint32_t> received_;
    std::uint64_t next_id_ = 0;
    boost::asio::steady_timer ticker_;
    bool traffic_ = false;
    double chat_credit_ = 0, group_credit_ = 0;
    SteadyClock::time_point last_tick_{};
    std::uint64_t replaced_closes_ = 0, reconnects_ = 0, resends_ = 0;
    std::map<std::string, std::uint64_t> errors_;
    SteadyClock::time_point started_ = SteadyClock::now();
};

} // namespace vartalap::chaos
