// Group fan-out benchmark: what one message to a 1000-member group costs the group-router.
//
// Real pieces: the group store (LMDB, one 1000-member group), its Reader, the
// GroupRouterCore with its LMDB outbox (fsync per commit unless --no-sync), envelope
// encoding, and ZeroMQ PUSH sockets into two session-shard PULLs over inproc, each drained
// by its own thread (the drains stand in for sessions and count what arrives).
// Measured per message: wall time until every copy has reached its shard, and CPU time of
// the router thread alone (CLOCK_THREAD_CPUTIME_ID) and of the whole process.
//
//   build/<dir>/tools/vartalap-group-fanout-bench [messages] [batch] [--no-sync]
//
// Thread: main runs the router; one drain thread per shard owns its PULL socket.
#include "common/zmq/socket.hpp"
#include "common/store/group_store.hpp"
#include "daemons/group_router/group_router_core.hpp"
#include "topology/shard_map.hpp"

#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>
#include <unistd.h>

using namespace vartalap;
using namespace vartalap::group_router;

namespace {

constexpr int kMembers = 1000;
constexpr int kShards = 2;

double thread_cpu_ms() {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

double process_cpu_ms() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e3 + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e3;
}

class PushLinks final : public GroupRouterOutbox {
public:
    std::vector<zmq::socket_t> pushes;
    bool to_session(std::size_t shard, const Envelope& copy) override {
        return send_envelope(pushes[shard], copy, scratch_) == SendResult::ok;
    }
    bool to_group(const Envelope&) override { return false; }
    void to_gateway(std::string_view, const Envelope&) override { ++acks; }
    std::uint64_t acks = 0;

private:
    std::string scratch_;
};

} // namespace

int main(int argc, char** argv) {
    int messages = argc > 1 ? std::atoi(argv[1]) : 200;
    int batch = argc > 2 ? std::atoi(argv[2]) : 1;
    const bool no_sync = argc > 3 && std::strcmp(argv[3], "--no-sync") == 0;
    if (messages <= 0 || batch <= 0) {
        std::fprintf(stderr, "usage: %s [messages] [batch] [--no-sync]\n", argv[0]);
        return 2;
    }
    spdlog::set_level(spdlog::level::warn);
    const auto dir = std::filesystem::temp_directory_path() / ("vartalap-fanout-bench-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);

    // The group store: one group of kMembers members.
    std::vector<std::string> members;
    {
        auto store = group_store::shared_env(dir / "group-1", {});
        lmdb::Txn txn(*store, lmdb::Txn::read_write);
        auto groups = lmdb::Db::open(txn, group_store::kGroupsDb);
        group_store::GroupRecord record;
        record.name = "bench";
        for (int i = 0; i < kMembers; ++i) {
            members.push_back("+91" + std::to_string(9000000000LL + i * 7919));
            record.members.push_back({members.back(), i == 0 ? group_store::Role::admin : group_store::Role::user});
        }
        std::string bytes;
        group_store::encode(record, bytes);
        groups.put(txn, "big-group", bytes);
        lmdb::check(txn.commit(), "bench: group store");
    }

    zmq::context_t context(1);
    SystemClock clock;
    PushLinks links;
    std::vector<zmq::socket_t> pulls;
    for (int s = 0; s < kShards; ++s) {
        pulls.push_back(make_socket(context, zmq::socket_type::pull));
        pulls.back().bind("inproc://bench-session-" + std::to_string(s));
        auto push = make_socket(context, zmq::socket_type::push);
        push.set(zmq::sockopt::immediate, 1);
        push.connect("inproc://bench-session-" + std::to_string(s));
        links.pushes.push_back(std::move(push));
    }
    std::atomic<std::uint64_t> received{0};
    std::atomic<bool> stop{false};
    std::vector<std::thread> drains;
    for (int s = 0; s < kShards; ++s)
        drains.emplace_back([&, s] {
            zmq::socket_t& pull = pulls[s];
            Incoming incoming;
            while (!stop.load()) {
                zmq::pollitem_t item{pull.handle(), 0, ZMQ_POLLIN, 0};
                zmq::poll(&item, 1, std::chrono::milliseconds(20));
                while (receive_envelope(pull, false, incoming) == ReceiveResult::ok) received.fetch_add(1);
            }
        });

    lmdb::EnvOptions outbox_options;
    outbox_options.no_sync = no_sync;
    auto outbox_env = group_store::shared_env(dir / "group-router-1", outbox_options);
    group_store::Reader membership(dir / "group-1", clock);
    const auto shard_of = [](std::string_view user) -> std::size_t {
        return topology::slot_of(user) * kShards / topology::kSlotCount;
    };
    GroupRouterConfig config;
    config.deletion_delay_ms = 0;
    GroupRouterCore core(*outbox_env, membership, links, kShards, shard_of, clock, config);

    // A typical text message as a gateway writes it (~400 bytes).
    const std::string payload = nlohmann::json{
        {"_v", 2.1}, {"id", "m"}, {"action", "message"}, {"chatId", "big-group"}, {"chatType", "group"},
        {"from", members[0]}, {"module", "message"}, {"msgId", "m"}, {"text", "hello everyone in the group"},
        {"to", "big-group"}, {"type", "text"},
        {"head", {{"type", "group"}, {"to", "big-group"}, {"from", members[0]}, {"chatid", "big-group"},
                  {"contentType", "text"}, {"action", "message"}}},
        {"body", {{"text", "hello everyone in the group"}, {"state", "new"}, {"ts", 1700000000}}}}.dump();

    const std::uint64_t expected = static_cast<std::uint64_t>(messages) * (kMembers - 1);
    std::vector<Envelope> envelopes;
    const auto wall_start = std::chrono::steady_clock::now();
    const double thread_start = thread_cpu_ms();
    const double process_start = process_cpu_ms();
    for (int sent = 0; sent < messages;) {
        envelopes.clear();
        for (int i = 0; i < batch && sent < messages; ++i, ++sent) {
            Envelope e;
            e.kind = Kind::group_message;
            e.id = "m-" + std::to_string(sent);
            e.channel = "group";
            e.from = members[0];
            e.to = "big-group";
            e.origin_gateway = "ws-1";
            e.connection = 1;
            e.flags = flag_group | flag_wants_server_ack;
            e.method = "chat";
            e.payload = payload;
            envelopes.push_back(std::move(e));
        }
        core.handle_batch(envelopes);
        while (core.outbox().has_pending()) { // a shard at its high-water mark: retry
            std::this_thread::sleep_for(std::chrono::microseconds(200));
            core.on_timer();
        }
    }
    while (received.load() < expected) std::this_thread::sleep_for(std::chrono::microseconds(200));
    const double wall_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - wall_start).count();
    const double thread_ms = thread_cpu_ms() - thread_start;
    const double process_ms = process_cpu_ms() - process_start;
    core.on_timer(); // delete the last sent batches

    stop.store(true);
    for (auto& t : drains) t.join();
    for (auto& p : links.pushes) p.close();
    for (auto& p : pulls) p.close();

    std::printf("group fan-out: %d messages x %d members (%d copies each), batch %d, outbox %s\n", messages,
                kMembers, kMembers - 1, batch, no_sync ? "MDB_NOSYNC" : "fsync per commit");
    std::printf("  copies delivered to shards: %llu of %llu, server acks: %llu\n",
                static_cast<unsigned long long>(received.load()), static_cast<unsigned long long>(expected),
                static_cast<unsigned long long>(links.acks));
    std::printf("  per message: wall %.3f ms, router thread CPU %.3f ms, process CPU %.3f ms\n", wall_ms / messages,
                thread_ms / messages, process_ms / messages);
    std::printf("  per copy:    router thread CPU %.3f us; %.0f copies/s (wall)\n",
                thread_ms * 1000 / static_cast<double>(expected), expected / (wall_ms / 1000));
    std::filesystem::remove_all(dir);
    return received.load() == expected ? 0 : 1;
}
