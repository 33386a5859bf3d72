// Thread: the io_context thread (see checker.hpp).
#include "tools/chaos/checker.hpp"

#include <boost/asio/connect.hpp>

#include <iostream>
#include <stdexcept>

namespace vartalap::chaos {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ws = bench::ws;
using ws::json;
using namespace std::chrono_literals;

namespace {

constexpr auto kTick = 20ms;
// After a close, the app waits a little before it reconnects (socket_service.dart: 500 ms
// per attempt); short here so a run sees many reconnects.
constexpr auto kReconnectDelay = 150ms;
// An error frame for one of its messages: sent again after this long (the same id).
constexpr auto kResendAfterError = 300ms;

std::string key_of(const std::string& recipient, const std::string& id) { return recipient + '\n' + id; }

std::string group_frame(const std::string& id, const std::string& group, const std::string& text) {
    return json{{"_v", 2.1}, {"id", id},
                {"head", {{"type", "group"}, {"to", group}, {"chatid", group}, {"contentType", "text"}, {"action", "message"}}},
                {"body", {{"text", text}}}}
        .dump();
}

} // namespace

Checker::Checker(asio::io_context& io, Cluster& cluster, CheckerOptions options, std::uint32_t seed)
    : io_(io), cluster_(cluster), options_(options), random_(seed), ticker_(io) {}

std::string Checker::rest_post(const std::string& target, const std::string& user, const std::string& key,
                               const std::string& body) {
    const auto rest = cluster_.listen_endpoints("rest-gateway");
    if (rest.empty()) throw std::runtime_error("no rest-gateway is listening");
    asio::io_context io;
    beast::tcp_stream stream(io);
    stream.expires_after(10s);
    stream.connect(rest.front());
    http::request<http::string_body> request(http::verb::post, target, 11);
    request.set(http::field::host, "127.0.0.1");
    request.set(http::field::content_type, "application/json");
    if (!user.empty()) {
        request.set("user", user);
        request.set("accesskey", key);
    }
    request.body() = body;
    request.prepare_payload();
    http::write(stream, request);
    beast::flat_buffer buffer;
    http::response<http::string_body> response;
    http::read(stream, buffer, response);
    if (response.result_int() / 100 != 2)
        throw std::runtime_error("POST " + target + ": " + std::to_string(response.result_int()) + " " + response.body());
    return response.body();
}

void Checker::setup() {
    for (int i = 0; i < options_.users; ++i) {
        User user;
        user.name = "chaos-" + std::to_string(i);
        user.key = json::parse(rest_post("/login", "", "", json{{"username", user.name}, {"authToken", "chaos"}}.dump()))
                       .at("accesskey")
                       .get<std::string>();
        user.gateway = static_cast<std::size_t>(i);
        user.retry = std::make_unique<asio::steady_timer>(io_);
        users_.push_back(std::move(user));
    }
    json members = json::array();
    for (int i = 1; i < options_.group_members && i < options_.users; ++i) members.push_back(users_[i].name);
    const json created = json::parse(rest_post("/group/create", users_[0].name, users_[0].key,
                                               json{{"name", "chaos"}, {"members", members}}.dump()));
    group_id_ = created.at("groupId").get<std::string>();
    for (int i = 0; i < options_.group_members && i < options_.users; ++i) group_members_.push_back(users_[i].name);
    for (std::size_t i = 0; i < users_.size(); ++i) connect(i);
}

void Checker::connect(std::size_t index) {
    User& user = users_[index];
    if (user.connected || user.connecting) return;
    const auto gateways = cluster_.listen_endpoints("ws-gateway");
    if (gateways.empty()) return reconnect_later(index, kReconnectDelay); // every gateway is down
    // Either gateway: the next one each time, as an app behind a load balancer would land.
    user.gateway = (user.gateway + 1) % gateways.size();
    user.connecting = true;
    const std::uint64_t generation = ++user.generation;
    user.connection = std::make_shared<ws::Connection>(io_, user.name);
    user.connection->on_text([this, index, generation](std::string_view text) {
        if (users_[index].generation == generation) on_frame(index, text);
    });
    user.connection->on_closed([this, index, generation](int code) {
        User& u = users_[index];
        if (u.generation != generation) return;
        u.connected = false;
        // 4000 tells the app that a newer socket of its own replaced this one; this user never
        // has two, so it means the server applied a stale connect.
        if (code == 4000) ++replaced_closes_;
        reconnect_later(index, kReconnectDelay);
    });
    user.connection->open(gateways[user.gateway], user.key, "/wss?ack=true", [this, index, generation](bool ok) {
        User& u = users_[index];
        if (u.generation != generation) return;
        u.connecting = false;
        if (!ok) return reconnect_later(index, kReconnectDelay);
        u.connected = true;
        ++reconnects_;
        send_pending(index);
    });
}

void Checker::reconnect_later(std::size_t index, std::chrono::milliseconds delay) {
    User& user = users_[index];
    user.connecting = false;
    user.retry->expires_after(delay);
    user.retry->async_wait([this, index](boost::system::error_code ec) {
        if (!ec) connect(index);
    });
}

void Checker::reconnect_waiting_users() {
    for (std::size_t i = 0; i < users_.size(); ++i) {
        User& user = users_[i];
        if (user.pending.empty() || !user.connected) continue;
        user.connected = false;
        ++user.generation; // callbacks of the old socket are stale from now on
        user.connection->close();
        connect(i);
    }
}

void Checker::send_pending(std::size_t index) {
    User& user = users_[index];
    // Acked ones leave the list here (cheaper than on every SERVER_ACK).
    std::erase_if(user.pending, [this](const std::string& id) { return sent_.at(id).acked; });
    for (const std::string& id : user.pending) {
        user.connection->send(sent_.at(id).frame);
        ++resends_;
    }
}

void Checker::send_new(std::size_t from, bool group) {
    User& user = users_[from];
    const std::string id = user.name + "." + std::to_string(next_id_++);
    Sent sent;
    sent.from = user.name;
    sent.group = group;
    sent.sent_s = std::chrono::duration<double>(SteadyClock::now() - started_).count();
    if (group) {
        sent.to = group_id_;
        sent.frame = group_frame(id, group_id_, "chaos " + id);
    } else {
        std::size_t to = std::uniform_int_distribution<std::size_t>(0, users_.size() - 2)(random_);
        if (to >= from) ++to;
        sent.to = users_[to].name;
        sent.frame = ws::chat_frame(id, user.name, sent.to, "chaos " + id);
    }
    user.pending.push_back(id);
    // Not connected: it waits in the app's outbox and goes with the next connection.
    if (user.connected) user.connection->send(sent.frame);
    sent_.emplace(id, std::move(sent));
}

void Checker::start_traffic() {
    traffic_ = true;
    last_tick_ = SteadyClock::now();
    tick();
}

void Checker::stop_traffic() {
    traffic_ = false;
    ticker_.cancel();
}

void Checker::tick() {
    if (!traffic_) return;
    const auto now = SteadyClock::now();
    const double elapsed = std::chrono::duration<double>(now - last_tick_).count();
    last_tick_ = now;
    chat_credit_ += elapsed * options_.chat_rate;
    group_credit_ += elapsed * options_.group_rate;
    std::uniform_int_distribution<std::size_t> any_user(0, users_.size() - 1);
    std::uniform_int_distribution<std::size_t> any_member(0, group_members_.size() - 1);
    for (; chat_credit_ >= 1; chat_credit_ -= 1) send_new(any_user(random_), false);
    for (; group_credit_ >= 1; group_credit_ -= 1) send_new(any_member(random_), true);
    ticker_.expires_after(kTick);
    ticker_.async_wait([this](boost::system::error_code ec) {
        if (!ec) tick();
    });
}

void Checker::on_frame(std::size_t index, std::string_view text) {
    ws::for_each_message(text, [&](const json& message) { on_message(index, message); });
}

void Checker::on_message(std::size_t index, const json& message) {
    User& user = users_[index];
    const auto id_field = message.find("id");
    const std::string id = id_field != message.end() && id_field->is_string() ? id_field->get<std::string>() : "";
    const std::string content_type = ws::head_field(message, "contentType");
    if (content_type == "SERVER_ACK") {
        if (auto it = sent_.find(id); it != sent_.end() && !it->second.acked) {
            it->second.acked = true;
            it->second.acked_s = std::chrono::duration<double>(SteadyClock::now() - started_).count();
        }
        return;
    }
    if (content_type == "error") {
        std::string reason = "?";
        if (auto body = message.find("body"); body != message.end() && body->is_object() && body->contains("error"))
            reason = (*body)["error"].is_string() ? (*body)["error"].get<std::string>() : reason;
        ++errors_[reason];
        // Not taken: sent again soon with the same id (and on the next reconnect anyway).
        auto it = sent_.find(id);
        if (it == sent_.end() || it->second.acked || it->second.from != user.name) return;
        auto timer = std::make_shared<asio::steady_timer>(io_, kResendAfterError);
        timer->async_wait([this, index, id, generation = user.generation, timer](boost::system::error_code) {
            User& u = users_[index];
            if (u.generation != generation || !u.connected || sent_.at(id).acked) return;
            u.connection->send(sent_.at(id).frame);
            ++resends_;
        });
        return;
    }
    // A receipt for one of our messages: its socket write was its ack; nothing to do.
    if (ws::head_field(message, "action") == "state") return;
    if (ws::head_field(message, "type") == "group") {
        user.connection->send(ws::client_ack_frame(id)); // group copies and group events
    } else {
        const std::string from = ws::head_field(message, "from");
        user.connection->send(ws::receipt_frame("r." + std::to_string(next_id_++), user.name, from, id));
    }
    if (sent_.contains(id)) ++received_[key_of(user.name, id)];
}

bool Checker::quiescent() const {
    for (const auto& [id, sent] : sent_) {
        if (!sent.acked) return false;
        if (!sent.group) {
            if (!received_.contains(key_of(sent.to, id))) return false;
            continue;
        }
        for (const std::string& member : group_members_)
            if (member != sent.from && !received_.contains(key_of(member, id))) return false;
    }
    return true;
}

Tally Checker::tally(bool group) const {
    Tally t;
    auto count = [&](const std::string& recipient, const std::string& id) {
        ++t.acked;
        const auto it = received_.find(key_of(recipient, id));
        if (it == received_.end()) {
            ++t.lost;
            return;
        }
        ++t.delivered;
        t.duplicates += it->second - 1;
    };
    for (const auto& [id, sent] : sent_) {
        if (sent.group != group) continue;
        if (!sent.acked) {
            ++t.unacked;
            continue;
        }
        if (!group) {
            count(sent.to, id);
            continue;
        }
        for (const std::string& member : group_members_)
            if (member != sent.from) count(member, id);
    }
    return t;
}

void Checker::print_lost(std::size_t limit) const {
    std::size_t printed = 0;
    auto report = [&](const std::string& recipient, const std::string& id, const Sent& sent) {
        if (received_.contains(key_of(recipient, id)) || printed++ >= limit) return;
        std::cout << "chaos: lost " << (sent.group ? "group copy " : "message ") << id << " for " << recipient
                  << ": sent at " << sent.sent_s << " s, acked at " << sent.acked_s << " s; kills within 3 s:";
        for (const auto& [name, at] : cluster_.kill_log()) {
            const double t = std::chrono::duration<double>(at - started_).count();
            if (t > sent.sent_s - 3 && t < sent.acked_s + 3) std::cout << ' ' << name << " at " << t << " s";
        }
        std::cout << std::endl;
    };
    for (const auto& [id, sent] : sent_) {
        if (!sent.acked) continue;
        if (!sent.group) {
            report(sent.to, id, sent);
            continue;
        }
        for (const std::string& member : group_members_)
            if (member != sent.from) report(member, id, sent);
    }
}

void Checker::close_all() {
    stop_traffic();
    for (User& user : users_) {
        ++user.generation;
        user.retry->cancel();
        if (user.connection) user.connection->close();
    }
}

} // namespace vartalap::chaos
