// Thread: the push daemon's io thread.
#include "daemons/push/fcm.hpp"

#include "daemons/push/backoff.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <stdexcept>

namespace vartalap::push {

using nlohmann::json;

std::string fcm_default_endpoint(std::string_view project_id) {
    return "https://fcm.googleapis.com/v1/projects/" + std::string(project_id) + "/messages:send";
}

std::string fcm_send_body(std::string_view device_token, std::string_view message_json) {
    const json body = {{"message",
                        {{"token", device_token},
                         {"data", {{"message", message_json}}},
                         {"android", {{"priority", "high"}}}}}};
    return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

PushResult classify_fcm_response(unsigned status, std::string_view body,
                                 std::optional<std::uint64_t> retry_after_ms) {
    if (status >= 200 && status < 300) return PushResult::delivered();
    // The error document: {"error":{"code":404,"status":"NOT_FOUND","details":[
    //   {"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"},
    //   {"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"message.token"}]}]}}
    std::string error_status, error_code;
    bool token_field_violation = false;
    const json document = json::parse(body, nullptr, false);
    if (document.is_object()) {
        auto error = document.find("error");
        if (error != document.end() && error->is_object()) {
            if (auto it = error->find("status"); it != error->end() && it->is_string())
                error_status = it->get<std::string>().substr(0, 64); // bounded: it goes to the log
            auto details = error->find("details");
            if (details != error->end() && details->is_array()) {
                for (const json& detail : *details) {
                    if (!detail.is_object()) continue;
                    if (auto it = detail.find("errorCode"); it != detail.end() && it->is_string())
                        error_code = it->get<std::string>().substr(0, 64);
                    auto violations = detail.find("fieldViolations");
                    if (violations == detail.end() || !violations->is_array()) continue;
                    for (const json& violation : *violations) {
                        if (!violation.is_object()) continue;
                        auto field = violation.find("field");
                        if (field != violation.end() && field->is_string() && *field == "message.token")
                            token_field_violation = true;
                    }
                }
            }
        }
    }
    // Codes only: FCM's free-text message is not needed and is not ours to vouch for.
    std::string reason = "HTTP " + std::to_string(status);
    if (!error_status.empty()) reason += " " + error_status;
    if (!error_code.empty() && error_code != error_status) reason += " " + error_code;

    if (status == 429 || status >= 500) return PushResult::retry(retry_after_ms, std::move(reason));
    if ((status == 404 || status == 400) && error_code == "UNREGISTERED")
        return PushResult::unregistered(std::move(reason));
    if (status == 400 && (error_code == "INVALID_ARGUMENT" || error_status == "INVALID_ARGUMENT") &&
        token_field_violation)
        return PushResult::unregistered(std::move(reason));
    return PushResult::failed(std::move(reason));
}

struct FcmProvider::Send {
    HttpRequest request;           // authorization filled in per attempt
    std::function<void(PushResult)> done;
    std::string used_token;        // the bearer of the last attempt, to invalidate on 401
    bool refreshed_after_401 = false;
};

FcmProvider::FcmProvider(HttpClient& http, const Clock& clock, FcmOptions options)
    : http_(http),
      clock_(clock),
      client_email_(options.account.client_email),
      signer_(RsaSigner::from_pem(options.account.private_key_pem)),
      token_uri_(options.token_uri.empty() ? options.account.token_uri : options.token_uri) {
    auto token_url = parse_url(token_uri_);
    if (!token_url) throw std::invalid_argument("token_uri is not an http(s) URL");
    token_url_ = std::move(*token_url);
    const std::string endpoint =
        options.endpoint.empty() ? fcm_default_endpoint(options.account.project_id) : options.endpoint;
    auto endpoint_url = parse_url(endpoint);
    if (!endpoint_url) throw std::invalid_argument("fcm_endpoint is not an http(s) URL");
    endpoint_ = std::move(*endpoint_url);
}

void FcmProvider::send(const PushMessage& message, std::function<void(PushResult)> done) {
    auto send = std::make_shared<Send>();
    send->request.url = endpoint_;
    send->request.content_type = "application/json";
    send->request.body = fcm_send_body(message.device_token, message.message_json);
    send->done = std::move(done);
    with_token([this, send](const std::string* token, const PushResult& failure) {
        if (!token) return send->done(failure);
        post_message(send, *token);
    });
}

void FcmProvider::with_token(TokenReady ready) {
    if (const std::string* token = cache_.valid(clock_.monotonic_ms())) {
        ready(token, {}); // posts an HTTP request: `done` still runs later, never inside send()
        return;
    }
    token_waiters_.push_back(std::move(ready));
    if (!token_request_in_flight_) fetch_token();
}

void FcmProvider::fetch_token() {
    token_request_in_flight_ = true;
    ++token_requests_;
    HttpRequest request;
    request.url = token_url_;
    request.content_type = "application/x-www-form-urlencoded";
    AssertionClaims claims{client_email_, std::string(kFcmScope), token_uri_, clock_.wall_ms() / 1000};
    request.body = token_request_body(build_assertion(claims, signer_));
    http_.post(std::move(request), [this](HttpResponse response) { on_token_response(std::move(response)); });
}

void FcmProvider::on_token_response(HttpResponse response) {
    token_request_in_flight_ = false;
    PushResult failure;
    std::optional<AccessToken> token;
    if (response.error) {
        failure = PushResult::retry(std::nullopt, "token endpoint: " + response.error.message());
    } else if (response.status == 429 || response.status >= 500) {
        failure = PushResult::retry(retry_after(response), "token endpoint: HTTP " + std::to_string(response.status));
    } else if (response.status != 200 || !(token = parse_token_response(response.body))) {
        // 400 invalid_grant and friends: the service account is wrong (or revoked). Every
        // push fails until an operator fixes it, so this is an error, logged each time.
        std::string code; // OAuth2's error code ("invalid_grant"), never the description
        const json body = json::parse(response.body, nullptr, false);
        if (body.is_object())
            if (auto it = body.find("error"); it != body.end() && it->is_string())
                code = it->get<std::string>().substr(0, 64);
        failure = PushResult::failed("token endpoint refused the service account: HTTP " +
                                     std::to_string(response.status) + (code.empty() ? "" : " " + code));
        spdlog::error("push: {}", failure.reason);
    }
    if (token) cache_.store(std::move(token->token), token->expires_in_seconds, clock_.monotonic_ms());
    // Waiters may add new waiters (a 401 refresh) while we call them: take the list first.
    auto waiters = std::move(token_waiters_);
    token_waiters_.clear();
    const std::string* valid = token ? cache_.valid(clock_.monotonic_ms()) : nullptr;
    if (token && !valid) failure = PushResult::retry(std::nullopt, "token endpoint: token already expired");
    const std::string bearer = valid ? *valid : std::string(); // a copy: callbacks may touch the cache
    for (auto& ready : waiters) ready(valid ? &bearer : nullptr, failure);
}

void FcmProvider::post_message(const std::shared_ptr<Send>& send, const std::string& token) {
    send->used_token = token;
    HttpRequest request = send->request;
    request.authorization = "Bearer " + token;
    http_.post(std::move(request),
               [this, send](HttpResponse response) { on_send_response(send, std::move(response)); });
}

void FcmProvider::on_send_response(const std::shared_ptr<Send>& send, HttpResponse response) {
    if (response.error) return send->done(PushResult::retry(std::nullopt, "FCM: " + response.error.message()));
    if (response.status == 401) {
        if (send->refreshed_after_401)
            return send->done(PushResult::failed("FCM: HTTP 401 with a fresh access token"));
        // The token expired early or was revoked: forget it (unless another send has
        // already replaced it) and re-send once with a new one.
        send->refreshed_after_401 = true;
        cache_.invalidate(send->used_token);
        return with_token([this, send](const std::string* token, const PushResult& failure) {
            if (!token) return send->done(failure);
            post_message(send, *token);
        });
    }
    send->done(classify_fcm_response(response.status, response.body, retry_after(response)));
}

std::optional<std::uint64_t> FcmProvider::retry_after(const HttpResponse& response) const {
    if (response.retry_after.empty()) return std::nullopt;
    return parse_retry_after(response.retry_after, clock_.wall_ms());
}

} // namespace vartalap::push
