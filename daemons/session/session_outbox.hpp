// session: the Outbox, through which SessionCore and its parts reach gateways and
// persistence shards. The daemon (session_daemon.cpp) implements it over its sockets; tests
// record the calls (tests/unit/session/session_core_fixture.hpp).
// Thread-safety: called on the session daemon's thread only. Errors: never throws on the
// data path; a request that cannot be queued returns false (see each function).
// Ownership: the core keeps a reference; the Outbox must outlive it.
#pragma once

#include "common/wire/envelope.hpp"

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace vartalap::session {

// Where the core's requests to gateways go. The daemon implements it over one DEALER per
// gateway; tests record the calls. Implementations never block.
class Outbox {
public:
    virtual ~Outbox() = default;
    // Sends a deliver request (kind deliver, request_id set by the core) to `gateway`'s
    // ROUTER. Returns false if it could not be queued (peer at its high-water mark, unknown
    // gateway): the core then treats the attempt as `overloaded` and retries later.
    virtual bool deliver(std::string_view gateway, const Envelope& request) = 0;
    // Asks `gateway` to write SERVER_ACK for message `id` to `sender` on `connection`.
    // Best effort: a lost server_ack makes the client resend, which is deduped and acked.
    virtual void server_ack(std::string_view gateway, std::uint64_t connection,
                            std::string_view id, std::string_view sender) = 0;
    // Tells `gateway` that message `id` of `sender` was NOT accepted: a server_ack envelope
    // with `status` (refused, bad_request) and `reason` in `error`. The ws-gateway turns it
    // into an error frame, a rest-gateway into the send's per-message result. Best effort
    // like server_ack: without it the client sees no SERVER_ACK and resends.
    virtual void refuse(std::string_view gateway, std::uint64_t connection, std::string_view id,
                        std::string_view sender, Status status, std::string_view reason) = 0;
    // Asks `gateway` to close `connection` of `user` (the user connected elsewhere).
    virtual void close_connection(std::string_view gateway, std::uint64_t connection,
                                  std::string_view user) = 0;
    // Whether requests to `gateway` can be sent at all. A connect naming a gateway this
    // shard has no socket to (a topology mismatch) is ignored: the user stays offline and
    // the messages stay stored, instead of being retried forever into nowhere.
    virtual bool knows_gateway(std::string_view /*gateway*/) const { return true; }

    // The offline path. Whether the topology has persistence shards at all; without them
    // the core keeps today's behaviour (the local store is the offline queue) and never
    // calls the two functions below.
    virtual bool has_persistence() const { return false; }
    // Sends `request` (offline_store or fetch) to the persistence shard that owns
    // `request.to`, on the DEALER whose replies come back as offline_stored / fetched.
    // Returns false if it could not be queued (high-water mark): the core tries again later.
    virtual bool to_persistence(const Envelope& /*request*/) { return false; }
    // Pushes an ack of `ids` by `user` to the user's persistence shard, of the messages of
    // `sender` (the ack's `to`; empty: whoever sent them). Returns false if it could not be
    // queued: the stated policy is to drop it (counted); the stored copy is then delivered
    // again later and acked again, which at-least-once allows.
    virtual bool ack_to_persistence(std::string_view /*user*/, std::string_view /*sender*/,
                                    std::span<const std::string> /*ids*/) {
        return false;
    }
    // Pushes to `user`'s persistence shard that message `id` of `sender` (one it fetched
    // from there) was written to the user's socket and left flight without an ack: an `ack`
    // with `limit` = `max_unacked_writes`, which counts the write instead of deleting, and
    // at that many writes deletes the message as delivered. False if it could not be queued
    // (dropped and counted: the write is then not counted, which only delays the deletion).
    virtual bool unacked_write_to_persistence(std::string_view /*user*/,
                                              std::string_view /*sender*/,
                                              std::string_view /*id*/,
                                              std::uint32_t /*max_unacked_writes*/) {
        return false;
    }
    // Sends `confirmation` (kind copies_stored) to `owner`, the instance a copy named in its
    // `confirm_to` (a group-router, a group daemon). Returns false if it could not be queued
    // (unknown owner, high-water mark): the stated policy is to drop it (counted); the owner
    // sends the copies again after its timeout and they are confirmed again.
    virtual bool confirm_copies(std::string_view /*owner*/, const Envelope& /*confirmation*/) {
        return false;
    }
};

} // namespace vartalap::session
