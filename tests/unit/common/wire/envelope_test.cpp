#include "common/wire/envelope.hpp"

#include <gtest/gtest.h>
#include <msgpack.hpp>

namespace vartalap {
namespace {

Envelope sample() {
    Envelope e;
    e.kind = Kind::deliver;
    e.id = "m-1";
    e.channel = "individual";
    e.from = "alice";
    e.to = "bob";
    e.ids = {"a", "b"};
    e.origin_gateway = "ws-1";
    e.connection = 42;
    e.created_at_ms = 1700000000123;
    e.retry_count = 2;
    e.flags = flag_wants_server_ack | flag_system;
    e.request_id = 7;
    e.status = Status::overloaded;
    e.method = "group_create";
    e.error = "why";
    e.payload = std::string("{\"x\":1}\0binary", 14);
    e.cursor = 99;
    e.limit = 64;
    e.items = {"one", std::string("t\0o", 3)};
    e.route = Route::receipt;
    e.confirm_to = "group-router-1";
    return e;
}

TEST(EnvelopeTest, RoundTripsEveryField) {
    const Envelope in = sample();
    std::string error;
    auto out = decode_envelope(header_frame(in.kind), encode_envelope(in), &error);
    ASSERT_TRUE(out) << error;
    EXPECT_EQ(out->kind, in.kind);
    EXPECT_EQ(out->id, in.id);
    EXPECT_EQ(out->channel, in.channel);
    EXPECT_EQ(out->from, in.from);
    EXPECT_EQ(out->to, in.to);
    EXPECT_EQ(out->ids, in.ids);
    EXPECT_EQ(out->origin_gateway, in.origin_gateway);
    EXPECT_EQ(out->connection, in.connection);
    EXPECT_EQ(out->created_at_ms, in.created_at_ms);
    EXPECT_EQ(out->retry_count, in.retry_count);
    EXPECT_EQ(out->flags, in.flags);
    EXPECT_EQ(out->request_id, in.request_id);
    EXPECT_EQ(out->status, in.status);
    EXPECT_EQ(out->method, in.method);
    EXPECT_EQ(out->error, in.error);
    EXPECT_EQ(out->payload, in.payload);
    EXPECT_EQ(out->cursor, in.cursor);
    EXPECT_EQ(out->limit, in.limit);
    EXPECT_EQ(out->items, in.items);
    EXPECT_EQ(out->route, in.route);
    EXPECT_EQ(out->confirm_to, in.confirm_to);
    EXPECT_EQ(to_string(Kind::copies_stored), std::string("copies_stored"));
    EXPECT_TRUE(decode_envelope(header_frame(Kind::copies_stored), encode_envelope(in)));
}

TEST(EnvelopeTest, RejectsBadHeaders) {
    const std::string body = encode_envelope(sample());
    std::string error;
    EXPECT_FALSE(decode_envelope("", body, &error));
    EXPECT_FALSE(decode_envelope(std::string{char(1), char(1)}, body, &error)); // version 1
    EXPECT_EQ(error, "unsupported wire version");
    EXPECT_FALSE(decode_envelope(std::string{char(3), char(1)}, body, &error)); // version 3
    EXPECT_EQ(error, "unsupported wire version");
    EXPECT_FALSE(decode_envelope(std::string{char(2), char(99)}, body, &error));
    EXPECT_EQ(error, "unknown envelope kind");
}

TEST(EnvelopeTest, RejectsGarbageWithoutThrowing) {
    std::string error;
    const std::string header = header_frame(Kind::deliver);
    EXPECT_FALSE(decode_envelope(header, "", &error));
    EXPECT_FALSE(decode_envelope(header, "\xc1\xc1\xc1", &error));
    EXPECT_FALSE(decode_envelope(header, std::string(1000, '\xdd'), &error)); // array32 headers
    const std::string body = encode_envelope(sample());
    for (std::size_t cut = 0; cut < body.size(); ++cut)
        EXPECT_FALSE(decode_envelope(header, body.substr(0, cut), &error)) << cut;
}

TEST(EnvelopeTest, RejectsWrongFieldTypes) {
    msgpack::sbuffer buffer;
    msgpack::packer<msgpack::sbuffer> pk(buffer);
    pk.pack_array(19);
    for (int i = 0; i < 19; ++i) pk.pack(i); // integers where strings belong
    std::string error;
    EXPECT_FALSE(decode_envelope(header_frame(Kind::ack), std::string_view(buffer.data(), buffer.size()), &error));
}

TEST(EnvelopeTest, EnforcesArrayLimit) {
    Envelope e = sample();
    e.ids.assign(20, "x");
    DecodeLimits limits;
    limits.max_array_items = 16;
    std::string error;
    EXPECT_FALSE(decode_envelope(header_frame(e.kind), encode_envelope(e), &error, limits));
    EXPECT_TRUE(decode_envelope(header_frame(e.kind), encode_envelope(e), &error));
}

TEST(EnvelopeTest, AcceptsAppendedFieldsFromANewerRevision) {
    const std::string body = encode_envelope(sample());
    // Rewrite the array header from 20 to 21 items and append one.
    std::string extended = body;
    ASSERT_EQ(static_cast<unsigned char>(extended[0]), 0xdc); // array16
    ASSERT_EQ(extended[2], char(20));
    extended[2] = char(21);
    extended.push_back(char(0x01));
    EXPECT_TRUE(decode_envelope(header_frame(Kind::deliver), extended));
}

TEST(EnvelopeTest, ReadsEnvelopesStoredByEarlierLayoutsAndRejectsUnknownRoutes) {
    // Stores keep envelopes across upgrades: a 15-item array (layout 1.0) still decodes.
    Envelope e = sample();
    msgpack::sbuffer buffer;
    msgpack::packer<msgpack::sbuffer> pk(buffer);
    pk.pack_array(15);
    pk.pack(e.id); pk.pack(e.channel); pk.pack(e.from); pk.pack(e.to); pk.pack(e.ids);
    pk.pack(e.origin_gateway); pk.pack(e.connection); pk.pack(e.created_at_ms);
    pk.pack(e.retry_count); pk.pack(e.flags); pk.pack(e.request_id); pk.pack(std::uint8_t{0});
    pk.pack(e.method); pk.pack(e.error); pk.pack(e.payload);
    std::string error;
    auto old = decode_envelope(header_frame(Kind::deliver), std::string_view(buffer.data(), buffer.size()), &error);
    ASSERT_TRUE(old) << error;
    EXPECT_EQ(old->payload, e.payload);
    EXPECT_EQ(old->cursor, 0u);
    EXPECT_TRUE(old->items.empty());
    EXPECT_EQ(old->route, Route::none);
    // The route is the byte before confirm_to (empty: one byte): an unknown one is refused.
    Envelope unconfirmed = sample();
    unconfirmed.confirm_to.clear();
    std::string body = encode_envelope(unconfirmed);
    ASSERT_EQ(body.back(), char(0xa0)); // the empty string
    ASSERT_EQ(body[body.size() - 2], char(Route::receipt));
    body[body.size() - 2] = char(kMaxRoute + 1);
    EXPECT_FALSE(decode_envelope(header_frame(Kind::deliver), body, &error));
    EXPECT_EQ(error, "envelope field has the wrong type or range");
}

TEST(EnvelopeTest, ReadsNineteenFieldEnvelopesWithoutConfirmTo) {
    // Wire version 2 before field 19: everything decodes, confirm_to is empty.
    Envelope e = sample();
    e.confirm_to.clear();
    std::string body = encode_envelope(e);
    ASSERT_EQ(static_cast<unsigned char>(body[0]), 0xdc); // array16
    body[2] = char(19);
    body.pop_back(); // the empty confirm_to
    std::string error;
    auto old = decode_envelope(header_frame(Kind::deliver), body, &error);
    ASSERT_TRUE(old) << error;
    EXPECT_EQ(old->route, Route::receipt);
    EXPECT_EQ(old->confirm_to, "");
    EXPECT_EQ(old->payload, e.payload);
}

} // namespace
} // namespace vartalap
