// Webhook provider: POST {"token": "<device>", "to": "<user>", "message": "<message JSON>"}
// (application/json) to a configured http(s) URL, for deployments that relay pushes through
// their own service (another push vendor, an on-premise gateway, tests).
// Answers: 2xx → ok; 429, 5xx → retry (Retry-After honoured); 410 Gone → unregistered (the
// token is dead); anything else → failed.
//
// Thread: the push daemon's io thread (see provider.hpp).
#pragma once

#include "common/clock.hpp"
#include "common/http/http_client.hpp"
#include "daemons/push/provider.hpp"
#include "common/http/url.hpp"

namespace vartalap::push {

std::string webhook_body(std::string_view device_token, std::string_view to, std::string_view message_json);
PushResult classify_webhook_response(unsigned status, std::optional<std::uint64_t> retry_after_ms);

class WebhookProvider final : public PushProvider {
public:
    WebhookProvider(HttpClient& http, const Clock& clock, Url url);

    void send(const PushMessage& message, std::function<void(PushResult)> done) override;
    const char* name() const override { return "webhook"; }

private:
    HttpClient& http_;
    const Clock& clock_;
    Url url_;
};

} // namespace vartalap::push
