// Thread: the group-router daemon's thread (see group_router_core.hpp).
#include "daemons/group_router/group_router_core.hpp"

#include "common/wire/builders.hpp"
#include "common/wire/client_message.hpp"
#include "common/store/group_store.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <mutex>
#include <random>

namespace vartalap::group_router {
namespace {

constexpr std::string_view kNotMember = "not a member of this group";
constexpr std::string_view kStorageFull = "server storage full";

bool full(int rc) { return lmdb::out_of_space(rc); }

} // namespace

std::string peek_action(std::string_view payload) { return peek_string_member(payload, "action"); }

bool is_group_operation(std::string_view action) {
    return action == "create" || action == "add" || action == "remove";
}

// ---------------------------------------------------------------------------------------
// GroupRouterCore

GroupRouterCore::GroupRouterCore(lmdb::Env& outbox_env, group_store::Membership& membership, GroupRouterOutbox& links,
                                 std::size_t shard_count, FanoutOutbox::ShardOf shard_of,
                                 const Clock& clock, GroupRouterConfig config)
    : env_(outbox_env), membership_(membership), links_(links), clock_(clock), config_(config),
      shard_of_(shard_of), outbox_(outbox_env, shard_count, std::move(shard_of), clock, config.outbox),
      // A random start: a reply from before a restart must not match an operation of this run.
      next_operation_id_(std::random_device{}() | (std::uint64_t{std::random_device{}()} << 32)) {}

bool GroupRouterCore::accepting() const {
    return outbox_.open_copies() < config_.max_pending_copies &&
           operations_.size() < config_.max_pending_ops;
}

void GroupRouterCore::make_copy_template(const Envelope& message) {
    copy_.kind = Kind::deliver;
    copy_.id = message.id;
    copy_.channel = message.channel;
    copy_.from = message.from;
    copy_.to.clear();
    copy_.ids = message.ids;
    copy_.origin_gateway.clear(); // copies are not acked to anyone: the group-router did
    copy_.connection = 0;
    copy_.created_at_ms = message.created_at_ms;
    copy_.retry_count = 0;
    copy_.flags = message.flags & ~static_cast<std::uint32_t>(flag_wants_server_ack);
    copy_.request_id = 0;
    copy_.status = Status::ok;
    copy_.route = message.route;
    copy_.error.clear();
    copy_.payload = message.payload;
}

void GroupRouterCore::handle_batch(std::span<Envelope> batch) {
    after_.assign(batch.size(), After::nothing);
    const bool store_open = membership_.begin();
    std::optional<lmdb::Txn> txn;
    bool txn_failed = false;
    auto open_txn = [&]() -> bool {
        if (txn_failed) return false;
        if (!txn) {
            txn.emplace(env_, lmdb::Txn::read_write);
            if (outbox_.has_deletions() && full(outbox_.write_deletions(*txn))) {
                // Deleting needs pages too: retry the deletions later, stage in a fresh txn.
                txn->abort();
                txn.emplace(env_, lmdb::Txn::read_write);
            }
        }
        return true;
    };
    std::vector<std::size_t> staged; // indices whose copies are in the transaction

    for (std::size_t i = 0; i < batch.size(); ++i) {
        Envelope& message = batch[i];
        if (message.kind != Kind::group_message || message.from.empty() || message.to.empty()) {
            ++counters_.invalid;
            continue;
        }
        if (message.route == Route::ack) { // acks never need the group-router
            ++counters_.invalid;
            continue;
        }
        const bool receipt = message.route == Route::receipt;
        if (!receipt && is_group_operation(peek_action(message.payload))) {
            after_[i] = After::forward;
            continue;
        }
        if (!store_open) {
            ++counters_.store_unavailable;
            continue; // before the durable point: no ack, the sender resends
        }
        recipients_.clear();
        if (receipt) {
            if (membership_.members(message.to, members_)) {
                // Nothing to deliver, and its ack part was applied by the message-router:
                // answered ok, so that the sender (and its gateway, which keeps it until
                // answered) does not wait for a SERVER_ACK that would never come.
                ++counters_.receipts_to_group;
                after_[i] = After::ack;
                continue;
            }
            recipients_.push_back(message.to);
        } else {
            const bool found = membership_.members(message.to, members_);
            if (!found || std::find(members_.begin(), members_.end(), message.from) == members_.end()) {
                ++counters_.not_member;
                // Typing from a non-member is dropped quietly: an error per keystroke helps no one.
                if (!message.has(flag_ephemeral)) after_[i] = After::refuse_not_member;
                continue;
            }
            // One pass over the member list; the outbox groups the copies by shard.
            for (std::string_view member : members_)
                if (member != message.from) recipients_.push_back(member);
        }
        make_copy_template(message);
        if (message.has(flag_ephemeral)) {
            // Typing: only useful now, never stored, never acked.
            for (std::string_view member : recipients_) {
                copy_.to.assign(member);
                if (links_.to_session(shard_of_(member), copy_)) ++counters_.ephemeral_copies;
            }
            continue;
        }
        if (!open_txn()) {
            ++counters_.store_full;
            after_[i] = After::refuse_full;
            continue;
        }
        if (full(outbox_.stage(*txn, copy_, recipients_))) {
            txn_failed = true;
            ++counters_.store_full;
            after_[i] = After::refuse_full;
            continue;
        }
        staged.push_back(i);
        counters_.copies += recipients_.size();
        if (receipt) ++counters_.receipts;
    }
    membership_.end();

    if (txn) {
        if (!txn_failed && txn->commit() == 0) {
            outbox_.committed();
            outbox_.deletions_committed();
            deletions_since_ms_ = 0;
            for (std::size_t i : staged) after_[i] = After::ack;
            counters_.messages += staged.size();
        } else {
            // Out of space (the map, or the disk: lmdb::kDiskFull): none of this batch's
            // messages is durable; no SERVER_ACK, the senders are told "server storage full"
            // and resend. Deletions are retried with the next transaction.
            txn->abort();
            outbox_.aborted();
            counters_.store_full += staged.size();
            for (std::size_t i : staged) after_[i] = After::refuse_full;
            if (full_log_.allow(clock_.monotonic_ms()))
                spdlog::error("group-router: outbox full (LMDB map or disk); {} group message(s) "
                              "refused (no SERVER_ACK); {} more such batch(es) since the last "
                              "line, {} refused so far",
                              staged.size(), full_log_.take_suppressed(), counters_.store_full);
        }
    }

    // After the durable point: acknowledge, refuse, forward; then send the copies.
    for (std::size_t i = 0; i < batch.size(); ++i) {
        switch (after_[i]) {
        case After::ack:
            if (batch[i].has(flag_wants_server_ack)) server_ack(batch[i], Status::ok, {});
            break;
        case After::refuse_not_member: server_ack(batch[i], Status::refused, kNotMember); break;
        case After::refuse_full: server_ack(batch[i], Status::storage_full, kStorageFull); break;
        case After::forward: forward(batch[i]); break;
        case After::nothing: break;
        }
    }
    send_copies();
}

void GroupRouterCore::send_copies() {
    if (!outbox_.has_pending() && outbox_.unconfirmed_copies() == 0) return;
    counters_.copies_sent += outbox_.send_pending(
        [this](std::size_t shard, const Envelope& copy) { return links_.to_session(shard, copy); });
    if (outbox_.has_deletions() && deletions_since_ms_ == 0) deletions_since_ms_ = clock_.monotonic_ms();
}

void GroupRouterCore::forward(Envelope& operation) {
    PendingOperation pending;
    pending.id = operation.id;
    pending.from = operation.from;
    pending.origin_gateway = operation.origin_gateway;
    pending.connection = operation.connection;
    pending.request_id = operation.request_id;
    pending.wants_ack = operation.has(flag_wants_server_ack);
    pending.deadline_ms = clock_.monotonic_ms() + config_.op_timeout_ms;
    const std::uint64_t request_id = ++next_operation_id_;
    operation.kind = Kind::group_op;
    operation.request_id = request_id;
    if (operations_.size() >= config_.max_pending_ops || !links_.to_group(operation)) {
        ++counters_.operations_lost; // before the durable point: the sender resends
        return;
    }
    ++counters_.operations;
    operations_.emplace(request_id, std::move(pending));
}

void GroupRouterCore::on_reply(const Envelope& reply) {
    auto it = operations_.find(reply.request_id);
    if (it == operations_.end()) return; // expired, or from before a restart
    const PendingOperation operation = std::move(it->second);
    operations_.erase(it);
    switch (reply.status) {
    case Status::ok:
        if (operation.wants_ack) server_ack(operation, Status::ok, {});
        return;
    case Status::refused:
    case Status::bad_request:
    case Status::not_found:
    case Status::unauthorized:
        // Final: the same operation would be refused again. The sender learns why.
        ++counters_.operations_refused;
        server_ack(operation, reply.status, reply.error.empty() ? "group operation refused" : reply.error);
        return;
    default:
        // Transient (overloaded, internal): no answer, so the client resends later.
        ++counters_.operations_lost;
        return;
    }
}

void GroupRouterCore::on_copies_stored(const Envelope& confirmation) {
    ++counters_.confirmations;
    counters_.copies_confirmed += outbox_.confirm(confirmation.request_id, confirmation.ids);
    if (outbox_.has_deletions() && deletions_since_ms_ == 0) deletions_since_ms_ = clock_.monotonic_ms();
}

void GroupRouterCore::on_timer() {
    const std::uint64_t now = clock_.monotonic_ms();
    for (auto it = operations_.begin(); it != operations_.end();) {
        if (it->second.deadline_ms <= now) {
            ++counters_.operations_lost;
            it = operations_.erase(it);
        } else {
            ++it;
        }
    }
    send_copies();
    if (outbox_.has_deletions() && deletions_since_ms_ != 0 &&
        now >= deletions_since_ms_ + config_.deletion_delay_ms) {
        if (outbox_.flush_deletions() == 0)
            deletions_since_ms_ = 0;
        else
            spdlog::error("group-router: outbox full: sent copies not deleted yet (retried)");
    }
}

void GroupRouterCore::server_ack(const Envelope& message, Status status, std::string_view error) {
    PendingOperation origin;
    origin.id = message.id;
    origin.from = message.from;
    origin.origin_gateway = message.origin_gateway;
    origin.connection = message.connection;
    origin.request_id = message.request_id;
    server_ack(origin, status, error);
}

void GroupRouterCore::server_ack(const PendingOperation& operation, Status status, std::string_view error) {
    if (operation.origin_gateway.empty()) return;
    build_server_ack(ack_, {.gateway = operation.origin_gateway,
                            .connection = operation.connection,
                            .request_id = operation.request_id,
                            .id = operation.id,
                            .sender = operation.from,
                            .channel = "group",
                            .status = status,
                            .error = error});
    links_.to_gateway(operation.origin_gateway, ack_);
}

} // namespace vartalap::group_router
