// Thread: the test's (see group_load.hpp).
#include "tests/integration/support/group_load.hpp"
#include "tests/support/deadline.hpp"

#include <gtest/gtest.h>

#include <set>
#include <thread>

namespace vartalap::testing {

using nlohmann::json;

GroupLoad::GroupLoad(int rest_port, std::string prefix, int members)
    : port_(rest_port), prefix_(std::move(prefix)) {
    for (int i = 0; i < members; ++i) names_.push_back(prefix_ + "-" + std::to_string(i));
}

std::map<std::string, std::string> GroupLoad::auth(const LoggedIn& who) const {
    return {{"user", who.user}, {"accesskey", who.access_key}};
}

LoggedIn GroupLoad::login(const std::string& user) {
    const json body = {{"username", user}, {"authToken", "dev-token"},
                       {"notificationToken", "fcm-" + user}, {"deviceId", "default"}};
    const auto response = http_request("127.0.0.1", port_, "POST", "/v1.0/login", body.dump(), {});
    const auto reply = json::parse(response.body, nullptr, false);
    if (response.status != 200 || !reply.is_object() || !reply.contains("accesskey"))
        throw std::runtime_error("login of " + user + " failed: " + response.body);
    return {user, reply["accesskey"].get<std::string>()};
}

void GroupLoad::create_group() {
    sender_ = login(prefix_ + "-sender");
    for (const std::string& name : names_) members_.push_back(login(name));
    const auto created = http_request("127.0.0.1", port_, "POST", "/v1.0/group/create",
                                      json{{"name", prefix_}, {"members", names_}}.dump(), auth(sender_));
    ASSERT_EQ(created.status, 200) << created.body;
    group_ = json::parse(created.body)["groupId"].get<std::string>();
}

std::optional<std::chrono::steady_clock::time_point> GroupLoad::send_messages(int count) {
    json messages = json::array();
    for (int i = 0; i < count; ++i) {
        const std::string id = prefix_ + "-m" + std::to_string(sent_ + i);
        messages.push_back({{"_v", 2.1},
                            {"id", id},
                            {"head", {{"type", "group"}, {"to", group_}, {"chatid", group_},
                                      {"contentType", "text"}, {"action", "message"}}},
                            {"body", {{"text", "copy of " + id}}}});
    }
    const auto response = http_request("127.0.0.1", port_, "POST", "/v1.0/send", messages.dump(),
                                       auth(sender_), std::chrono::seconds(30));
    const auto answered = std::chrono::steady_clock::now();
    sent_ += count;
    const auto reply = json::parse(response.body, nullptr, false);
    if (response.status != 200 || !reply.is_object() || !reply["results"].is_array()) {
        ADD_FAILURE() << "POST /send: " << response.status << " " << response.body.substr(0, 300);
        return std::nullopt;
    }
    int accepted = 0;
    for (const auto& result : reply["results"])
        if (result.value("status", "") == "accepted") ++accepted;
    if (accepted != count) {
        ADD_FAILURE() << accepted << " of " << count << " accepted: " << response.body.substr(0, 300);
        return std::nullopt;
    }
    return answered;
}

bool GroupLoad::read_copies(const LoggedIn& member, std::size_t& distinct, std::size_t& total) {
    std::set<std::string> ids;
    total = 0;
    const std::string wanted = prefix_ + "-m";
    std::string cursor;
    for (int page = 0; page < 100; ++page) {
        const std::string target = "/v1.0/messages?limit=500" + (cursor.empty() ? "" : "&cursor=" + cursor);
        const auto response = http_request("127.0.0.1", port_, "GET", target, {}, auth(member));
        const auto reply = json::parse(response.body, nullptr, false);
        if (response.status != 200 || !reply.is_object() || !reply["messages"].is_array()) return false;
        for (const auto& message : reply["messages"]) {
            const std::string id = message.value("id", "");
            if (id.rfind(wanted, 0) != 0) continue; // the group's creation event
            ++total;
            ids.insert(id);
        }
        if (!reply["next"].is_string()) break;
        cursor = reply["next"].get<std::string>();
    }
    distinct = ids.size();
    return true;
}

GroupLoad::Count GroupLoad::wait_for_every_copy(std::chrono::milliseconds deadline) {
    const auto until = std::chrono::steady_clock::now() + test::scaled(deadline);
    std::vector<std::size_t> distinct(members_.size(), 0), total(members_.size(), 0);
    while (true) {
        Count count;
        for (std::size_t i = 0; i < members_.size(); ++i) {
            if (distinct[i] < static_cast<std::size_t>(sent_))
                read_copies(members_[i], distinct[i], total[i]);
            count.present += distinct[i];
            count.duplicates += total[i] - distinct[i];
            if (distinct[i] == static_cast<std::size_t>(sent_)) ++count.complete;
        }
        if (count.complete == members_.size() || std::chrono::steady_clock::now() >= until) return count;
        // The copies are still on their way to persistence: read the others again shortly.
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
}

} // namespace vartalap::testing
