// Thread: the owning daemon's thread (see fanout_outbox.hpp).
#include "common/store/fanout_outbox.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <stdexcept>

namespace vartalap {
namespace {

constexpr const char* kMessagesDb = "outbox_messages";
constexpr const char* kCopiesDb = "outbox_copies";
// In outbox_messages, beside the 8-byte seq keys: the next seq, so seqs are never reused.
constexpr std::string_view kNextSeqKey = "~next_seq";

bool full(int rc) { return lmdb::out_of_space(rc); }

void append_recipient(std::string& out, std::string_view user) { lmdb::append_length_prefixed(out, user); }

bool decode_recipients(std::string_view bytes, std::vector<std::string>& out) {
    std::string_view user;
    while (!bytes.empty()) {
        if (!lmdb::read_length_prefixed(bytes, user)) return false;
        out.emplace_back(user);
    }
    return true;
}

} // namespace

FanoutOutbox::FanoutOutbox(lmdb::Env& env, std::size_t shard_count, ShardOf shard_of,
                           const Clock& clock, Options options)
    : env_(env), shard_count_(shard_count), shard_of_(std::move(shard_of)), clock_(clock),
      options_(std::move(options)), shards_(shard_count), by_shard_(shard_count) {
    options_.max_unconfirmed_copies = std::max<std::size_t>(options_.max_unconfirmed_copies, 1);
    if (shard_count_ == 0) throw std::invalid_argument("FanoutOutbox: no session shards");
    load();
}

void FanoutOutbox::copies_key(std::string& out, std::uint64_t seq, std::uint32_t shard) {
    out.clear();
    lmdb::append_u64_be(out, seq);
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((shard >> shift) & 0xff));
}

FanoutOutbox::Batch FanoutOutbox::make_batch(std::uint32_t shard, std::vector<std::string> recipients) {
    Batch batch;
    batch.shard = shard;
    batch.open = recipients.size();
    batch.confirmed.assign(recipients.size(), 0);
    batch.recipients = std::move(recipients);
    return batch;
}

void FanoutOutbox::load() {
    lmdb::Txn txn(env_, lmdb::Txn::read_write);
    messages_db_ = lmdb::Db::open(txn, kMessagesDb);
    copies_db_ = lmdb::Db::open(txn, kCopiesDb);

    // Recipients of every pending entry, by seq, in stored order.
    std::map<std::uint64_t, std::vector<std::string>> recipients;
    std::map<std::uint64_t, bool> needs_rewrite;
    {
        lmdb::Cursor cursor(txn, copies_db_);
        for (bool more = cursor.first(); more; more = cursor.next()) {
            const std::string_view key = cursor.key();
            if (key.size() != 12) continue; // not ours; left alone
            const std::uint64_t seq = lmdb::read_u64_be(key);
            const std::uint32_t shard = static_cast<std::uint32_t>(lmdb::read_u64_be(key.substr(8)));
            auto& list = recipients[seq];
            const std::size_t before = list.size();
            if (!decode_recipients(cursor.value(), list)) {
                spdlog::error("outbox: corrupt recipient list for entry {}; skipped", seq);
                list.resize(before);
                needs_rewrite[seq] = true;
                continue;
            }
            for (std::size_t i = before; i < list.size(); ++i)
                if (shard_of_(list[i]) != shard) needs_rewrite[seq] = true;
        }
    }

    std::size_t loaded = 0;
    std::vector<std::uint64_t> orphans; // templates with no copies left (deletion not committed)
    {
        lmdb::Cursor cursor(txn, messages_db_);
        for (bool more = cursor.first(); more; more = cursor.next()) {
            if (cursor.key() == kNextSeqKey && cursor.value().size() == 8) {
                next_seq_ = std::max(next_seq_, lmdb::read_u64_be(cursor.value()));
                continue;
            }
            if (cursor.key().size() != 8) continue; // not a template
            const std::uint64_t seq = lmdb::read_u64_be(cursor.key());
            next_seq_ = std::max(next_seq_, seq + 1);
            auto it = recipients.find(seq);
            if (it == recipients.end()) {
                orphans.push_back(seq);
                continue;
            }
            std::string error;
            auto copy = decode_envelope(header_frame(Kind::deliver), cursor.value(), &error);
            if (!copy) {
                spdlog::error("outbox: corrupt template {} ({}); its copies are dropped", seq, error);
                orphans.push_back(seq);
                recipients.erase(it);
                continue;
            }
            std::vector<Batch> batches;
            std::vector<std::vector<std::string>> grouped(shard_count_);
            for (auto& user : it->second) grouped[shard_of_(user)].push_back(std::move(user));
            for (std::uint32_t shard = 0; shard < shard_count_; ++shard)
                if (!grouped[shard].empty()) batches.push_back(make_batch(shard, std::move(grouped[shard])));
            if (needs_rewrite.count(seq)) {
                // Replace the stored grouping with the current one.
                lmdb::Cursor copies(txn, copies_db_);
                copies_key(key_, seq, 0);
                while (copies.seek(key_.substr(0, 8)) && lmdb::read_u64_be(copies.key()) == seq)
                    copies.del();
                for (const Batch& batch : batches) {
                    value_.clear();
                    for (const auto& user : batch.recipients) append_recipient(value_, user);
                    copies_key(key_, seq, batch.shard);
                    if (full(copies_db_.put(txn, key_, value_)))
                        throw lmdb::Error("outbox: regrouping pending copies", MDB_MAP_FULL);
                }
            }
            for (const Batch& batch : batches) loaded += batch.recipients.size();
            add_pending(seq, std::move(*copy), std::move(batches));
            recipients.erase(it);
        }
    }
    // Copies without a template cannot be sent: drop them.
    for (const auto& [seq, list] : recipients) {
        spdlog::error("outbox: {} copies of entry {} have no template; dropped", list.size(), seq);
        lmdb::Cursor copies(txn, copies_db_);
        copies_key(key_, seq, 0);
        while (copies.seek(key_.substr(0, 8)) && lmdb::read_u64_be(copies.key()) == seq) copies.del();
    }
    for (std::uint64_t seq : orphans) {
        key_.clear();
        lmdb::append_u64_be(key_, seq);
        messages_db_.del(txn, key_);
    }
    lmdb::check(txn.commit(), "outbox: open");
    if (loaded > 0)
        spdlog::info("outbox {}: {} pending copies of {} entries to resend", env_.path().string(),
                     loaded, messages_.size());
}

void FanoutOutbox::add_pending(std::uint64_t seq, Envelope copy, std::vector<Batch> batches) {
    if (batches.empty()) return;
    Message& message = messages_[seq];
    message.copy = std::move(copy);
    message.copy.request_id = seq; // what copies_stored names
    message.copy.confirm_to = options_.confirm_to;
    message.open_batches = static_cast<std::uint32_t>(batches.size());
    message.batches = std::move(batches);
    for (std::uint32_t i = 0; i < message.batches.size(); ++i) {
        Batch& batch = message.batches[i];
        open_copies_ += batch.open;
        batch.queued = true;
        shards_[batch.shard].queue.push_back(Ref{seq, i});
    }
}

int FanoutOutbox::stage(lmdb::Txn& txn, const Envelope& copy_template,
                        std::span<const std::string_view> recipients) {
    if (recipients.empty()) return 0;
    const std::uint64_t seq = next_seq_++;
    for (auto& list : by_shard_) list.clear();
    for (std::string_view user : recipients) by_shard_[shard_of_(user)].emplace_back(user);

    Staged staged;
    staged.seq = seq;
    staged.copy = copy_template;
    staged.copy.kind = Kind::deliver;
    staged.copy.to.clear();
    staged.copy.request_id = 0;
    staged.copy.confirm_to.clear();
    encode_envelope(staged.copy, value_);
    key_.clear();
    lmdb::append_u64_be(key_, seq);
    if (int rc = messages_db_.put(txn, key_, value_); rc != 0) return rc;
    value_.clear();
    lmdb::append_u64_be(value_, next_seq_);
    if (int rc = messages_db_.put(txn, kNextSeqKey, value_); rc != 0) return rc;
    for (std::uint32_t shard = 0; shard < shard_count_; ++shard) {
        if (by_shard_[shard].empty()) continue;
        value_.clear();
        for (const auto& user : by_shard_[shard]) append_recipient(value_, user);
        copies_key(key_, seq, shard);
        if (int rc = copies_db_.put(txn, key_, value_); rc != 0) return rc;
        staged.batches.push_back(make_batch(shard, std::move(by_shard_[shard])));
        by_shard_[shard] = {};
    }
    staged_.push_back(std::move(staged));
    return 0;
}

void FanoutOutbox::committed() {
    for (Staged& staged : staged_) add_pending(staged.seq, std::move(staged.copy), std::move(staged.batches));
    staged_.clear();
}

void FanoutOutbox::aborted() { staged_.clear(); }

void FanoutOutbox::resend_expired() {
    const std::uint64_t now = clock_.monotonic_ms();
    for (Shard& shard : shards_) {
        expired_.clear();
        while (!shard.deadlines.empty() && shard.deadlines.front().at_ms <= now) {
            const Deadline deadline = shard.deadlines.front();
            shard.deadlines.pop_front();
            auto found = messages_.find(deadline.ref.seq);
            if (found == messages_.end()) continue; // confirmed and gone
            Batch& batch = found->second.batches[deadline.ref.batch];
            if (batch.open == 0 || !batch.started || batch.pass != deadline.pass) continue;
            // A new pass over the batch: every copy not confirmed is sent again.
            shard.unconfirmed -= batch.in_flight;
            unconfirmed_ -= batch.in_flight;
            resent_ += batch.in_flight;
            batch.in_flight = 0;
            batch.next = 0;
            batch.started = false;
            if (!batch.queued) {
                batch.queued = true;
                expired_.push_back(deadline.ref);
            }
        }
        // Before newer entries: a resend keeps its place in each recipient's order.
        shard.queue.insert(shard.queue.begin(), expired_.begin(), expired_.end());
    }
}

std::size_t FanoutOutbox::send_pending(const SendCopy& send) {
    if (confirming()) resend_expired();
    const std::uint64_t deadline = clock_.monotonic_ms() + options_.confirm_timeout_ms;
    std::size_t sent = 0;
    for (std::uint32_t s = 0; s < shard_count_; ++s) {
        Shard& shard = shards_[s];
        while (!shard.queue.empty()) {
            const Ref ref = shard.queue.front();
            auto found = messages_.find(ref.seq);
            if (found == messages_.end()) { // finished while it waited
                shard.queue.pop_front();
                continue;
            }
            Message& message = found->second;
            Batch& batch = message.batches[ref.batch];
            bool blocked = false;
            while (batch.next < batch.recipients.size()) {
                if (batch.confirmed[batch.next]) {
                    ++batch.next;
                    continue;
                }
                if (confirming() && shard.unconfirmed >= options_.max_unconfirmed_copies) {
                    blocked = true;
                    break;
                }
                message.copy.to = batch.recipients[batch.next];
                if (!send(s, message.copy)) {
                    blocked = true;
                    break;
                }
                ++sent;
                if (!confirming()) {
                    batch.confirmed[batch.next++] = 1;
                    --batch.open;
                    --open_copies_;
                    continue;
                }
                if (!batch.started) {
                    batch.started = true;
                    ++batch.pass;
                    shard.deadlines.push_back(Deadline{ref, batch.pass, deadline});
                }
                ++batch.next;
                ++batch.in_flight;
                ++shard.unconfirmed;
                ++unconfirmed_;
            }
            if (blocked) break; // this shard is full; later batches for it wait too
            batch.queued = false;
            shard.queue.pop_front();
            if (!confirming() && batch.open == 0) { // without confirmations: done once sent
                // (with them, confirm_one finishes a batch)
                copies_key(key_, ref.seq, s);
                done_keys_.push_back(key_);
                if (--message.open_batches == 0) {
                    done_messages_.push_back(ref.seq);
                    messages_.erase(found);
                }
            }
        }
    }
    return sent;
}

bool FanoutOutbox::confirm_one(Message& message, Ref ref, std::size_t index) {
    Batch& batch = message.batches[ref.batch];
    batch.confirmed[index] = 1;
    --batch.open;
    --open_copies_;
    if (batch.started && index < batch.next) { // sent in the current pass
        --batch.in_flight;
        --shards_[batch.shard].unconfirmed;
        --unconfirmed_;
    }
    if (batch.open > 0) return false;
    copies_key(key_, ref.seq, batch.shard);
    done_keys_.push_back(key_);
    if (--message.open_batches > 0) return false;
    done_messages_.push_back(ref.seq);
    messages_.erase(ref.seq); // queue and deadline entries naming it are skipped
    return true;
}

std::size_t FanoutOutbox::confirm(std::uint64_t seq, std::span<const std::string> users) {
    if (!confirming()) return 0; // its copies name no one to confirm to
    auto found = messages_.find(seq);
    if (found == messages_.end()) return 0;
    Message& message = found->second;
    std::size_t confirmed = 0;
    for (const std::string& user : users) {
        const std::size_t shard = shard_of_(user);
        std::uint32_t b = 0;
        while (b < message.batches.size() && message.batches[b].shard != shard) ++b;
        if (b == message.batches.size()) continue;
        Batch& batch = message.batches[b];
        // Sessions confirm in the order they received: start where the last name was.
        const std::size_t size = batch.recipients.size();
        std::size_t index = size;
        for (std::size_t k = 0; k < size; ++k) {
            const std::size_t i = (batch.hint + k) % size;
            if (batch.recipients[i] == user) {
                index = i;
                break;
            }
        }
        if (index == size || batch.confirmed[index]) continue;
        batch.hint = index + 1;
        ++confirmed;
        if (confirm_one(message, Ref{seq, b}, index)) break; // the entry is done
    }
    return confirmed;
}

int FanoutOutbox::write_deletions(lmdb::Txn& txn) {
    for (const auto& key : done_keys_) {
        const int rc = copies_db_.del(txn, key);
        if (full(rc)) return rc;
    }
    for (std::uint64_t seq : done_messages_) {
        key_.clear();
        lmdb::append_u64_be(key_, seq);
        const int rc = messages_db_.del(txn, key_);
        if (full(rc)) return rc;
    }
    written_keys_ = done_keys_.size();
    written_messages_ = done_messages_.size();
    return 0;
}

void FanoutOutbox::deletions_committed() {
    done_keys_.erase(done_keys_.begin(), done_keys_.begin() + static_cast<long>(written_keys_));
    done_messages_.erase(done_messages_.begin(),
                         done_messages_.begin() + static_cast<long>(written_messages_));
    written_keys_ = 0;
    written_messages_ = 0;
}

int FanoutOutbox::flush_deletions() {
    if (done_keys_.empty() && done_messages_.empty()) return 0;
    lmdb::Txn txn(env_, lmdb::Txn::read_write);
    if (int rc = write_deletions(txn); rc != 0) return rc; // txn aborts on scope exit
    if (int rc = txn.commit(); rc != 0) return rc;
    deletions_committed();
    return 0;
}

} // namespace vartalap
