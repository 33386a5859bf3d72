// profile: /login (checks the identity token, binds the username to its `sub`, issues access
// keys, stores the device's notification token), /logout (revokes a key), the revocation
// list the gateways poll, /profile and /contactbook/sync. ProfileCore is the socket-free logic over a real LMDB
// store; the daemon in profile_daemon.cpp owns the ROUTER socket that rest-gateways talk to.
//
// Thread-safety: ProfileCore belongs to the daemon's thread. Errors: bad requests become
// replies with a status; LMDB failures other than MDB_MAP_FULL throw (restart is cheap).
#pragma once

#include "common/access_key.hpp"
#include "common/clock.hpp"
#include "common/wire/envelope.hpp"
#include "common/store/lmdb.hpp"
#include "daemons/profile/revocation_store.hpp"

#include <memory>
#include <string>
#include <string_view>

namespace vartalap::profile {

// Who an identity token says its holder is.
struct Identity {
    std::string sub;          // the provider's stable user id; "" = none (development)
    std::string phone_number; // "" when the token carries none
};

// Checks an identity token presented for `username`: the development provider below, and
// FirebaseIdentityProvider (firebase_token.hpp), which verifies Firebase ID tokens offline.
class IdentityProvider {
public:
    virtual ~IdentityProvider() = default;
    // True if `token` is valid for `username` (and `identity` says whose it is); otherwise
    // false and a reason for the log (never the token itself).
    virtual bool verify(std::string_view username, std::string_view token, Identity& identity,
                        std::string& reason) const = 0;
};

// Development only: any non-empty token proves any username (no `sub`: nothing is bound).
class DevelopmentIdentityProvider final : public IdentityProvider {
public:
    bool verify(std::string_view username, std::string_view token, Identity& identity,
                std::string& reason) const override;
};

// Limits of the login fields stored in a user's record (a longer one: 400 naming it).
inline constexpr std::size_t kMaxNotificationTokenBytes = 1024;
inline constexpr std::size_t kMaxDeviceIdBytes = 128;

struct ProfileCounters {
    std::uint64_t logins = 0;
    std::uint64_t refused_logins = 0;
    std::uint64_t new_users = 0;
    std::uint64_t sub_mismatches = 0; // refused: the username is bound to another sub
    std::uint64_t invalid_usernames = 0; // refused (400): reserved or malformed (common/names.hpp)
    std::uint64_t invalid_fields = 0; // refused (400): a stored login field too long or mistyped
    std::uint64_t logouts = 0;        // keys revoked
    std::uint64_t revocations_pruned = 0;
};

class ProfileCore {
public:
    ProfileCore(lmdb::Env& env, const IdentityProvider& identity, const AccessKeys& keys,
                const Clock& clock);

    // Serves one request envelope (kind request); returns the reply (kind reply, same
    // request_id). Methods: "login", "logout", "profile", "contactbook_sync",
    // "revocations" (the gateways' poll), and for the push daemon only
    // "notification_token" and "remove_token" (gateways never forward these).
    Envelope handle(const Envelope& request);
    const ProfileCounters& counters() const { return counters_; }
    // Periodic duty: forgets revocations of keys that expired anyway (bounded per call).
    void prune_revocations();
    const RevocationStore& revocations() const { return revocations_; }

    // Device notification token stored for `username` ("" if none); the push daemon reads it.
    std::string notification_token(std::string_view username);

private:
    Envelope login(const Envelope& request);
    Envelope logout(const Envelope& request);
    Envelope revocation_list(const Envelope& request);
    Envelope profile(const Envelope& request);
    Envelope contactbook_sync(const Envelope& request);
    Envelope notification_token_request(const Envelope& request);
    Envelope remove_token(const Envelope& request);

    lmdb::Env& env_;
    lmdb::Db users_;
    RevocationStore revocations_;
    const IdentityProvider& identity_;
    const AccessKeys& keys_;
    const Clock& clock_;
    ProfileCounters counters_;
};

} // namespace vartalap::profile
