// The Firebase provider's certificate set, kept current: fetched over HTTPS (the shared
// common/http/http_client.hpp: chain and host name verified, SNI) from `url`, or read from
// `file`; kept for the response's Cache-Control max-age and fetched again in the
// background when 90% of it has passed; fetched at once when a token names an unknown kid
// (refresh_soon, at most once per `min_interval`). A failed fetch keeps the last good set
// until it expires, logs a warning, counts, and retries after 5 s doubling to 5 min.
// docs/INTERNAL_PROTOCOL.md, "Identity and revocation".
//
// Thread: a thread of its own running an io_context; start() and stop() from the daemon's
// thread, refresh_soon() and the counters from any thread. The store it fills is read by
// the profile loop (CertificateStore is thread-safe).
#pragma once

#include "daemons/profile/firebase_token.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

namespace vartalap::profile {

struct CertificateFetcherOptions {
    std::string url;      // https:// (or http:// for tests); used when `file` is empty
    std::string file;     // a local copy of the same JSON document
    std::string ca_file;  // PEM CAs trusted instead of the system store
    std::chrono::seconds min_interval{30}; // between fetches asked for by unknown kids
    std::chrono::seconds default_max_age{300}; // no Cache-Control max-age, or a file
};

class CertificateFetcher {
public:
    // Throws std::invalid_argument for a bad URL or CA file.
    // `clock`: wall time for the set's expiry (the provider reads the same clock).
    CertificateFetcher(std::string name, CertificateFetcherOptions options,
                       CertificateStore& store, const Clock& clock);
    ~CertificateFetcher();
    CertificateFetcher(const CertificateFetcher&) = delete;
    CertificateFetcher& operator=(const CertificateFetcher&) = delete;

    void start();
    void stop();
    // A token named a kid the current set lacks (or there is no set): fetch now, unless a
    // fetch is running or the last one began less than min_interval ago.
    void refresh_soon();

    std::uint64_t refreshes() const { return refreshes_.load(); }
    std::uint64_t failures() const { return failures_.load(); }

private:
    class Impl;
    std::unique_ptr<Impl> impl_;
    std::atomic<std::uint64_t> refreshes_{0};
    std::atomic<std::uint64_t> failures_{0};
};

} // namespace vartalap::profile
