// Thread: the session daemon's thread (see session_confirm.hpp).
#include "daemons/session/session_confirm.hpp"

#include <spdlog/spdlog.h>

namespace vartalap::session {

void CopyConfirmations::take(std::span<Envelope> batch) {
    copies_.clear();
    for (std::size_t i = 0; i < batch.size(); ++i) {
        Envelope& message = batch[i];
        if (message.kind != Kind::deliver || message.confirm_to.empty()) continue;
        copies_.push_back(Copy{i, std::move(message.confirm_to), message.request_id, message.to});
        message.confirm_to.clear();
        message.request_id = 0;
    }
}

void CopyConfirmations::send(const std::function<bool(std::size_t index)>& done, Outbox& outbox,
                             SessionCounters& counters) {
    std::size_t used = 0; // confirmations_[0, used) are this batch's
    for (const Copy& copy : copies_) {
        if (!done(copy.index)) continue;
        // A batch holds copies of a handful of entries: a linear search finds its envelope.
        std::size_t k = 0;
        while (k < used && (confirmations_[k].request_id != copy.seq || confirmations_[k].to != copy.owner))
            ++k;
        if (k == used) {
            if (used == confirmations_.size()) confirmations_.emplace_back();
            Envelope& confirmation = confirmations_[used++];
            confirmation.kind = Kind::copies_stored;
            confirmation.to = copy.owner;
            confirmation.request_id = copy.seq;
            confirmation.ids.clear();
        }
        confirmations_[k].ids.push_back(copy.recipient);
    }
    for (std::size_t k = 0; k < used; ++k) {
        const Envelope& confirmation = confirmations_[k];
        if (outbox.confirm_copies(confirmation.to, confirmation)) {
            counters.copies_confirmed += confirmation.ids.size();
        } else {
            // The owner sends the copies again after its timeout; they are deduped here and
            // confirmed again.
            counters.confirmations_dropped += confirmation.ids.size();
            spdlog::debug("session: copies_stored for {} entry {} ({} copies) not queued",
                          confirmation.to, confirmation.request_id, confirmation.ids.size());
        }
    }
    copies_.clear();
}

} // namespace vartalap::session
