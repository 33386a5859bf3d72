// The short TTL for messages to names that never registered (issue 12): one account must
// not keep the store full for 30 days with messages to names nobody owns. The profile
// daemon knows who registered; persistence asks it about each name it stores messages
// for (contactbook_sync, up to kCheckBatch names a request, one request in flight) and
// remembers the answer. A never-registered name's messages get a second expiry entry,
// dated earlier by ttl − short_ttl, so the ordinary expiry run deletes them at the short
// TTL; the entry left behind by whichever deletion came first is removed by the run like
// any expiry entry whose message is gone.
//
// Thread: the persistence daemon's (see persistence_core.hpp).
#include "daemons/persistence/persistence_core.hpp"

#include "common/log.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <random>

namespace vartalap::persistence {
namespace {

constexpr std::size_t kCheckBatch = 1000;      // names per request (profile takes 5000)
constexpr std::size_t kMaxKnownNames = 100000; // per set; a full set is forgotten at once

void remember(std::unordered_set<std::string>& set, const std::string& name) {
    if (set.size() >= kMaxKnownNames) set.clear();
    set.insert(name);
}

} // namespace

std::optional<std::uint64_t> PersistenceCore::short_expiry_time(std::uint64_t created_ms) const {
    const std::uint64_t short_ttl = config_.short_ttl_seconds;
    if (short_ttl == 0 || short_ttl >= config_.ttl_seconds || !outbox_.has_profile())
        return std::nullopt;
    const std::uint64_t earlier = (config_.ttl_seconds - short_ttl) * 1000;
    return created_ms > earlier ? created_ms - earlier : 0;
}

int PersistenceCore::note_recipient(lmdb::Txn& txn, const Envelope& message, std::uint64_t seq) {
    const auto shifted = short_expiry_time(message.created_at_ms);
    if (!shifted || registered_.contains(message.to)) return 0;
    if (unregistered_.contains(message.to)) {
        expiry_key(key_, *shifted, message.to, seq);
        return expiry_.put(txn, key_, message.id);
    }
    if (to_check_.size() < kMaxKnownNames) to_check_.insert(message.to);
    return 0;
}

void PersistenceCore::check_registrations() {
    const std::uint64_t now = clock_.monotonic_ms();
    if (check_deadline_ms_ != 0) {
        if (now < check_deadline_ms_) return;
        // Not answered (profile down or restarting): those names are asked about again.
        for (std::string& name : checking_) to_check_.insert(std::move(name));
        checking_.clear();
        check_deadline_ms_ = 0;
    }
    if (to_check_.empty() || !short_expiry_time(0)) return;
    nlohmann::json users = nlohmann::json::array();
    for (auto it = to_check_.begin(); it != to_check_.end() && checking_.size() < kCheckBatch;) {
        users.push_back(*it);
        checking_.push_back(std::move(to_check_.extract(it++).value()));
    }
    Envelope request;
    request.kind = Kind::request;
    request.method = "contactbook_sync";
    // A random start: an answer from before a restart never matches.
    if (check_request_id_ == 0) check_request_id_ = std::random_device{}() | 1;
    request.request_id = ++check_request_id_;
    request.payload = nlohmann::json{{"users", std::move(users)}}.dump();
    check_deadline_ms_ = now + config_.registration_timeout_ms;
    if (outbox_.to_profile(request)) ++counters_.registration_checks;
    // Not queued: the deadline passes and the names are asked about again.
}

void PersistenceCore::on_registration_reply(const Envelope& reply) {
    if (check_deadline_ms_ == 0 || reply.request_id != check_request_id_) return; // stale
    check_deadline_ms_ = 0;
    std::vector<std::string> names = std::move(checking_);
    checking_.clear();
    const nlohmann::json registered = nlohmann::json::parse(reply.payload, nullptr, false);
    if (reply.status != Status::ok || !registered.is_object()) {
        spdlog::warn("persistence: the profile daemon did not answer a registration check "
                     "({}: {}); asking again later", to_string(reply.status), reply.error);
        for (std::string& name : names) to_check_.insert(std::move(name));
        return;
    }
    std::vector<std::string> never;
    for (std::string& name : names) {
        if (registered.contains(name)) {
            remember(registered_, name);
        } else {
            remember(unregistered_, name);
            never.push_back(std::move(name));
        }
    }
    if (never.empty()) return;
    counters_.unregistered_recipients += never.size();
    // Their messages so far get the short expiry entry too (at most the quota's per name).
    lmdb::Txn txn(env_, lmdb::Txn::read_write);
    std::uint64_t marked = 0;
    int rc = 0;
    for (const std::string& name : never) {
        for (UserCursor cursor(txn, queue_, name, 0); cursor.valid() && rc == 0; cursor.next()) {
            const auto message = decode_envelope(deliver_header_, cursor.record());
            if (!message) continue;
            const auto shifted = short_expiry_time(message->created_at_ms);
            if (!shifted) break;
            expiry_key(key_, *shifted, name, cursor.seq());
            rc = expiry_.put(txn, key_, message->id);
            ++marked;
        }
    }
    if (rc == 0) rc = txn.commit();
    if (rc != 0) {
        // A full store: those messages keep the normal TTL; new ones get the short one.
        if (count_sampled(full_log_count_, 100))
            spdlog::error("persistence: store full while giving {} message(s) the short TTL",
                          marked);
        return;
    }
    ++counters_.commits;
    unsynced_ = true;
    counters_.short_ttl_messages += marked;
}

} // namespace vartalap::persistence
