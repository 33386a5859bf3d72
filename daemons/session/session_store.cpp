// Thread: the session daemon's thread (see session_store.hpp).
#include "daemons/session/session_store.hpp"

namespace vartalap::session {

SessionStore::SessionStore(lmdb::Env& env)
    : queue_(env, "message_ids", /*ids_hold_time=*/false, "session",
             [](std::string_view record) -> std::optional<std::string> {
                 auto message = decode_envelope(header_frame(Kind::deliver), record);
                 if (!message) return std::nullopt;
                 return std::move(message->from);
             }),
      acked_(env), deliver_header_(header_frame(Kind::deliver)) {}

lmdb::Txn& SessionStore::reader(std::optional<lmdb::Txn>& txn) {
    if (deferred_txn_) return *deferred_txn_;
    if (!txn) txn.emplace(queue_.env(), lmdb::Txn::read_only);
    return *txn;
}

lmdb::Txn& SessionStore::deferred_txn() {
    if (!deferred_txn_) deferred_txn_.emplace(queue_.env(), lmdb::Txn::read_write);
    return *deferred_txn_;
}

void SessionStore::defer(std::string_view user, std::string_view id, std::uint64_t seq,
                         const std::string* sender, std::uint64_t acked_ms) {
    deferred_.push_back({std::string(user), std::string(id), seq, sender != nullptr,
                         sender != nullptr ? *sender : std::string(), acked_ms});
}

std::optional<lmdb::Txn> SessionStore::take_deferred_txn() {
    std::optional<lmdb::Txn> txn = std::move(deferred_txn_);
    deferred_txn_.reset();
    return txn;
}

bool SessionStore::replay_deferred(lmdb::Txn& txn) {
    for (const Deletion& deletion : deferred_) {
        if (queue_.full(queue_.erase(txn, deletion.user, deletion.id, deletion.seq))) return false;
        if (deletion.acked)
            acked_.record(deletion.user, deletion.sender, deletion.id, deletion.acked_ms,
                          deletion.acked_ms);
    }
    return true;
}

Stored SessionStore::store(lmdb::Txn& txn, Envelope& message, WriteMode mode,
                           std::uint64_t& seq, std::uint64_t acked_since_ms) {
    // Delivered and acked already (the sender resent after a lost SERVER_ACK): not again.
    if (acked_.contains(message.to, message.from, message.id, acked_since_ms))
        return Stored::duplicate;
    const auto encode = [&](std::uint64_t) -> std::string_view {
        // What is stored is what a gateway will be sent, minus the per-attempt fields.
        message.request_id = 0;
        message.retry_count = 0;
        message.status = Status::ok;
        encode_envelope(message, record_);
        return record_;
    };
    return queue_.store(txn, message.to, message.from, message.id, mode, encode, seq);
}

std::optional<Envelope> SessionStore::decode(std::string_view record, std::string* error) const {
    return decode_envelope(deliver_header_, record, error);
}

std::optional<Envelope> SessionStore::read(lmdb::Txn& txn, std::string_view user,
                                           std::uint64_t seq) {
    std::string_view record;
    if (queue_.get(txn, user, seq, record) != 0) return std::nullopt;
    return decode(record);
}

} // namespace vartalap::session
