// Thread: the ws-gateway's thread (unconfirmed.hpp).
#include "daemons/ws_gateway/unconfirmed.hpp"

#include <algorithm>
#include <vector>

namespace vartalap::ws_gateway {

bool UnconfirmedMessages::answered(const Envelope& message) {
    return message.route != Route::ack && !message.has(flag_ephemeral) && !message.id.empty();
}

void UnconfirmedMessages::make_key(std::string& out, std::uint64_t connection, std::string_view id) {
    out.resize(sizeof connection);
    for (std::size_t i = 0; i < sizeof connection; ++i)
        out[i] = static_cast<char>((connection >> (8 * i)) & 0xff);
    out.append(id);
}

void UnconfirmedMessages::add(std::uint64_t connection, const Envelope& message,
                              std::size_t router, std::uint64_t now_ms) {
    make_key(key_scratch_, connection, message.id);
    Entry& entry = entries_[key_scratch_];
    bytes_ -= entry.message.payload.size(); // 0 for a new entry
    bytes_ += message.payload.size();
    entry.message = message;
    entry.connection = connection;
    entry.router = router;
    entry.pushed_at_ms = now_ms;
    entry.resends = 0;
    entry.order = next_order_++;
}

bool UnconfirmedMessages::confirm(std::uint64_t connection, std::string_view id) {
    if (entries_.empty()) return false;
    make_key(key_scratch_, connection, id);
    const auto it = entries_.find(key_scratch_);
    if (it == entries_.end()) return false;
    bytes_ -= it->second.message.payload.size();
    entries_.erase(it);
    return true;
}

UnconfirmedMessages::SweepResult UnconfirmedMessages::sweep(std::uint64_t now_ms, const Due& due) {
    SweepResult result;
    if (!options_.enabled() || entries_.empty()) return result;
    std::vector<std::unordered_map<std::string, Entry>::iterator> late;
    for (auto it = entries_.begin(); it != entries_.end(); ++it)
        if (now_ms - it->second.pushed_at_ms >= options_.resend_after_ms) late.push_back(it);
    std::sort(late.begin(), late.end(),
              [](const auto& a, const auto& b) { return a->second.order < b->second.order; });
    for (const auto& it : late) {
        Entry& entry = it->second;
        if (entry.resends < options_.max_resends) {
            ++entry.resends;
            entry.pushed_at_ms = now_ms;
            due.resend(entry.message, entry.router);
            ++result.resent;
            continue;
        }
        due.give_up(entry.connection, entry.message);
        ++result.given_up;
        bytes_ -= entry.message.payload.size();
        entries_.erase(it);
    }
    return result;
}

} // namespace vartalap::ws_gateway
