// FCM HTTP v1 provider: OAuth2 bearer token from a service account (oauth.hpp), then
// POST https://fcm.googleapis.com/v1/projects/<project>/messages:send per push.
//
// What is sent (PROTOCOL.md "Push"): a data message whose key `message` holds the message
// JSON as a string, with Android priority high so a dozing device wakes up for it:
//   {"message":{"token":"<device>","data":{"message":"<json>"},"android":{"priority":"high"}}}
// How answers map (Google's FCM v1 error codes):
//   2xx → ok; 429, 5xx → retry (Retry-After honoured); 404/400 with errorCode UNREGISTERED,
//   or 400 INVALID_ARGUMENT whose field violation is message.token → unregistered;
//   401 → the bearer token is refreshed once and the push re-sent; anything else → failed
//   (a 404 without UNREGISTERED is a wrong URL or project, not a dead token: tokens are
//   removed only on Google's explicit word).
//
// Thread: the push daemon's io thread (see provider.hpp). At most one token request is in
// flight; sends that need a token meanwhile wait for it (they are bounded by the queue's
// max_in_flight).
#pragma once

#include "common/clock.hpp"
#include "common/http/http_client.hpp"
#include "daemons/push/oauth.hpp"
#include "daemons/push/provider.hpp"
#include "common/http/url.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vartalap::push {

std::string fcm_default_endpoint(std::string_view project_id);
// The send request body; invalid UTF-8 in the message is replaced (JSON strings must be
// UTF-8; the gateway validated the client's JSON, so this does not happen in practice).
std::string fcm_send_body(std::string_view device_token, std::string_view message_json);
// Maps an FCM send response (not 401, which FcmProvider handles) to an outcome.
PushResult classify_fcm_response(unsigned status, std::string_view body,
                                 std::optional<std::uint64_t> retry_after_ms);

struct FcmOptions {
    ServiceAccount account;
    std::string token_uri; // "" = the service account's token_uri
    std::string endpoint;  // "" = fcm_default_endpoint(account.project_id)
};

class FcmProvider final : public PushProvider {
public:
    // Throws std::invalid_argument for an unusable key or URL (the daemon refuses to start).
    FcmProvider(HttpClient& http, const Clock& clock, FcmOptions options);

    void send(const PushMessage& message, std::function<void(PushResult)> done) override;
    const char* name() const override { return "fcm"; }

    std::uint64_t token_requests() const { return token_requests_; }

private:
    struct Send;
    // Called with the bearer token, or with nullptr and the outcome for the waiting sends.
    using TokenReady = std::function<void(const std::string* token, const PushResult& failure)>;

    void with_token(TokenReady ready);
    void fetch_token();
    void on_token_response(HttpResponse response);
    void post_message(const std::shared_ptr<Send>& send, const std::string& token);
    void on_send_response(const std::shared_ptr<Send>& send, HttpResponse response);
    std::optional<std::uint64_t> retry_after(const HttpResponse& response) const;

    HttpClient& http_;
    const Clock& clock_;
    std::string client_email_;
    RsaSigner signer_;
    Url token_url_;
    std::string token_uri_;
    Url endpoint_;
    AccessTokenCache cache_;
    std::vector<TokenReady> token_waiters_;
    bool token_request_in_flight_ = false;
    std::uint64_t token_requests_ = 0;
};

} // namespace vartalap::push
