// Thread: the persistence daemon's thread (see persistence_core.hpp). PersistenceCore's
// reads, served after a batch's commit: a page of one user's queue, as a `fetched` reply to a
// session's fetch or as the JSON of a rest-gateway's GET /messages.
#include "daemons/persistence/persistence_core.hpp"

#include "common/wire/builders.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>

namespace vartalap::persistence {
namespace {

using json = nlohmann::json;

// Longest decimal u64: the REST cursor is a seq written in decimal (opaque to clients).
constexpr std::size_t kMaxCursorDigits = 20;

} // namespace

void PersistenceCore::collect_page(lmdb::Txn& txn, std::string_view user, std::uint64_t after,
                                   std::uint32_t limit) {
    page_values_.clear();
    page_seqs_.clear();
    page_more_ = false;
    if (after == UINT64_MAX) return;
    std::size_t bytes = 0;
    // Reads at most `limit` + 1 records: a queue of any length stays on disk.
    for (UserCursor cursor(txn, queue_, user, after + 1); cursor.valid(); cursor.next()) {
        const std::string_view value = cursor.record();
        if (page_values_.size() >= limit ||
            (!page_values_.empty() && bytes + value.size() > config_.max_reply_bytes)) {
            page_more_ = true;
            break;
        }
        page_values_.push_back(value); // valid until the read transaction ends
        page_seqs_.push_back(cursor.seq());
        bytes += value.size();
    }
}

Envelope PersistenceCore::serve_fetch(const Envelope& request, lmdb::Txn& txn) {
    Envelope reply;
    reply.kind = Kind::fetched;
    reply.request_id = request.request_id;
    reply.to = request.to;
    reply.cursor = request.cursor;
    if (request.to.empty() || request.to.size() > config_.max_user_bytes) {
        ++counters_.bad_requests;
        reply.status = Status::bad_request;
        reply.error = "invalid user";
        return reply;
    }
    // 0 = "as many as you allow"; more than the maximum is the maximum.
    const std::uint32_t limit = request.limit == 0
                                    ? config_.fetch_limit_max
                                    : std::min(request.limit, config_.fetch_limit_max);
    collect_page(txn, request.to, request.cursor, limit);
    reply.items.reserve(page_values_.size());
    for (const std::string_view value : page_values_) reply.items.emplace_back(value);
    if (!page_seqs_.empty()) reply.cursor = page_seqs_.back();
    // `limit` in a fetched reply: non-zero when more messages follow `cursor` (the session
    // fetches again when its window frees), 0 at the end of the queue.
    reply.limit = page_more_ ? 1 : 0;
    ++counters_.fetches;
    counters_.items_served += reply.items.size();
    return reply;
}

Envelope PersistenceCore::serve_request(const Envelope& request, lmdb::Txn& txn) {
    auto refuse = [&](Status status, const char* error) {
        ++counters_.bad_requests;
        return make_reply(request, status, {}, error);
    };
    if (request.method != "messages") return refuse(Status::not_found, "unknown method");
    const std::string& user = request.from; // the authenticated user: nobody reads another's
    if (user.empty() || user.size() > config_.max_user_bytes)
        return refuse(Status::unauthorized, "no authenticated user");

    const json body = request.payload.empty() ? json::object()
                                              : json::parse(request.payload, nullptr, false);
    if (!body.is_object()) return refuse(Status::bad_request, "body must be a JSON object");
    std::uint32_t limit = config_.rest_default_limit;
    if (const auto it = body.find("limit"); it != body.end()) {
        if (!it->is_number_integer() || it->get<std::int64_t>() < 1)
            return refuse(Status::bad_request, "limit must be a positive integer");
        // Above the maximum is the maximum: a client asking for "everything" gets pages.
        limit = static_cast<std::uint32_t>(
            std::min<std::int64_t>(it->get<std::int64_t>(), config_.fetch_limit_max));
    }
    std::uint64_t after = 0;
    if (const auto it = body.find("cursor"); it != body.end() && !it->is_null()) {
        // Opaque to clients; here the decimal seq of the last message of the previous page.
        const std::string* text = it->is_string() ? &it->get_ref<const std::string&>() : nullptr;
        if (text == nullptr || text->empty() || text->size() > kMaxCursorDigits)
            return refuse(Status::bad_request, "bad cursor");
        const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), after);
        if (ec != std::errc{} || end != text->data() + text->size())
            return refuse(Status::bad_request, "bad cursor");
    }

    collect_page(txn, user, after, limit);
    Envelope reply = make_reply(request, Status::ok);
    // The payloads are already the JSON objects the recipient reads (the gateway wrote
    // them): they are spliced into the reply, not re-serialized.
    std::string& out = reply.payload;
    out = "{\"messages\":[";
    bool first = true;
    for (const std::string_view value : page_values_) {
        auto decoded = decode_envelope(deliver_header_, value);
        if (!decoded || !json::accept(decoded->payload)) {
            // We wrote it; an unreadable record means corruption. Skip it, never break the page.
            ++counters_.corrupt;
            spdlog::error("persistence: unreadable stored message of a user skipped");
            continue;
        }
        if (!first) out.push_back(',');
        first = false;
        out.append(decoded->payload);
        ++counters_.items_served;
    }
    out.append("],\"next\":");
    if (page_more_)
        out.append("\"").append(std::to_string(page_seqs_.back())).append("\"");
    else
        out.append("null");
    out.push_back('}');
    ++counters_.rest_pages;
    return reply;
}

} // namespace vartalap::persistence
