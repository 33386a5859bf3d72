// docs/grafana-dashboard.json against the code (issue 13): every metric name a panel or a
// variable queries is one a daemon publishes, and every metric family published by name is
// on the dashboard, so neither side can drift unnoticed.
//
// What "published" means here, read from the sources of daemons/ and common/:
//   - a name given to a Snapshot call: `.counter("vartalap_x", ...)`, `.gauge(`, `.histogram(`
//     (a histogram is queried as <name>_bucket, _sum or _count);
//   - a kind's own counters, `add_counters(s, "<kind>", rows)` (daemons/publisher.hpp):
//     vartalap_<kind>_<row>_total for every `{"<row>", ...}` of the file's `rows[] = {...};`.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kSource = VARTALAP_SOURCE_DIR;

std::string read_file(const fs::path& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

struct Published {
    std::set<std::string> named;      // given to counter/gauge/histogram by name
    std::set<std::string> histograms; // of those, the histograms
    std::set<std::string> kind_counters;
    bool has(const std::string& name) const {
        if (named.count(name) || kind_counters.count(name)) return true;
        for (const char* suffix : {"_bucket", "_sum", "_count"}) {
            const std::string s = suffix;
            if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0 &&
                histograms.count(name.substr(0, name.size() - s.size())))
                return true;
        }
        return false;
    }
};

Published published() {
    Published out;
    const std::regex call(R"re(\.(counter|gauge|histogram)\(\s*"(vartalap_[a-z0-9_]+)")re");
    const std::regex kind(R"re(add_counters\(\s*\w+,\s*"([a-z_]+)")re");
    const std::regex rows_table(R"re(rows\[\]\s*=\s*\{([\s\S]*?)\};)re");
    const std::regex row(R"re(\{"([a-z_]+)",)re");
    for (const char* dir : {"daemons", "common"})
        for (const auto& entry : fs::recursive_directory_iterator(kSource / dir)) {
            const auto ext = entry.path().extension();
            if (ext != ".cpp" && ext != ".hpp") continue;
            const std::string text = read_file(entry.path());
            for (std::sregex_iterator it(text.begin(), text.end(), call), end; it != end; ++it) {
                out.named.insert((*it)[2]);
                if ((*it)[1] == "histogram") out.histograms.insert((*it)[2]);
            }
            // The rows are the `rows[] = {...};` table just before the call.
            std::smatch kind_match;
            std::smatch table;
            if (!std::regex_search(text, kind_match, kind) ||
                !std::regex_search(text, table, rows_table))
                continue;
            const std::string rows = table[1];
            for (std::sregex_iterator it(rows.begin(), rows.end(), row), end; it != end; ++it)
                out.kind_counters.insert("vartalap_" + kind_match[1].str() + "_" + (*it)[1].str() + "_total");
        }
    return out;
}

json dashboard() {
    return json::parse(read_file(kSource / "docs/grafana-dashboard.json"));
}

// Every PromQL text of the dashboard: the panels' targets and the variables' queries.
std::vector<std::string> queries(const json& board) {
    std::vector<std::string> out;
    for (const auto& panel : board.at("panels"))
        for (const auto& target : panel.value("targets", json::array())) out.push_back(target.at("expr"));
    for (const auto& variable : board.at("templating").at("list"))
        if (variable.value("type", "") == "query") out.push_back(variable.at("definition"));
    return out;
}

std::set<std::string> metric_names(const std::vector<std::string>& texts) {
    std::set<std::string> names;
    const std::regex name(R"(\bvartalap_[a-z0-9_]+)");
    for (const auto& text : texts)
        for (std::sregex_iterator it(text.begin(), text.end(), name), end; it != end; ++it)
            names.insert((*it)[0]);
    return names;
}

TEST(GrafanaDashboard, SourceScanFindsThePublishedNames) {
    // The scan itself: names every kind publishes are found, made-up ones are not.
    const Published code = published();
    EXPECT_TRUE(code.has("vartalap_up"));
    EXPECT_TRUE(code.has("vartalap_delivery_latency_seconds_bucket"));
    EXPECT_FALSE(code.has("vartalap_up_bucket")); // not a histogram
    EXPECT_TRUE(code.has("vartalap_session_stored_total"));
    EXPECT_TRUE(code.has("vartalap_ws_gateway_accept_failures_total"));
    EXPECT_FALSE(code.has("vartalap_session_accept_failures_total"));
    EXPECT_FALSE(code.has("vartalap_messages_total"));
    EXPECT_GE(code.named.size(), 20u);
    EXPECT_GE(code.kind_counters.size(), 100u);
}

TEST(GrafanaDashboard, QueriesOnlyPublishedMetrics) {
    const Published code = published();
    const auto names = metric_names(queries(dashboard()));
    EXPECT_GE(names.size(), 40u);
    for (const auto& name : names) EXPECT_TRUE(code.has(name)) << name << " is queried but no daemon publishes it";
}

TEST(GrafanaDashboard, ShowsEveryMetricPublishedByName) {
    const auto names = metric_names(queries(dashboard()));
    const Published code = published();
    for (const auto& name : code.named) {
        const bool shown = names.count(name) || names.count(name + "_bucket") || names.count(name + "_sum");
        EXPECT_TRUE(shown) << name << " is published but not on the dashboard";
    }
}

TEST(GrafanaDashboard, PanelsAreWellFormed) {
    const json board = dashboard();
    EXPECT_EQ(board.at("uid"), "vartalap-server");
    std::set<int> ids;
    for (const auto& panel : board.at("panels")) {
        EXPECT_TRUE(ids.insert(panel.at("id").get<int>()).second) << "duplicate panel id " << panel.at("id");
        const auto& grid = panel.at("gridPos");
        EXPECT_LE(grid.at("x").get<int>() + grid.at("w").get<int>(), 24) << panel.at("title");
        if (panel.at("type") == "row") continue;
        EXPECT_EQ(panel.at("datasource").at("uid"), "${datasource}") << panel.at("title");
        EXPECT_FALSE(panel.at("targets").empty()) << panel.at("title");
        for (const auto& target : panel.at("targets")) {
            const std::string expr = target.at("expr");
            // Every query follows the host and instance variables.
            EXPECT_NE(expr.find("host=~\"$host\""), std::string::npos) << expr;
            EXPECT_NE(expr.find("instance=~\"$instance\""), std::string::npos) << expr;
        }
    }
}

} // namespace
