// The interface between the push queue and a push service (FCM HTTP v1, a webhook), and
// the outcome of one send, which decides what the queue does next.
//
// Thread: a provider belongs to the push daemon's io thread; send() and its callback run
// there. Contract: `done` is called exactly once, never from within send() (so the queue
// may call send() in the middle of its own bookkeeping), unless the io_context stops first.
// Providers never log device tokens, bearer tokens, keys or message bodies.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace vartalap::push {

struct PushResult {
    enum class Outcome {
        ok,           // the provider accepted the push
        retry,        // try again later (429, 5xx, transport errors), after retry_after_ms if set
        unregistered, // the device token is dead: remove it from the profile
        failed,       // a permanent error for this push (bad payload, bad credentials)
    };
    Outcome outcome = Outcome::ok;
    std::optional<std::uint64_t> retry_after_ms; // the provider's Retry-After, retry only
    std::string reason;                          // for the log; never contains secrets

    static PushResult delivered() { return {Outcome::ok, std::nullopt, {}}; }
    static PushResult retry(std::optional<std::uint64_t> after_ms, std::string why) {
        return {Outcome::retry, after_ms, std::move(why)};
    }
    static PushResult unregistered(std::string why) { return {Outcome::unregistered, std::nullopt, std::move(why)}; }
    static PushResult failed(std::string why) { return {Outcome::failed, std::nullopt, std::move(why)}; }
};

struct PushMessage {
    std::string device_token; // the recipient's device token, from the profile daemon (secret)
    std::string to;           // the recipient user
    std::string message_json; // the message as the recipient reads it (JSON text)
};

class PushProvider {
public:
    virtual ~PushProvider() = default;
    // Starts one send; see the contract above.
    virtual void send(const PushMessage& message, std::function<void(PushResult)> done) = 0;
    virtual const char* name() const = 0;
};

} // namespace vartalap::push
