// session: confirmations of the copies a fan-out outbox sent (docs/INTERNAL_PROTOCOL.md,
// "Confirmed copies"). A group copy or group event carries `request_id` = its outbox entry
// and `confirm_to` = the instance that owns the outbox (a group-router, a group daemon).
// After the commit of the batch that stored it (or found it stored already, or refused it
// as invalid: it could never be stored), the session sends that instance one
// `copies_stored` per (instance, entry) of the batch, `ids` = the recipients, in batch order.
// A copy refused for a full map is not confirmed: the owner sends it again later.
//
// Thread: the session daemon's thread (SessionCore's). Ownership: holds nothing of the batch
// between calls; the Outbox is the core's.
#pragma once

#include "common/wire/envelope.hpp"
#include "daemons/session/session_config.hpp"
#include "daemons/session/session_outbox.hpp"

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

namespace vartalap::session {

class CopyConfirmations {
public:
    // Before the batch's writes: remembers, by index, every deliver that asks for a
    // confirmation, and clears its `confirm_to` and `request_id` (the stored record does not
    // keep them; a later delivery sets its own request id).
    void take(std::span<Envelope> batch);
    bool empty() const { return copies_.empty(); }
    // After the commit: confirms the remembered copies for which `done(index)` is true.
    void send(const std::function<bool(std::size_t index)>& done, Outbox& outbox,
              SessionCounters& counters);

private:
    struct Copy {
        std::size_t index = 0;
        std::string owner;     // the copy's confirm_to
        std::uint64_t seq = 0; // the copy's request_id: the owner's outbox entry
        std::string recipient;
    };
    std::vector<Copy> copies_;
    std::vector<Envelope> confirmations_; // one per (owner, seq) of the batch; reused
};

} // namespace vartalap::session
