// profile: /login (issues access keys, stores the device's notification token),
// /profile and /contactbook/sync. ProfileCore is the socket-free logic over a real LMDB
// store; the daemon in profile_daemon.cpp owns the ROUTER socket that rest-gateways talk to.
//
// Thread-safety: ProfileCore belongs to the daemon's thread. Errors: bad requests become
// replies with a status; LMDB failures other than MDB_MAP_FULL throw (restart is cheap).
#pragma once

#include "common/access_key.hpp"
#include "common/clock.hpp"
#include "common/wire/envelope.hpp"
#include "common/store/lmdb.hpp"

#include <memory>
#include <string>
#include <string_view>

namespace vartalap::profile {

// Checks that the holder of an identity token is `username`. The production provider
// (RS256 ID tokens verified offline against configured certificates) implements this too.
class IdentityProvider {
public:
    virtual ~IdentityProvider() = default;
    // True if `token` proves `username`; otherwise false and a reason for the log.
    virtual bool verify(std::string_view username, std::string_view token,
                        std::string& reason) const = 0;
};

// Development only: any non-empty token proves any username.
class DevelopmentIdentityProvider final : public IdentityProvider {
public:
    bool verify(std::string_view username, std::string_view token,
                std::string& reason) const override;
};

struct ProfileCounters {
    std::uint64_t logins = 0;
    std::uint64_t refused_logins = 0;
    std::uint64_t new_users = 0;
};

class ProfileCore {
public:
    ProfileCore(lmdb::Env& env, const IdentityProvider& identity, const AccessKeys& keys,
                const Clock& clock);

    // Serves one request envelope (kind request); returns the reply (kind reply, same
    // request_id). Methods: "login", "profile", "contactbook_sync", and for the push daemon
    // only "notification_token" and "remove_token" (gateways never forward these).
    Envelope handle(const Envelope& request);
    const ProfileCounters& counters() const { return counters_; }

    // Device notification token stored for `username` ("" if none); the push daemon reads it.
    std::string notification_token(std::string_view username);

private:
    Envelope login(const Envelope& request);
    Envelope profile(const Envelope& request);
    Envelope contactbook_sync(const Envelope& request);
    Envelope notification_token_request(const Envelope& request);
    Envelope remove_token(const Envelope& request);

    lmdb::Env& env_;
    lmdb::Db users_;
    const IdentityProvider& identity_;
    const AccessKeys& keys_;
    const Clock& clock_;
    ProfileCounters counters_;
};

} // namespace vartalap::profile
