// Thread: the push daemon's io thread.
#include "daemons/push/webhook.hpp"

#include "daemons/push/backoff.hpp"

#include <nlohmann/json.hpp>

namespace vartalap::push {

using nlohmann::json;

std::string webhook_body(std::string_view device_token, std::string_view to, std::string_view message_json) {
    const json body = {{"token", device_token}, {"to", to}, {"message", message_json}};
    return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

PushResult classify_webhook_response(unsigned status, std::optional<std::uint64_t> retry_after_ms) {
    const std::string reason = "HTTP " + std::to_string(status);
    if (status >= 200 && status < 300) return PushResult::delivered();
    if (status == 429 || status >= 500) return PushResult::retry(retry_after_ms, reason);
    if (status == 410) return PushResult::unregistered(reason);
    return PushResult::failed(reason);
}

WebhookProvider::WebhookProvider(HttpClient& http, const Clock& clock, Url url)
    : http_(http), clock_(clock), url_(std::move(url)) {}

void WebhookProvider::send(const PushMessage& message, std::function<void(PushResult)> done) {
    HttpRequest request;
    request.url = url_;
    request.content_type = "application/json";
    request.body = webhook_body(message.device_token, message.to, message.message_json);
    http_.post(std::move(request), [this, done = std::move(done)](HttpResponse response) {
        if (response.error) return done(PushResult::retry(std::nullopt, "webhook: " + response.error.message()));
        std::optional<std::uint64_t> retry_after;
        if (!response.retry_after.empty()) retry_after = parse_retry_after(response.retry_after, clock_.wall_ms());
        done(classify_webhook_response(response.status, retry_after));
    });
}

} // namespace vartalap::push
