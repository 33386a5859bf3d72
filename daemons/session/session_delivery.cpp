// Thread: the session daemon's thread (see session_delivery.hpp).
#include "daemons/session/session_delivery.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace vartalap::session {

DeliveryWindow::DeliveryWindow(SessionStore& store, Outbox& outbox, const Clock& clock,
                               const SessionConfig& config, SessionCounters& counters,
                               RequestIds& request_ids)
    : store_(store), outbox_(outbox), clock_(clock), config_(config), counters_(counters),
      request_ids_(request_ids), persistence_(outbox.has_persistence()) {}

// ---------------------------------------------------------------------------------------
// Users

void DeliveryWindow::connect(const Envelope& message) {
    const std::string& user = message.from;
    if (user.empty() || user.size() > config_.max_user_bytes || message.origin_gateway.empty()) {
        ++counters_.invalid;
        return;
    }
    if (!outbox_.knows_gateway(message.origin_gateway)) {
        ++counters_.invalid;
        spdlog::warn("session: connect from unknown gateway '{}' ignored (topology mismatch?)",
                     message.origin_gateway);
        return;
    }
    ++counters_.connects;
    auto found = users_.find(user);
    if (found != users_.end()) {
        UserState& old = found->second;
        if (old.gateway == message.origin_gateway && old.connection == message.connection)
            return; // repeated connect for the current connection: nothing changes
        if (message.created_at_ms < old.opened_at_ms) {
            // A connection that opened before the current one (a resync of a socket the
            // user already left, reaching a restarted shard after the new connect): the
            // current one stays, and the older one is closed as replaced, as it would have
            // been had the connects arrived in order.
            ++counters_.stale_connects;
            outbox_.close_connection(message.origin_gateway, message.connection, user);
            return;
        }
        // One live socket per user (PROTOCOL.md): the newer connection wins.
        outbox_.close_connection(old.gateway, old.connection, user);
        while (!old.in_flight.empty()) erase_in_flight(*old.in_flight.begin());
    } else {
        if (users_.size() >= config_.max_online_users) {
            ++counters_.user_limit_refusals;
            spdlog::warn("session: {} users online, the configured limit: refusing a "
                         "connection (closed; its messages stay stored)",
                         users_.size());
            outbox_.close_connection(message.origin_gateway, message.connection, user);
            return;
        }
        found = users_.emplace(user, UserState{}).first;
    }
    UserState& state = found->second;
    state.gateway = message.origin_gateway;
    state.connection = message.connection;
    state.opened_at_ms = message.created_at_ms;
    state.epoch = next_epoch_++;
    // From the oldest stored message, parked ones included: a new connection is the moment
    // parked messages are tried again.
    state.scan_seq = 0;
    state.caught_up = false;
    // Then the user's queue in persistence, from its start (what earlier connections did
    // not get acked is there again).
    state.remote_cursor = 0;
    state.remote_done = !persistence_;
    state.fetch_request_id = 0; // an answer to an older connection's fetch is stale
    mark_dirty(user);
}

void DeliveryWindow::disconnect(const Envelope& message) {
    ++counters_.disconnects;
    auto found = users_.find(message.from);
    if (found == users_.end()) return;
    // A disconnect of a connection the user already replaced is stale: ignore it.
    if (found->second.gateway != message.origin_gateway ||
        found->second.connection != message.connection)
        return;
    go_offline(found->first);
}

void DeliveryWindow::go_offline(const std::string& user_name) {
    auto found = users_.find(user_name);
    if (found == users_.end()) return;
    const std::string user = found->first; // user_name may refer to an entry erased below
    // Local messages of the user (in flight, or not read yet) are offline messages now: the
    // handoff scan takes them to persistence.
    bool local_left = !found->second.caught_up;
    for (const std::uint64_t key : found->second.in_flight)
        if (!in_flight_.at(key).remote) local_left = true;
    if (local_left) hooks_->offline_with_local_messages();
    while (!found->second.in_flight.empty()) erase_in_flight(*found->second.in_flight.begin());
    starved_users_.erase(user);
    users_.erase(found);
}

UserState* DeliveryWindow::find(const std::string& user) {
    auto found = users_.find(user);
    return found == users_.end() ? nullptr : &found->second;
}

void DeliveryWindow::mark_all_dirty() {
    std::vector<std::string> online;
    online.reserve(users_.size());
    for (const auto& [user, state] : users_) online.push_back(user);
    for (const std::string& user : online) mark_dirty(user);
}

// ---------------------------------------------------------------------------------------
// Messages, results, acks

bool DeliveryWindow::offer(Envelope& message, std::uint64_t seq) {
    auto found = users_.find(message.to);
    if (found == users_.end()) return false;
    UserState& state = found->second;
    // The hot path: nothing older is waiting, so send straight from the batch without
    // reading back what was just written.
    if (state.caught_up && state.in_flight.size() < config_.window &&
        in_flight_.size() < config_.max_in_flight) {
        state.scan_seq = seq + 1;
        start_delivery(found->first, state, seq, message);
        return true;
    }
    // Older messages (or a full window) come first: the pump reads it back in order.
    state.caught_up = false;
    mark_dirty(found->first);
    return true;
}

void DeliveryWindow::on_result(const Envelope& result) {
    auto request = requests_.find(result.request_id);
    if (request == requests_.end()) {
        // Answer to a request that timed out, or of a connection that was replaced.
        ++counters_.stale_results;
        return;
    }
    const std::uint64_t seq = request->second;
    InFlight& entry = in_flight_.at(seq);
    requests_.erase(request);
    entry.request_id = 0;
    const std::uint64_t now = clock_.monotonic_ms();

    switch (result.status) {
    case Status::ok:
        ++counters_.delivered;
        if (!entry.written && entry.entered)
            latency_.delivery.observe_ms(now - std::min(now, entry.entered_ms));
        entry.written = true;
        if (entry.system) {
            // Deleted in this batch's transaction, unless the map was so full that even
            // deletions failed; then it is redelivered on a new connect. A remote receipt is
            // deleted by persistence, told here.
            if (entry.remote) hooks_->remote_receipt_written(entry.user, entry.id);
            const std::string user = entry.user;
            erase_in_flight(seq);
            mark_dirty(user);
        } else {
            set_deadline(seq, entry, Phase::awaiting_ack,
                         saturating_add(now, config_.ack_timeout_ms));
        }
        break;
    case Status::not_connected: {
        // In-flight entries always belong to the user's current connection (a connect
        // clears the old ones), so the user is gone. Everything stays stored.
        const std::string user = entry.user;
        go_offline(user);
        break;
    }
    default:
        // overloaded (the client's write queue is full) or anything unexpected: not
        // written; try again after a pause without counting it as a timeout.
        ++counters_.overloaded;
        set_deadline(seq, entry, Phase::backoff, saturating_add(now, config_.overload_retry_ms));
        break;
    }
}

void DeliveryWindow::acked(std::uint64_t key) {
    auto entry = in_flight_.find(key);
    if (entry == in_flight_.end()) return; // parked or offline: just deleted
    observe_ack(entry->second);
    const std::string user = entry->second.user;
    erase_in_flight(key);
    mark_dirty(user);
}

void DeliveryWindow::acked_remote(const std::string& user_name, std::span<const std::string> ids) {
    auto user = users_.find(user_name);
    if (user == users_.end()) return;
    bool erased = false;
    for (const std::string& id : ids) {
        auto remote = user->second.remote_ids.find(id);
        if (remote == user->second.remote_ids.end()) continue;
        observe_ack(in_flight_.at(remote->second));
        erase_in_flight(remote->second);
        erased = true;
    }
    if (erased) mark_dirty(user->first);
}

void DeliveryWindow::observe_ack(const InFlight& entry) {
    if (!entry.entered) return;
    const std::uint64_t now = clock_.monotonic_ms();
    const std::uint64_t since_entered = now - std::min(now, entry.entered_ms);
    latency_.ack.observe_ms(since_entered);
    if (entry.written) return;
    // The client's ack overtook the gateway's deliver_result (common on a fast path): the
    // ack proves the delivery, so it counts as one now (the late result is then stale).
    ++counters_.delivered;
    latency_.delivery.observe_ms(since_entered);
}

const InFlight* DeliveryWindow::by_request(std::uint64_t request_id, std::uint64_t* key) const {
    auto request = requests_.find(request_id);
    if (request == requests_.end()) return nullptr;
    if (key != nullptr) *key = request->second;
    return &in_flight_.at(request->second);
}

// ---------------------------------------------------------------------------------------
// Remote entries

bool DeliveryWindow::has_room(const UserState& state) const {
    return state.in_flight.size() < config_.window && in_flight_.size() < config_.max_in_flight;
}

bool DeliveryWindow::below_global_limits() const {
    return in_flight_.size() < config_.max_in_flight && remote_bytes_ < config_.max_remote_bytes;
}

std::size_t DeliveryWindow::room(const UserState& state) const {
    return std::min(config_.window - state.in_flight.size(),
                    config_.max_in_flight - in_flight_.size());
}

void DeliveryWindow::take_remote(const std::string& user, UserState& state, Envelope&& message) {
    const std::uint64_t key = next_remote_key_++;
    InFlight& entry = in_flight_[key];
    entry.user = user;
    entry.id = message.id;
    entry.epoch = state.epoch;
    entry.system = message.has(flag_system);
    remote_bytes_ += message.payload.size();
    entry.remote = std::make_unique<Envelope>(std::move(message));
    state.in_flight.insert(key);
    state.remote_ids.emplace(entry.id, key);
    send_attempt(key, entry, state, *entry.remote);
}

bool DeliveryWindow::local_in_flight(std::uint64_t seq) const {
    auto entry = in_flight_.find(seq);
    return entry != in_flight_.end() && !entry->second.remote;
}

void DeliveryWindow::convert_to_remote(std::uint64_t seq, std::optional<Envelope> record) {
    auto entry = in_flight_.find(seq);
    if (entry == in_flight_.end()) return;
    InFlight& in_flight = entry->second;
    auto user = users_.find(in_flight.user);
    if (!record || user == users_.end()) {
        const std::string name = in_flight.user;
        erase_in_flight(seq);
        mark_dirty(name);
        return;
    }
    remote_bytes_ += record->payload.size();
    in_flight.remote = std::make_unique<Envelope>(std::move(*record));
    user->second.remote_ids.emplace(in_flight.id, seq);
}

void DeliveryWindow::starve(const std::string& user) {
    ++counters_.in_flight_limit_hits;
    if (!in_flight_limit_logged_) {
        spdlog::warn("session: {} messages in flight, the configured limit: users with a "
                     "backlog wait for acks before more is sent",
                     in_flight_.size());
        in_flight_limit_logged_ = true;
    }
    starved_users_.insert(user);
}

// ---------------------------------------------------------------------------------------
// Sending

void DeliveryWindow::start_delivery(const std::string& user, UserState& state, std::uint64_t seq,
                                    Envelope& message) {
    InFlight& entry = in_flight_[seq];
    entry.user = user;
    entry.id = message.id;
    entry.epoch = state.epoch;
    entry.system = message.has(flag_system);
    state.in_flight.insert(seq);
    send_attempt(seq, entry, state, message);
}

void DeliveryWindow::send_attempt(std::uint64_t seq, InFlight& entry, const UserState& state,
                                  Envelope& message) {
    const std::uint64_t request_id = request_ids_.next();
    message.kind = Kind::deliver;
    message.request_id = request_id;
    message.connection = state.connection;
    message.retry_count = entry.retry_count;
    message.status = Status::ok;
    const std::uint64_t now = clock_.monotonic_ms();
    if (!entry.entered) {
        entry.entered = true;
        entry.entered_ms = now;
    }
    if (outbox_.deliver(state.gateway, message)) {
        entry.request_id = request_id;
        requests_.emplace(request_id, seq);
        set_deadline(seq, entry, Phase::sending, saturating_add(now, config_.send_timeout_ms));
    } else {
        // Our own queue to that gateway is full (or it is unknown): the same as overloaded.
        ++counters_.overloaded;
        entry.request_id = 0;
        set_deadline(seq, entry, Phase::backoff, saturating_add(now, config_.overload_retry_ms));
    }
}

void DeliveryWindow::set_deadline(std::uint64_t seq, InFlight& entry, Phase phase,
                                  std::uint64_t deadline) {
    timers_.erase({entry.deadline_ms, seq}); // no-op for a new entry
    entry.phase = phase;
    entry.deadline_ms = deadline;
    timers_.emplace(deadline, seq);
}

void DeliveryWindow::erase_in_flight(std::uint64_t seq) {
    auto found = in_flight_.find(seq);
    if (found == in_flight_.end()) return;
    InFlight& entry = found->second;
    timers_.erase({entry.deadline_ms, seq});
    if (entry.request_id != 0) requests_.erase(entry.request_id);
    auto user = users_.find(entry.user);
    if (user != users_.end()) user->second.in_flight.erase(seq);
    if (entry.remote) {
        remote_bytes_ -= std::min(remote_bytes_, entry.remote->payload.size());
        if (user != users_.end()) user->second.remote_ids.erase(entry.id);
    }
    in_flight_.erase(found);
}

// ---------------------------------------------------------------------------------------
// Pumping

void DeliveryWindow::mark_dirty(const std::string& user) {
    auto found = users_.find(user);
    if (found == users_.end() || found->second.dirty) return;
    found->second.dirty = true;
    dirty_users_.push_back(found->first);
}

void DeliveryWindow::pump_dirty_users() {
    // Users that waited for a global slot go first once slots are free again.
    if (!starved_users_.empty() && below_global_limits()) {
        if (in_flight_limit_logged_) {
            spdlog::info("session: in-flight messages below the limit again ({}), resuming",
                         config_.max_in_flight);
            in_flight_limit_logged_ = false;
        }
        for (const std::string& user : starved_users_) mark_dirty(user);
        starved_users_.clear();
    }
    if (dirty_users_.empty()) return;
    std::optional<lmdb::Txn> read_txn; // one read transaction for every pump of this round
    // pump() never adds to dirty_users_ (starve() uses starved_users_), so the vector is
    // stable while it is walked.
    for (std::size_t i = 0; i < dirty_users_.size(); ++i) {
        auto found = users_.find(dirty_users_[i]);
        if (found == users_.end()) continue; // went offline meanwhile
        found->second.dirty = false;
        pump(found->first, found->second, read_txn);
    }
    dirty_users_.clear();
}

void DeliveryWindow::pump(const std::string& user, UserState& state,
                          std::optional<lmdb::Txn>& read_txn) {
    // Local messages first, then (once none is waiting) the user's queue in persistence.
    if (!state.caught_up) pump_local(user, state, read_txn);
    if (state.caught_up) hooks_->pump_remote(user, state);
}

void DeliveryWindow::pump_local(const std::string& user, UserState& state,
                                std::optional<lmdb::Txn>& read_txn) {
    if (state.in_flight.size() >= config_.window) return;
    if (in_flight_.size() >= config_.max_in_flight) {
        starve(user);
        return;
    }
    // Reads at most `window` messages of this user: a backlog of any size stays on disk.
    UserCursor cursor(store_.reader(read_txn), store_.queue(), user, state.scan_seq);
    while (state.in_flight.size() < config_.window) {
        if (!cursor.valid()) {
            state.caught_up = true;
            return;
        }
        if (in_flight_.size() >= config_.max_in_flight) {
            starve(user);
            return;
        }
        const std::uint64_t seq = cursor.seq();
        state.scan_seq = seq + 1;
        std::string error;
        auto decoded = store_.decode(cursor.record(), &error);
        if (!decoded) {
            // We wrote it; an undecodable record means corruption. Skip it rather than stall
            // the user's queue behind it.
            spdlog::error("session: undecodable stored message seq {} of a user: {}", seq,
                          error);
            cursor.next();
            continue;
        }
        if (!in_flight_.contains(seq)) start_delivery(user, state, seq, *decoded);
        cursor.next();
    }
}

// ---------------------------------------------------------------------------------------
// Timers

void DeliveryWindow::on_timer(std::uint64_t now, std::optional<lmdb::Txn>& read_txn) {
    due_.clear();
    for (auto timer = timers_.begin(); timer != timers_.end() && timer->first <= now; ++timer)
        due_.push_back(timer->second);

    for (const std::uint64_t seq : due_) {
        auto found = in_flight_.find(seq);
        if (found == in_flight_.end()) continue;
        InFlight& entry = found->second;
        if (entry.phase != Phase::backoff) {
            if (entry.phase == Phase::sending) {
                // The gateway did not answer: treat the attempt as not delivered. A late
                // answer no longer matches a request and is ignored.
                ++counters_.send_timeouts;
                requests_.erase(entry.request_id);
                entry.request_id = 0;
            }
            if (entry.retry_count >= config_.retry_limit) {
                const std::string user = entry.user;
                if (entry.remote) {
                    // Fetched from persistence: it is still stored there, and the next
                    // connection fetches it again. Just stop trying.
                    ++counters_.remote_parked;
                    erase_in_flight(seq);
                    mark_dirty(user);
                    continue;
                }
                // Parked: it is an offline message now. With persistence it is handed off;
                // without, it stays stored here. Either way it is tried again on the
                // user's next connection.
                ++counters_.parked;
                spdlog::debug("session: message seq {} parked after {} attempts", seq,
                              entry.retry_count + 1);
                erase_in_flight(seq);
                hooks_->parked(user, seq, read_txn);
                mark_dirty(user);
                continue;
            }
            ++entry.retry_count;
            ++counters_.retried;
        }
        resend(seq, entry, store_.reader(read_txn));
    }
}

void DeliveryWindow::resend(std::uint64_t seq, InFlight& entry, lmdb::Txn& read_txn) {
    auto user = users_.find(entry.user);
    if (entry.remote && user != users_.end()) {
        send_attempt(seq, entry, user->second, *entry.remote); // not stored here: from memory
        return;
    }
    std::optional<Envelope> decoded;
    if (user != users_.end()) decoded = store_.read(read_txn, entry.user, seq);
    if (!decoded) {
        // Deleted meanwhile (or unreadable): nothing left to deliver.
        const std::string name = entry.user;
        erase_in_flight(seq);
        mark_dirty(name);
        return;
    }
    send_attempt(seq, entry, user->second, *decoded);
}

std::optional<std::uint64_t> DeliveryWindow::next_deadline_ms() const {
    if (timers_.empty()) return std::nullopt;
    return timers_.begin()->first;
}

std::size_t DeliveryWindow::in_flight_of(std::string_view user) const {
    auto found = users_.find(std::string(user));
    return found == users_.end() ? 0 : found->second.in_flight.size();
}

} // namespace vartalap::session
