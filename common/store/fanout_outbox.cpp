// Thread: the owning daemon's thread (see fanout_outbox.hpp).
#include "common/store/fanout_outbox.hpp"

#include <spdlog/spdlog.h>

#include <stdexcept>

namespace vartalap {
namespace {

constexpr const char* kMessagesDb = "outbox_messages";
constexpr const char* kCopiesDb = "outbox_copies";

bool full(int rc) { return rc == MDB_MAP_FULL || rc == MDB_TXN_FULL; }

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

FanoutOutbox::FanoutOutbox(lmdb::Env& env, std::size_t shard_count, ShardOf shard_of)
    : env_(env), shard_count_(shard_count), shard_of_(std::move(shard_of)),
      per_shard_(shard_count), by_shard_(shard_count) {
    if (shard_count_ == 0) throw std::invalid_argument("FanoutOutbox: no session shards");
    load();
}

void FanoutOutbox::copies_key(std::string& out, std::uint64_t seq, std::uint32_t shard) {
    out.clear();
    lmdb::append_u64_be(out, seq);
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((shard >> shift) & 0xff));
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
                if (!grouped[shard].empty())
                    batches.push_back(Batch{seq, shard, std::move(grouped[shard]), 0});
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
    message.batches = static_cast<std::uint32_t>(batches.size());
    for (Batch& batch : batches) {
        pending_copies_ += batch.recipients.size();
        per_shard_[batch.shard].push_back(std::move(batch));
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
    encode_envelope(staged.copy, value_);
    key_.clear();
    lmdb::append_u64_be(key_, seq);
    if (int rc = messages_db_.put(txn, key_, value_); rc != 0) return rc;
    for (std::uint32_t shard = 0; shard < shard_count_; ++shard) {
        if (by_shard_[shard].empty()) continue;
        value_.clear();
        for (const auto& user : by_shard_[shard]) append_recipient(value_, user);
        copies_key(key_, seq, shard);
        if (int rc = copies_db_.put(txn, key_, value_); rc != 0) return rc;
        staged.batches.push_back(Batch{seq, shard, std::move(by_shard_[shard]), 0});
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

std::size_t FanoutOutbox::send_pending(const SendCopy& send) {
    std::size_t sent = 0;
    for (std::uint32_t shard = 0; shard < shard_count_; ++shard) {
        auto& queue = per_shard_[shard];
        while (!queue.empty()) {
            Batch& batch = queue.front();
            auto found = messages_.find(batch.seq);
            if (found == messages_.end())
                throw std::logic_error("outbox: a pending batch without its template");
            Message& message = found->second;
            bool refused = false;
            while (batch.next < batch.recipients.size()) {
                message.copy.to = batch.recipients[batch.next];
                if (!send(shard, message.copy)) {
                    refused = true;
                    break;
                }
                ++batch.next;
                ++sent;
                --pending_copies_;
            }
            if (refused) break; // this shard is full; later batches for it wait too
            copies_key(key_, batch.seq, shard);
            done_keys_.push_back(key_);
            if (--message.batches == 0) {
                done_messages_.push_back(batch.seq);
                messages_.erase(found);
            }
            queue.pop_front();
        }
    }
    return sent;
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
