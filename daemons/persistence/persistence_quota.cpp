// The per-recipient offline quota (issue 12): one account must not fill a shard with
// messages to one name. Thread: the persistence daemon's (see persistence_core.hpp).
#include "daemons/persistence/persistence_core.hpp"

namespace vartalap::persistence {

bool PersistenceCore::over_quota(lmdb::Txn& txn, const Envelope& message) {
    const std::size_t max_messages = config_.max_messages_per_recipient;
    const std::size_t max_bytes = config_.max_bytes_per_recipient;
    if (max_messages == 0 && max_bytes == 0) return false;
    auto [it, fresh] = quota_usage_.try_emplace(message.to);
    Usage& usage = it->second;
    if (fresh) {
        // One walk per recipient and batch, stopped as soon as either limit is reached (so
        // it never reads more than max_messages records); it sees the batch's own writes.
        for (UserCursor cursor(txn, queue_, message.to, 0); cursor.valid(); cursor.next()) {
            ++usage.messages;
            usage.bytes += cursor.record().size();
            if ((max_messages != 0 && usage.messages >= max_messages) ||
                (max_bytes != 0 && usage.bytes >= max_bytes))
                break;
        }
    }
    // The record is about the payload's size plus a few hundred bytes of envelope.
    const std::size_t size = message.payload.size() + 256;
    return (max_messages != 0 && usage.messages + 1 > max_messages) ||
           (max_bytes != 0 && usage.bytes + size > max_bytes);
}

void PersistenceCore::count_stored_for_quota(const Envelope& message) {
    auto it = quota_usage_.find(message.to);
    if (it == quota_usage_.end()) return;
    ++it->second.messages;
    it->second.bytes += record_.size();
}

} // namespace vartalap::persistence
