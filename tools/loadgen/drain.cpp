// Drain mode: offline messages delivered when their users come back. Fill: `drain_senders`
// users (connected with ?ack=true) send `drain_messages` 64-byte text messages to each of
// `drain_users` users who are logged in but not connected, `window` in flight per sender,
// each confirmed by its SERVER_ACK (durable at the session). Then the senders close and the
// server is left until it is quiet (the sessions hand the messages to persistence). Drain:
// every recipient opens its WebSocket at once (at most `parallel` handshakes in flight);
// each counts the distinct messages it receives and acknowledges each with a CLIENT_ACK;
// the clock runs from the first connect until the last message has arrived. Reports fill
// and drain rates.
#include "tools/bench/measure.hpp"
#include "tools/bench/ws_client.hpp"
#include "tools/loadgen/modes.hpp"

#include <iostream>

namespace vartalap::loadgen {
namespace {

namespace bench = vartalap::bench;
namespace ws = vartalap::bench::ws;
using bench::Clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// One sender of the fill: its share of (recipient, message) pairs, `window` unconfirmed.
struct Sender {
    std::shared_ptr<ws::Connection> connection;
    std::vector<std::string> recipients;
    std::size_t next = 0, total = 0, in_flight = 0, confirmed = 0, errors = 0;
};

} // namespace

int run_drain(const Options& o) {
    boost::asio::io_context io(1);
    const std::string prefix = run_prefix("drain");
    const auto users = static_cast<std::size_t>(o.drain_users);
    const auto per_user = static_cast<std::size_t>(o.drain_messages);
    const std::string text(o.text_bytes, 'x');
    std::vector<std::shared_ptr<ws::Connection>> receivers, sender_connections;
    std::vector<std::string> receiver_keys, sender_keys;
    std::vector<Sender> senders(static_cast<std::size_t>(std::max(1, o.drain_senders)));
    try {
        ws::Login login(o.host, o.http_port);
        for (std::size_t i = 0; i < users; ++i) {
            receivers.push_back(std::make_shared<ws::Connection>(io, prefix + "u" + std::to_string(i)));
            receiver_keys.push_back(login.key(receivers.back()->user()));
            senders[i % senders.size()].recipients.push_back(receivers.back()->user());
        }
        for (std::size_t j = 0; j < senders.size(); ++j) {
            senders[j].connection = std::make_shared<ws::Connection>(io, prefix + "s" + std::to_string(j));
            sender_keys.push_back(login.key(senders[j].connection->user()));
            sender_connections.push_back(senders[j].connection);
        }
    } catch (const std::exception& e) {
        std::cerr << "vartalap-loadgen: " << e.what() << '\n';
        return 1;
    }

    // Fill.
    const std::size_t total = users * per_user;
    std::size_t confirmed = 0;
    auto send_more = [&](Sender& s) {
        while (s.in_flight < static_cast<std::size_t>(o.window) && s.next < s.total) {
            const std::size_t k = s.next++;
            const std::string& to = s.recipients[k % s.recipients.size()];
            s.connection->send(ws::chat_frame(s.connection->user() + "-" + std::to_string(k), s.connection->user(), to, text));
            ++s.in_flight;
        }
    };
    for (auto& s : senders) {
        s.total = s.recipients.size() * per_user;
        s.connection->on_text([&, sender = &s](std::string_view frame) {
            ws::for_each_message(frame, [&](const ws::json& m) {
                if (ws::head_field(m, "contentType") == "SERVER_ACK" && sender->in_flight > 0) {
                    --sender->in_flight;
                    ++confirmed;
                } else {
                    ++sender->errors;
                }
            });
            send_more(*sender);
        });
    }
    if (ws::open_all(io, sender_connections, sender_keys, o.ws_endpoints(), "/wss?ack=true", o.parallel,
                     Clock::now() + std::chrono::seconds(30)) != senders.size()) {
        std::cerr << "vartalap-loadgen: not every sender's WebSocket opened\n";
        return 1;
    }
    const auto fill_start = Clock::now();
    for (auto& s : senders) send_more(s);
    const auto fill_deadline = fill_start + bench::to_duration(o.drain_timeout);
    while (confirmed < total && Clock::now() < fill_deadline) io.run_one_until(fill_deadline);
    const double fill_s = seconds_since(fill_start);
    std::size_t errors = 0;
    for (auto& s : senders) errors += s.errors;
    std::cout << "fill: " << confirmed << " of " << total << " messages (" << users << " offline users x " << per_user
              << ") confirmed by SERVER_ACK in " << fill_s << " s (" << static_cast<double>(confirmed) / fill_s
              << " msg/s, " << senders.size() << " senders, window " << o.window << "), other frames: " << errors << '\n';
    if (confirmed < total) return 1;
    for (auto& s : senders) s.connection->close();
    if (!o.server_pids.empty()) {
        const auto settle_start = Clock::now();
        const bool quiet = bench::wait_until_quiet(o.server_pids, settle_start + std::chrono::seconds(60));
        std::cout << "server quiet after the fill: " << (quiet ? "yes" : "no (60 s)") << ", waited "
                  << seconds_since(settle_start) << " s\n";
    }

    // Drain: every recipient at once.
    bench::DrainCount<std::string> count(users, total);
    for (std::size_t i = 0; i < users; ++i) {
        receivers[i]->on_text([&, i](std::string_view frame) {
            ws::for_each_message(frame, [&](const ws::json& m) {
                const auto id = m.find("id");
                if (id == m.end() || !id->is_string() || ws::head_field(m, "action") != "message") return;
                receivers[i]->send(ws::client_ack_frame(id->get<std::string>()));
                count.arrived(i, id->get<std::string>());
            });
        });
    }
    bench::CpuWindow cpu(o.server_pids);
    cpu.begin();
    const auto drain_start = Clock::now();
    const std::size_t opened =
        ws::open_all(io, receivers, receiver_keys, o.ws_endpoints(), "/wss", o.parallel, drain_start + std::chrono::seconds(60));
    const double connect_s = seconds_since(drain_start);
    const auto drain_deadline = drain_start + bench::to_duration(o.drain_timeout);
    while (!count.done() && Clock::now() < drain_deadline) io.run_one_until(drain_deadline);
    cpu.end();
    return count.report(std::cout,
                        std::to_string(opened) + " of " + std::to_string(users) + " users reconnected at once (at most " +
                            std::to_string(o.parallel) + " handshakes in flight; all open after " +
                            std::to_string(connect_s) + " s), each message acked by CLIENT_ACK",
                        cpu, drain_start, static_cast<double>(confirmed) / fill_s);
}

} // namespace vartalap::loadgen
