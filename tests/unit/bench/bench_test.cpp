// Thread: the test's. Unit tests for tools/bench/measure.hpp, kernel_counters.hpp and the
// frames of ws_client.hpp.
#include "tools/bench/kernel_counters.hpp"
#include "tools/bench/measure.hpp"
#include "tools/bench/ws_client.hpp"

#include "common/wire/client_message.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

namespace vartalap::bench {
namespace {

// A sender whose sends are recorded (key = sequence number).
struct Recorder {
    Stats stats;
    std::vector<int> sent;
    Flow<int> flow{stats, [this](Clock::time_point due) {
                       const int key = static_cast<int>(sent.size());
                       sent.push_back(key);
                       flow.sent(key, due);
                   }};
};

TEST(Flow, ClosedLoopKeepsTheWindowAndSendsOnePerDelivery) {
    Recorder r;
    r.stats.measuring = true;
    r.flow.start(3, false);
    EXPECT_EQ(r.sent.size(), 3u);
    r.flow.delivered(1);
    EXPECT_EQ(r.sent.size(), 4u);
    EXPECT_EQ(r.stats.delivered, 1u);
    EXPECT_EQ(r.stats.latency_us.size(), 1u);
    r.flow.delivered(1); // again: a duplicate, nothing sent
    EXPECT_EQ(r.sent.size(), 4u);
    EXPECT_EQ(r.stats.duplicates, 1u);
    EXPECT_EQ(r.stats.delivered, 1u);
}

TEST(Flow, WithReceiptsAMessageCompletesOnlyWhenItsReceiptArrives) {
    Recorder r;
    r.stats.receipts = true;
    r.stats.measuring = true;
    r.flow.start(2, false);
    r.flow.seen(0); // delivered to the peer: latency, but the window stays full
    EXPECT_EQ(r.sent.size(), 2u);
    EXPECT_EQ(r.stats.delivered, 0u);
    EXPECT_EQ(r.stats.latency_us.size(), 1u);
    r.flow.seen(0); // redelivered
    EXPECT_EQ(r.stats.duplicates, 1u);
    r.flow.completed(0); // the receipt
    EXPECT_EQ(r.sent.size(), 3u);
    EXPECT_EQ(r.stats.delivered, 1u);
    EXPECT_EQ(r.stats.round_trip_us.size(), 1u);
    r.flow.completed(0); // a second receipt for it changes nothing
    EXPECT_EQ(r.sent.size(), 3u);
    EXPECT_EQ(r.stats.delivered, 1u);
}

TEST(Flow, OpenLoopDefersWhatIsDueAtTheCapAndSendsItOnCompletion) {
    Recorder r;
    r.stats.measuring = true;
    r.flow.start(1, true);
    EXPECT_TRUE(r.sent.empty());
    r.flow.offer(Clock::now());
    r.flow.offer(Clock::now()); // at the cap
    EXPECT_EQ(r.sent.size(), 1u);
    EXPECT_EQ(r.stats.deferred, 1u);
    r.flow.delivered(0);
    EXPECT_EQ(r.sent.size(), 2u);
    EXPECT_EQ(r.stats.schedule_latency_us.size(), 1u);
    r.flow.stop();
    r.flow.delivered(1);
    EXPECT_EQ(r.sent.size(), 2u); // stopped: nothing more
}

TEST(Flow, NothingIsCountedOutsideTheMeasuredWindow) {
    Recorder r;
    r.flow.start(1, false);
    r.flow.delivered(0);
    EXPECT_EQ(r.stats.delivered, 0u);
    EXPECT_TRUE(r.stats.latency_us.empty());
    EXPECT_EQ(r.sent.size(), 2u); // the loop still runs
}

TEST(DrainCount, CountsDistinctMessagesPerRecipient) {
    DrainCount<std::string> count(2, 3);
    count.arrived(0, "a");
    count.arrived(0, "a"); // redelivered
    count.arrived(1, "a"); // another recipient's "a"
    EXPECT_FALSE(count.done());
    count.arrived(1, "b");
    EXPECT_TRUE(count.done());
    CpuWindow cpu({});
    cpu.begin();
    cpu.end();
    std::ostringstream out;
    EXPECT_EQ(count.report(out, "test", cpu, Clock::now(), 10), 0);
    EXPECT_NE(out.str().find("3 of 3 messages"), std::string::npos);
    EXPECT_NE(out.str().find("duplicates 1"), std::string::npos);
    EXPECT_NE(out.str().find("RESULT fill_msgs_per_s=10 drain_msgs=3 "), std::string::npos);
}

TEST(ResultLine, IsOneLineOfKeyValuePairs) {
    Stats stats;
    stats.delivered = 50;
    stats.latency_us = {1, 2, 3, 4};
    std::ostringstream out;
    ResultLine result;
    result.add_stats(stats, 10).add("counters", "perf");
    result.print(out);
    EXPECT_EQ(out.str(), "RESULT msgs_per_s=5 p50_us=3 p99_us=4 counters=perf\n");
}

TEST(Proc, ReadsThisProcessAndRefusesAMissingOne) {
    EXPECT_TRUE(process_cpu_seconds(getpid()).has_value());
    const auto rss = rss_kib(getpid());
    ASSERT_TRUE(rss.has_value());
    EXPECT_GT(*rss, 0);
    EXPECT_FALSE(total_rss_kib({getpid(), -1}).has_value());
    EXPECT_FALSE(total_cpu_seconds({-1}).has_value());
}

TEST(KernelCounters, WithoutPerfCountsContextSwitchesFromProc) {
    KernelCounters counters({getpid()}, false);
    counters.begin();
    for (int i = 0; i < 20; ++i) usleep(100); // each sleep is a voluntary context switch
    counters.end();
    EXPECT_EQ(counters.source(), "proc");
    EXPECT_FALSE(counters.syscalls().has_value());
    EXPECT_GE(counters.context_switches(), 20);
}

TEST(KernelCounters, WhenPerfCannotRunFallsBackToProcAtOnce) {
    const std::string path = getenv("PATH") ? getenv("PATH") : "";
    setenv("PATH", "/nonexistent", 1); // no perf to exec
    {
        KernelCounters counters({getpid()}, true);
        const auto start = Clock::now();
        counters.begin();
        usleep(1000);
        counters.end();
        EXPECT_LT(Clock::now() - start, std::chrono::seconds(2)); // not the 5 s ack deadline
        EXPECT_EQ(counters.source(), "proc");
        EXPECT_GE(counters.context_switches(), 1);
    }
    setenv("PATH", path.c_str(), 1);
}

// The loadgen's frames, through the server's own codec.
Envelope parsed(const std::string& frame) {
    Envelope envelope;
    std::string error;
    EXPECT_TRUE(parse_client_message(frame, ClientOrigin{"alice", "ws-1", 1, false, 0}, envelope, error)) << error;
    return envelope;
}

TEST(Frames, AreAMessageAReceiptAndAnAckToTheServer) {
    const Envelope message = parsed(ws::chat_frame("m1", "alice", "bob", std::string(64, 'x')));
    EXPECT_EQ(message.route, Route::chat);
    EXPECT_EQ(message.to, "bob");
    EXPECT_EQ(message.id, "m1");

    const Envelope receipt = parsed(ws::receipt_frame("r1", "alice", "bob", "m1"));
    EXPECT_EQ(receipt.route, Route::receipt);
    EXPECT_EQ(receipt.to, "bob");
    EXPECT_EQ(receipt.ids, std::vector<std::string>{"m1"});

    const Envelope ack = parsed(ws::client_ack_frame("m1"));
    EXPECT_EQ(ack.route, Route::ack);
    EXPECT_EQ(ack.ids, std::vector<std::string>{"m1"});
}

TEST(Frames, EveryMessageOfAFrameIsVisited) {
    std::vector<std::string> ids;
    auto collect = [&](const nlohmann::json& m) { ids.push_back(m.at("id").get<std::string>()); };
    ws::for_each_message(R"([{"id":"a"},{"id":"b"},7])", collect);
    ws::for_each_message(R"({"id":"c"})", collect);
    ws::for_each_message("pong", collect);
    EXPECT_EQ(ids, (std::vector<std::string>{"a", "b", "c"}));
    EXPECT_EQ(ws::head_field(nlohmann::json::parse(R"({"head":{"action":"state"}})"), "action"), "state");
    EXPECT_EQ(ws::head_field(nlohmann::json::parse(R"({"head":{}})"), "action"), "");
}

} // namespace
} // namespace vartalap::bench
