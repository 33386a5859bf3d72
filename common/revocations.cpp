// Thread: the owning gateway's (revocations.hpp).
#include "common/revocations.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>

namespace vartalap {

using nlohmann::json;

std::string RevocationList::id(std::string_view user, std::string_view key) {
    std::string out(user);
    out.push_back('\0');
    out.append(key);
    return out;
}

std::optional<Envelope> RevocationList::poll(std::uint64_t now_ms, std::uint64_t request_id,
                                             std::uint64_t interval_ms, std::uint64_t timeout_ms) {
    if (timeout_ms == 0) timeout_ms = std::max<std::uint64_t>(2 * interval_ms, 500);
    if (in_flight_) {
        if (now_ms - sent_at_ms_ < timeout_ms) return std::nullopt;
        ++polls_failed_; // lost; ask again
    } else if (!more_ && sent_at_ms_ != 0 && now_ms - sent_at_ms_ < interval_ms) {
        return std::nullopt;
    }
    Envelope request;
    request.kind = Kind::request;
    request.method = "revocations";
    request.request_id = request_id;
    request.payload = json{{"epoch", epoch_}, {"since", since_}}.dump();
    in_flight_ = true;
    if (in_flight_ids_.size() == kRemembered) in_flight_ids_.erase(in_flight_ids_.begin());
    in_flight_ids_.push_back(request_id);
    sent_at_ms_ = now_ms;
    return request;
}

void RevocationList::send_failed() {
    if (!in_flight_ids_.empty()) in_flight_ids_.pop_back();
    in_flight_ = !in_flight_ids_.empty();
    ++polls_failed_;
}

bool RevocationList::is_reply(const Envelope& reply) const {
    return in_flight_ && std::find(in_flight_ids_.begin(), in_flight_ids_.end(), reply.request_id) !=
                             in_flight_ids_.end();
}

bool RevocationList::apply(const Envelope& reply, std::uint64_t now_seconds,
                           std::vector<std::pair<std::string, std::string>>& added) {
    in_flight_ = false;
    in_flight_ids_.clear();
    const json body = json::parse(reply.payload, nullptr, false);
    if (reply.status != Status::ok || !body.is_object()) {
        ++polls_failed_;
        return false;
    }
    auto epoch = body.find("epoch");
    auto entries = body.find("entries");
    auto complete = body.find("complete");
    if (epoch == body.end() || !epoch->is_string() || entries == body.end() ||
        !entries->is_array()) {
        ++polls_failed_;
        return false;
    }
    if (*epoch != epoch_) {
        // A first answer, or a profile store made anew: its list replaces ours.
        entries_.clear();
        epoch_ = epoch->get<std::string>();
        since_ = 0;
    }
    for (const auto& entry : *entries) {
        if (!entry.is_object()) continue;
        auto seq = entry.find("seq");
        auto user = entry.find("user");
        auto key = entry.find("key");
        auto expires = entry.find("expires");
        if (seq == entry.end() || !seq->is_number_unsigned() || user == entry.end() ||
            !user->is_string() || key == entry.end() || !key->is_string())
            continue;
        since_ = std::max(since_, seq->get<std::uint64_t>());
        const std::uint64_t until =
            expires != entry.end() && expires->is_number_unsigned() ? expires->get<std::uint64_t>() : 0;
        if (until != 0 && until <= now_seconds) continue; // refused anyway by its age
        if (entries_.emplace(id(user->get_ref<const std::string&>(), key->get_ref<const std::string&>()), until).second)
            added.emplace_back(user->get<std::string>(), key->get<std::string>());
    }
    more_ = complete != body.end() && complete->is_boolean() && !complete->get<bool>();
    if (!more_) synced_ = true;
    if (now_seconds >= last_prune_s_ + 60) {
        last_prune_s_ = now_seconds;
        std::erase_if(entries_, [now_seconds](const auto& item) {
            return item.second != 0 && item.second <= now_seconds;
        });
    }
    return true;
}

bool RevocationList::revoked(std::string_view user, std::string_view key) const {
    return !entries_.empty() && entries_.contains(id(user, key));
}

} // namespace vartalap
