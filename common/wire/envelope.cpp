// Envelope encode/decode with msgpack-cxx. Pure functions; any thread.
#include "common/wire/envelope.hpp"

#include <msgpack.hpp>

namespace vartalap {
namespace {

// Field order on the wire (a MessagePack array). Append only; never reorder (see
// docs/INTERNAL_PROTOCOL.md). A decoder accepts longer arrays (fields from a newer minor
// revision) and ignores the extra items.
constexpr std::uint32_t kFieldCount = 20;
// Envelopes are also stored (session, persistence, the fan-out outbox) and read back by later
// versions: arrays written by earlier layouts (15 items in 1.0, 18 in 1.1, 19 in 2.0) decode with the
// missing fields at their defaults.
constexpr std::uint32_t kMinFieldCount = 15;
constexpr std::uint32_t kFieldCount11 = 18;
constexpr std::uint32_t kFieldCountRoute = 19; // wire version 2 before confirm_to

template <class Packer>
void pack_fields(Packer& pk, const Envelope& e) {
    pk.pack_array(kFieldCount);
    pk.pack(e.id);
    pk.pack(e.channel);
    pk.pack(e.from);
    pk.pack(e.to);
    pk.pack(e.ids);
    pk.pack(e.origin_gateway);
    pk.pack(e.connection);
    pk.pack(e.created_at_ms);
    pk.pack(e.retry_count);
    pk.pack(e.flags);
    pk.pack(e.request_id);
    pk.pack(static_cast<std::uint8_t>(e.status));
    pk.pack(e.method);
    pk.pack(e.error);
    pk.pack_bin(static_cast<std::uint32_t>(e.payload.size()));
    pk.pack_bin_body(e.payload.data(), static_cast<std::uint32_t>(e.payload.size()));
    pk.pack(e.cursor);
    pk.pack(e.limit);
    pk.pack_array(static_cast<std::uint32_t>(e.items.size()));
    for (const auto& item : e.items) {
        pk.pack_bin(static_cast<std::uint32_t>(item.size()));
        pk.pack_bin_body(item.data(), static_cast<std::uint32_t>(item.size()));
    }
    pk.pack(static_cast<std::uint8_t>(e.route));
    pk.pack(e.confirm_to);
}

struct StringBuffer {
    std::string& out;
    void write(const char* data, std::size_t size) { out.append(data, size); }
};

bool read_string(const msgpack::object& o, std::string& out) {
    if (o.type == msgpack::type::STR) {
        out.assign(o.via.str.ptr, o.via.str.size);
        return true;
    }
    if (o.type == msgpack::type::BIN) {
        out.assign(o.via.bin.ptr, o.via.bin.size);
        return true;
    }
    return false;
}

template <class T>
bool read_uint(const msgpack::object& o, T& out) {
    if (o.type != msgpack::type::POSITIVE_INTEGER) return false;
    if (o.via.u64 > std::numeric_limits<T>::max()) return false;
    out = static_cast<T>(o.via.u64);
    return true;
}

bool fail(std::string* error, const char* what) {
    if (error) *error = what;
    return false;
}

bool valid_kind(std::uint8_t k) { return k >= 1 && k <= kMaxKind; }

} // namespace

std::string header_frame(Kind kind) {
    return std::string{static_cast<char>(kWireVersion), static_cast<char>(kind)};
}

void encode_envelope(const Envelope& envelope, std::string& out) {
    out.clear();
    StringBuffer buffer{out};
    msgpack::packer<StringBuffer> pk(buffer);
    pack_fields(pk, envelope);
}

std::string encode_envelope(const Envelope& envelope) {
    std::string out;
    encode_envelope(envelope, out);
    return out;
}

std::optional<Envelope> decode_envelope(std::string_view header, std::string_view body,
                                        std::string* error, const DecodeLimits& limits) {
    if (header.size() != 2) {
        fail(error, "header frame is not 2 bytes");
        return std::nullopt;
    }
    if (static_cast<std::uint8_t>(header[0]) != kWireVersion) {
        fail(error, "unsupported wire version");
        return std::nullopt;
    }
    const auto kind_byte = static_cast<std::uint8_t>(header[1]);
    if (!valid_kind(kind_byte)) {
        fail(error, "unknown envelope kind");
        return std::nullopt;
    }
    if (body.size() > limits.max_frame_bytes) {
        fail(error, "envelope frame too large");
        return std::nullopt;
    }
    Envelope e;
    e.kind = static_cast<Kind>(kind_byte);
    try {
        const msgpack::unpack_limit unpack_limits(
            /*array=*/limits.max_array_items, /*map=*/16, /*str=*/limits.max_string_bytes,
            /*bin=*/limits.max_string_bytes, /*ext=*/0, /*depth=*/4);
        msgpack::object_handle handle =
            msgpack::unpack(body.data(), body.size(), nullptr, nullptr, unpack_limits);
        const msgpack::object& root = handle.get();
        if (root.type != msgpack::type::ARRAY || root.via.array.size < kMinFieldCount) {
            fail(error, "envelope is not an array of the expected size");
            return std::nullopt;
        }
        const msgpack::object* f = root.via.array.ptr;
        std::uint8_t status = 0;
        std::uint8_t route = 0;
        bool ok = read_string(f[0], e.id) && read_string(f[1], e.channel) &&
                  read_string(f[2], e.from) && read_string(f[3], e.to);
        if (ok) {
            if (f[4].type != msgpack::type::ARRAY) {
                ok = false;
            } else {
                e.ids.resize(f[4].via.array.size);
                for (std::uint32_t i = 0; ok && i < f[4].via.array.size; ++i)
                    ok = read_string(f[4].via.array.ptr[i], e.ids[i]);
            }
        }
        ok = ok && read_string(f[5], e.origin_gateway) && read_uint(f[6], e.connection) &&
             read_uint(f[7], e.created_at_ms) && read_uint(f[8], e.retry_count) &&
             read_uint(f[9], e.flags) && read_uint(f[10], e.request_id) &&
             read_uint(f[11], status) && read_string(f[12], e.method) &&
             read_string(f[13], e.error) && read_string(f[14], e.payload);
        if (ok && root.via.array.size >= kFieldCount11) {
            ok = read_uint(f[15], e.cursor) && read_uint(f[16], e.limit);
            if (ok && f[17].type == msgpack::type::ARRAY) {
                e.items.resize(f[17].via.array.size);
                for (std::uint32_t i = 0; ok && i < f[17].via.array.size; ++i)
                    ok = read_string(f[17].via.array.ptr[i], e.items[i]);
            } else {
                ok = false;
            }
        }
        if (ok && root.via.array.size >= kFieldCountRoute) ok = read_uint(f[18], route);
        if (ok && root.via.array.size >= kFieldCount) ok = read_string(f[19], e.confirm_to);
        if (!ok || status > static_cast<std::uint8_t>(Status::storage_full) || route > kMaxRoute) {
            fail(error, "envelope field has the wrong type or range");
            return std::nullopt;
        }
        e.status = static_cast<Status>(status);
        e.route = static_cast<Route>(route);
    } catch (const std::exception& ex) {
        // msgpack-cxx reports malformed bytes and exceeded limits by throwing; this is the
        // boundary where untrusted bytes become a value, so it ends here.
        if (error) *error = std::string("malformed envelope: ") + ex.what();
        return std::nullopt;
    }
    return e;
}

const char* to_string(Kind kind) {
    switch (kind) {
    case Kind::client_message: return "client_message";
    case Kind::deliver: return "deliver";
    case Kind::ack: return "ack";
    case Kind::connect: return "connect";
    case Kind::disconnect: return "disconnect";
    case Kind::deliver_result: return "deliver_result";
    case Kind::server_ack: return "server_ack";
    case Kind::close_connection: return "close_connection";
    case Kind::request: return "request";
    case Kind::reply: return "reply";
    case Kind::offline_store: return "offline_store";
    case Kind::offline_stored: return "offline_stored";
    case Kind::fetch: return "fetch";
    case Kind::fetched: return "fetched";
    case Kind::offline_notify: return "offline_notify";
    case Kind::group_message: return "group_message";
    case Kind::group_op: return "group_op";
    case Kind::resync: return "resync";
    case Kind::copies_stored: return "copies_stored";
    }
    return "unknown";
}

const char* to_string(Status status) {
    switch (status) {
    case Status::ok: return "ok";
    case Status::not_connected: return "not_connected";
    case Status::overloaded: return "overloaded";
    case Status::refused: return "refused";
    case Status::bad_request: return "bad_request";
    case Status::unauthorized: return "unauthorized";
    case Status::not_found: return "not_found";
    case Status::internal: return "internal";
    case Status::storage_full: return "storage_full";
    }
    return "unknown";
}

const char* to_string(Route route) {
    switch (route) {
    case Route::none: return "none";
    case Route::chat: return "chat";
    case Route::receipt: return "receipt";
    case Route::ack: return "ack";
    }
    return "unknown";
}

} // namespace vartalap
