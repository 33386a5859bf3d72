// Thread: any (see group_store.hpp); the registry is guarded by its own mutex.
#include "common/store/group_store.hpp"

#include "common/names.hpp"

#include <boost/endian/conversion.hpp>

#include <map>
#include <mutex>
#include <stdexcept>

namespace vartalap::group_store {
namespace {

constexpr std::uint8_t kFormat = 1;


// A bounds-checked reader: every read fails (and stays failed) past the end.
class Reader {
public:
    explicit Reader(std::string_view bytes) : bytes_(bytes) {}
    bool ok() const { return ok_; }
    bool at_end() const { return pos_ == bytes_.size(); }
    // The next big-endian unsigned integer of `width` bytes (1, 2, 4 or 8).
    std::uint64_t uint(int width) {
        if (!ok_ || bytes_.size() - pos_ < static_cast<std::size_t>(width)) return fail();
        const auto* p = reinterpret_cast<const unsigned char*>(bytes_.data() + pos_);
        pos_ += static_cast<std::size_t>(width);
        switch (width) {
        case 1: return *p;
        case 2: return boost::endian::load_big_u16(p);
        case 4: return boost::endian::load_big_u32(p);
        default: return boost::endian::load_big_u64(p);
        }
    }
    std::string_view bytes(std::size_t n) {
        if (!ok_ || bytes_.size() - pos_ < n) {
            fail();
            return {};
        }
        std::string_view v = bytes_.substr(pos_, n);
        pos_ += n;
        return v;
    }

private:
    std::uint64_t fail() {
        ok_ = false;
        return 0;
    }
    std::string_view bytes_;
    std::size_t pos_ = 0;
    bool ok_ = true;
};

// Reads the header up to the member count; `reader` is left at the first member.
bool read_header(Reader& reader, GroupRecord* out, std::uint32_t& count) {
    if (reader.uint(1) != kFormat) return false;
    std::string_view name = reader.bytes(reader.uint(4));
    const bool has_pic = reader.uint(1) != 0;
    std::string_view pic = reader.bytes(reader.uint(4));
    const std::uint64_t created = reader.uint(8);
    count = static_cast<std::uint32_t>(reader.uint(4));
    if (!reader.ok()) return false;
    if (out) {
        out->name.assign(name);
        out->has_profile_pic = has_pic;
        out->profile_pic.assign(pic);
        out->created_at_ms = created;
    }
    return true;
}

struct Registry {
    std::mutex mutex;
    std::map<std::filesystem::path, std::weak_ptr<lmdb::Env>> envs;
    std::map<std::filesystem::path, bool> read_only;
};

Registry& registry() {
    static Registry instance;
    return instance;
}

std::filesystem::path canonical_key(const std::filesystem::path& directory) {
    std::error_code ignored;
    auto path = std::filesystem::weakly_canonical(std::filesystem::absolute(directory), ignored);
    return path.empty() ? std::filesystem::absolute(directory) : path;
}

} // namespace

const char* to_string(Role role) { return role == Role::admin ? "admin" : "user"; }

long GroupRecord::find(std::string_view username) const {
    for (std::size_t i = 0; i < members.size(); ++i)
        if (members[i].username == username) return static_cast<long>(i);
    return -1;
}

void encode(const GroupRecord& record, std::string& out) {
    out.clear();
    out.push_back(static_cast<char>(kFormat));
    lmdb::append_u32_be(out, static_cast<std::uint32_t>(record.name.size()));
    out += record.name;
    out.push_back(record.has_profile_pic ? 1 : 0);
    lmdb::append_u32_be(out, static_cast<std::uint32_t>(record.profile_pic.size()));
    out += record.profile_pic;
    lmdb::append_u64_be(out, record.created_at_ms);
    lmdb::append_u32_be(out, static_cast<std::uint32_t>(record.members.size()));
    for (const Member& member : record.members) {
        out.push_back(static_cast<char>(member.role));
        lmdb::append_u16_be(out, static_cast<std::uint16_t>(member.username.size()));
        out += member.username;
    }
}

bool decode(std::string_view bytes, GroupRecord& out) {
    Reader reader(bytes);
    std::uint32_t count = 0;
    if (!read_header(reader, &out, count)) return false;
    // Each member takes at least 3 bytes: a count beyond that is a corrupt record, and
    // checking first keeps reserve() bounded by the input.
    if (count > bytes.size() / 3) return false;
    out.members.clear();
    out.members.reserve(count);
    for (std::uint32_t i = 0; i < count; ++i) {
        const auto role = reader.uint(1);
        std::string_view name = reader.bytes(reader.uint(2));
        if (!reader.ok() || role > 1) return false;
        out.members.push_back({std::string(name), static_cast<Role>(role)});
    }
    return reader.at_end();
}

bool member_views(std::string_view bytes, std::vector<std::string_view>& out) {
    out.clear();
    Reader reader(bytes);
    std::uint32_t count = 0;
    if (!read_header(reader, nullptr, count) || count > bytes.size() / 3) return false;
    out.reserve(count);
    for (std::uint32_t i = 0; i < count; ++i) {
        reader.uint(1);
        std::string_view name = reader.bytes(reader.uint(2));
        if (!reader.ok()) return false;
        out.push_back(name);
    }
    return reader.at_end();
}

bool valid_username(std::string_view username) { return vartalap::valid_username(username); }

bool valid_group_id(std::string_view group_id) { return vartalap::valid_group_id(group_id); }

std::string encode_applied(Status status, std::string_view group_id, std::string_view error) {
    std::string out;
    out.push_back(static_cast<char>(status));
    lmdb::append_length_prefixed(out, group_id);
    out += error;
    return out;
}

bool decode_applied(std::string_view bytes, Status& status, std::string& group_id, std::string& error) {
    if (bytes.empty()) return false;
    status = static_cast<Status>(static_cast<unsigned char>(bytes[0]));
    bytes.remove_prefix(1);
    std::string_view id;
    if (!lmdb::read_length_prefixed(bytes, id)) return false;
    group_id.assign(id);
    error.assign(bytes);
    return true;
}

void pair_key(std::string& out, std::string_view first, std::string_view second) {
    out.clear();
    lmdb::append_length_prefixed(out, first);
    out += second;
}

std::shared_ptr<lmdb::Env> shared_env(const std::filesystem::path& directory,
                                      const lmdb::EnvOptions& options) {
    Registry& r = registry();
    std::lock_guard lock(r.mutex);
    const auto key = canonical_key(directory);
    if (auto it = r.envs.find(key); it != r.envs.end()) {
        if (auto env = it->second.lock()) {
            if (!options.read_only && r.read_only[key])
                throw std::runtime_error("LMDB environment " + key.string() +
                                         " is already open read-only in this process");
            return env;
        }
    }
    auto env = std::make_shared<lmdb::Env>(directory, options);
    r.envs[canonical_key(directory)] = env; // canonical again: the directory may be new
    r.read_only[canonical_key(directory)] = options.read_only;
    return env;
}

std::shared_ptr<lmdb::Env> find_shared_env(const std::filesystem::path& directory) {
    Registry& r = registry();
    std::lock_guard lock(r.mutex);
    auto it = r.envs.find(canonical_key(directory));
    return it == r.envs.end() ? nullptr : it->second.lock();
}

} // namespace vartalap::group_store
