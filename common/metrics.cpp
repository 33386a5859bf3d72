// Thread-safety: see metrics.hpp.
#include "common/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>

namespace vartalap::metrics {
namespace {

constexpr std::string_view kPrefix = "vartalap_";

std::string_view type_name(Type type) {
    switch (type) {
    case Type::counter: return "counter";
    case Type::gauge: return "gauge";
    case Type::histogram: return "histogram";
    }
    return "untyped";
}

// Prometheus number text: integers without a fraction, +Inf/-Inf/NaN spelled as required.
std::string number(double value) {
    if (std::isnan(value)) return "NaN";
    if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
    if (value == std::floor(value) && std::fabs(value) < 1e15)
        return fmt::format("{}", static_cast<std::int64_t>(value));
    return fmt::format("{}", value);
}

// HELP text escapes backslash and newline.
std::string escape_help(std::string_view text) {
    std::string out;
    for (char c : text) {
        if (c == '\\') out += "\\\\";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

std::string joined(std::string_view base, std::string_view extra) {
    if (extra.empty()) return std::string(base);
    if (base.empty()) return std::string(extra);
    return fmt::format("{},{}", base, extra);
}

std::string short_name(const Family& family, const Sample& sample) {
    std::string_view name = family.name;
    if (name.starts_with(kPrefix)) name.remove_prefix(kPrefix.size());
    if (sample.labels.empty()) return std::string(name);
    return fmt::format("{}{{{}}}", name, sample.labels);
}

} // namespace

void Histogram::observe_ms(std::uint64_t ms) {
    const double seconds = static_cast<double>(ms) / 1000.0;
    const auto it = std::lower_bound(kBoundsSeconds.begin(), kBoundsSeconds.end(), seconds);
    ++buckets_[static_cast<std::size_t>(it - kBoundsSeconds.begin())];
    ++count_;
    sum_ms_ += ms;
}

Family& Snapshot::family(std::string_view name, std::string_view help, Type type) {
    for (Family& existing : families_)
        if (existing.name == name) return existing;
    Family& added = families_.emplace_back();
    added.name = std::string(name);
    added.help = std::string(help);
    added.type = type;
    return added;
}

Snapshot& Snapshot::counter(std::string_view name, std::string_view help, double value,
                            std::string_view labels) {
    family(name, help, Type::counter).samples.push_back({std::string(labels), value});
    return *this;
}

Snapshot& Snapshot::gauge(std::string_view name, std::string_view help, double value,
                          std::string_view labels) {
    family(name, help, Type::gauge).samples.push_back({std::string(labels), value});
    return *this;
}

Snapshot& Snapshot::histogram(std::string_view name, std::string_view help,
                              const Histogram& histogram) {
    family(name, help, Type::histogram).histogram = histogram;
    return *this;
}

std::string label(std::string_view name, std::string_view value) {
    std::string out = fmt::format("{}=\"", name);
    for (char c : value) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    out += '"';
    return out;
}

std::string render_prometheus(const Snapshot& snapshot, const Identity& identity) {
    const std::string base = joined(joined(label("instance", identity.instance),
                                           label("kind", identity.kind)),
                                    label("host", identity.host));
    std::string out;
    for (const Family& family : snapshot.families()) {
        out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", family.name, escape_help(family.help),
                           family.name, type_name(family.type));
        if (family.type != Type::histogram) {
            for (const Sample& sample : family.samples)
                out += fmt::format("{}{{{}}} {}\n", family.name, joined(base, sample.labels),
                                   number(sample.value));
            continue;
        }
        const Histogram& h = family.histogram;
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i < Histogram::kBoundsSeconds.size(); ++i) {
            cumulative += h.buckets()[i];
            out += fmt::format("{}_bucket{{{},le=\"{}\"}} {}\n", family.name, base,
                               Histogram::kBoundsSeconds[i], cumulative);
        }
        out += fmt::format("{}_bucket{{{},le=\"+Inf\"}} {}\n", family.name, base, h.count());
        out += fmt::format("{}_sum{{{}}} {}\n", family.name, base, number(h.sum_seconds()));
        out += fmt::format("{}_count{{{}}} {}\n", family.name, base, h.count());
    }
    return out;
}

void add_to_json(const Snapshot& snapshot, nlohmann::json& counters, nlohmann::json& gauges) {
    for (const Family& family : snapshot.families()) {
        if (family.type == Type::histogram) continue;
        nlohmann::json& into = family.type == Type::counter ? counters : gauges;
        for (const Sample& sample : family.samples) into[short_name(family, sample)] = sample.value;
    }
}

void Board::publish(Snapshot snapshot, std::uint64_t now_ms) {
    {
        std::lock_guard lock(mutex_);
        snapshot_ = std::move(snapshot);
    }
    last_publish_ms_.store(now_ms, std::memory_order_relaxed);
    published_.store(true, std::memory_order_release);
}

std::optional<std::uint64_t> Board::last_publish_ms() const {
    if (!published_.load(std::memory_order_acquire)) return std::nullopt;
    return last_publish_ms_.load(std::memory_order_relaxed);
}

Snapshot Board::snapshot() const {
    std::lock_guard lock(mutex_);
    return snapshot_;
}

std::string_view to_string(Health health) {
    switch (health) {
    case Health::ok: return "ok";
    case Health::starting: return "starting";
    case Health::stalled: return "stalled";
    case Health::draining: return "draining";
    }
    return "unknown";
}

Health health_of(std::optional<std::uint64_t> last_publish_ms, std::uint64_t started_ms,
                 std::uint64_t now_ms, bool draining) {
    if (draining) return Health::draining;
    if (!last_publish_ms)
        return now_ms - std::min(now_ms, started_ms) < kStartingGraceMs ? Health::starting
                                                                          : Health::stalled;
    return now_ms - std::min(now_ms, *last_publish_ms) <= kStalledAfterMs ? Health::ok
                                                                           : Health::stalled;
}

} // namespace vartalap::metrics
