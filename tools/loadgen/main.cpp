// vartalap-loadgen: measures a running server as real clients (REST login, one WebSocket
// per user). Three modes:
//
//   pairs (default)  vartalap-loadgen --pairs 50 --seconds 10 [--window 8] [--rate 0] [--receipts]
//                    throughput and send->deliver latency: each user sends to its peer, keeping
//                    `--window` messages in flight; the recipient answers every message with a
//                    CLIENT_ACK, or with --receipts with a `delivered` receipt to the sender (the
//                    sender counts the message when the receipt arrives) (pairs.cpp)
//   idle             vartalap-loadgen --idle 10000 --server-pid PID
//                    the server's RSS per idle authenticated WebSocket (idle.cpp)
//   drain            vartalap-loadgen --drain-users 1000 --drain-messages 100 --server-pid PID
//                    offline messages stored, then every user reconnects at once (drain.cpp)
//
// Closed loop (--rate 0, the default): each sender sends its next message as soon as one of
// its messages completes, keeping `--window` in flight. Open loop (--rate N): N messages per
// second in total, message k due at start + k/N (a deadline schedule, so late timer wake-ups
// do not drift), dealt round-robin over the senders; `--window` stays a cap on the messages
// in flight per sender, and a message due while its sender is at the cap waits for a slot
// (counted as "deferred", and its wait shows in the due->deliver latency).
//
// Prints a report and a last line "RESULT key=value ..." for scripts (tools/bench/run.sh).
// --server-pid (repeatable, or comma-separated: a multi-process server) adds the server's
// CPU over the measured window and per message; --perf-stat adds its system calls and
// context switches per message (tools/bench/kernel_counters.hpp). --ws-port may be given
// several times: user i connects to the (i mod n)-th port, so the two users of a pair sit
// on different gateways. Thread: one io_context thread.
#include "tools/loadgen/modes.hpp"

#include <CLI/CLI.hpp>

#include <chrono>
#include <iostream>

namespace vartalap::loadgen {

std::string run_prefix(const std::string& what) {
    return what + "-" + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 1000000007) + "-";
}

} // namespace vartalap::loadgen

int main(int argc, char** argv) {
    using vartalap::loadgen::Options;
    CLI::App app{"vartalap-loadgen: throughput, latency, idle memory and offline drain of a running Vartalap server"};
    Options o;
    app.add_option("--host", o.host);
    app.add_option("--ws-port", o.ws_ports, "WebSocket port(s); user i uses the (i mod n)-th")->delimiter(',');
    app.add_option("--http-port", o.http_port);
    app.add_option("--pairs", o.pairs, "sender/receiver pairs (each user sends to its peer)");
    app.add_option("--window", o.window, "messages in flight per sender");
    app.add_option("--seconds", o.seconds, "measured duration");
    app.add_option("--warmup", o.warmup, "unmeasured seconds first");
    app.add_option("--rate", o.rate,
                   "open loop: messages per second in total, evenly paced (0: closed loop, as fast as "
                   "--window allows)")
        ->check(CLI::NonNegativeNumber);
    app.add_flag("--receipts", o.receipts,
                 "the recipient answers each message with a delivered receipt (not a CLIENT_ACK); the sender "
                 "counts the message when the receipt arrives");
    app.add_option("--text-bytes", o.text_bytes, "length of each message's body.text");
    app.add_option("--server-pid", o.server_pids,
                   "the server's process(es): CPU (/proc/PID/stat) and RSS, summed over them")
        ->delimiter(',');
    app.add_flag("--perf-stat", o.perf_stat,
                 "system calls and context switches of the server pids over the measured window (perf stat; "
                 "context switches from /proc without perf)");
    app.add_option("--parallel", o.parallel, "WebSocket handshakes in flight while connecting");
    app.add_option("--idle", o.idle, "idle mode: open this many authenticated WebSockets and report server RSS per connection");
    app.add_option("--drain-users", o.drain_users, "drain mode: this many offline users receive stored messages");
    app.add_option("--drain-messages", o.drain_messages, "drain mode: stored messages per user");
    app.add_option("--drain-senders", o.drain_senders, "drain mode: users sending the stored messages");
    app.add_option("--drain-timeout", o.drain_timeout, "drain mode: seconds allowed for the fill and for the drain");
    CLI11_PARSE(app, argc, argv);
    if (o.window < 1 || o.pairs < 1 || o.ws_ports.empty() || o.parallel < 1) {
        std::cerr << "vartalap-loadgen: --pairs, --window and --parallel must be at least 1\n";
        return 2;
    }
    if (o.idle > 0) return vartalap::loadgen::run_idle(o);
    if (o.drain_users > 0) return vartalap::loadgen::run_drain(o);
    return vartalap::loadgen::run_pairs(o);
}
