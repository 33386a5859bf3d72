// The web client's static files (web_files.hpp) and how the core serves them: which files
// load, which names a path can reach (none outside the directory), Content-Types, the
// headers, and the answers when no client is installed.
#include "daemons/rest_gateway/rest_gateway_core.hpp"
#include "daemons/rest_gateway/web_files.hpp"
#include "tests/support/fixtures.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>

namespace vartalap::rest_gateway {
namespace {

namespace fs = std::filesystem;

void write(const fs::path& file, const std::string& text) { std::ofstream(file) << text; }

TEST(WebFilesTest, LoadsPlainFilesOfKnownTypesOnly) {
    vartalap::test::TempDirectory dir("web-files");
    write(dir.path() / "index.html", "<!doctype html>");
    write(dir.path() / "app.js", "'use strict';");
    write(dir.path() / "style.css", "body{}");
    write(dir.path() / ".hidden.js", "secret");
    write(dir.path() / "notes.md", "not served");
    write(dir.path() / "big.js", std::string(WebFiles::kMaxFileBytes + 1, 'x'));
    fs::create_directory(dir.path() / "sub");
    write(dir.path() / "sub" / "inner.js", "nested");
    write(dir.path() / "outside.txt", "outside");
    fs::create_symlink(dir.path() / "outside.txt", dir.path() / "link.txt");

    std::vector<std::string> skipped;
    const WebFiles files = WebFiles::load(dir.path(), skipped);
    EXPECT_TRUE(files.has_index());
    ASSERT_NE(files.find("app.js"), nullptr);
    EXPECT_EQ(files.find("app.js")->body, "'use strict';");
    EXPECT_EQ(files.find("app.js")->content_type, "text/javascript; charset=utf-8");
    EXPECT_EQ(files.find("index.html")->content_type, "text/html; charset=utf-8");
    EXPECT_EQ(files.find("style.css")->content_type, "text/css; charset=utf-8");
    EXPECT_NE(files.find("outside.txt"), nullptr);
    for (const char* absent : {".hidden.js", "notes.md", "big.js", "sub", "inner.js", "link.txt"})
        EXPECT_EQ(files.find(absent), nullptr) << absent;
    EXPECT_EQ(files.size(), 4u);
    EXPECT_EQ(skipped.size(), 3u); // .hidden.js, notes.md, big.js (the directory and the link are not files)
}

TEST(WebFilesTest, MissingDirectoryIsEmptyAndSaysWhy) {
    std::vector<std::string> skipped;
    const WebFiles files = WebFiles::load("/nonexistent/vartalap-web", skipped);
    EXPECT_FALSE(files.has_index());
    EXPECT_EQ(files.size(), 0u);
    EXPECT_EQ(skipped.size(), 1u);
}

TEST(WebFilesTest, PathsNameOnlyPlainFilesOfTheDirectory) {
    EXPECT_EQ(web_file_name("/"), "index.html");
    EXPECT_EQ(web_file_name("/app"), "index.html");
    EXPECT_EQ(web_file_name("/app/"), "index.html");
    EXPECT_EQ(web_file_name("/v1.0/app/app.js"), "app.js");
    EXPECT_EQ(web_file_name("/app/style.css"), "style.css");
    for (const char* bad : {"/app/../secret.key", "/app/..", "/app/%2e%2e%2fsecret", "/app/sub/x.js",
                            "/app/.hidden", "/app//etc/passwd", "/index.html", "/apps/x.js", "/app/a b.js"})
        EXPECT_EQ(web_file_name(bad), std::nullopt) << bad;
}

TEST(WebFilesTest, ContentTypesByExtension) {
    EXPECT_EQ(WebFiles::content_type_of("icon.svg"), "image/svg+xml");
    EXPECT_EQ(WebFiles::content_type_of("config.json"), "application/json");
    EXPECT_EQ(WebFiles::content_type_of("a.png"), "image/png");
    EXPECT_EQ(WebFiles::content_type_of("run.sh"), std::nullopt);
    EXPECT_EQ(WebFiles::content_type_of(".js"), std::nullopt);
}

TEST(WebFilesTest, CapsTheNumberOfFiles) {
    vartalap::test::TempDirectory dir("web-files-many");
    for (std::size_t i = 0; i < WebFiles::kMaxFiles + 5; ++i)
        write(dir.path() / ("f" + std::to_string(i) + ".txt"), "x");
    std::vector<std::string> skipped;
    const WebFiles files = WebFiles::load(dir.path(), skipped);
    EXPECT_EQ(files.size(), WebFiles::kMaxFiles);
    EXPECT_EQ(skipped.size(), 5u);
}

class NoOutbox final : public RestOutbox {
public:
    bool has_owner(std::string_view) const override { return false; }
    SendResult to_owner(std::string_view, const Envelope&) override { return SendResult::ok; }
    SendResult to_router(const Envelope&) override { return SendResult::ok; }
    SendResult reply(std::string_view, const Envelope&) override { return SendResult::ok; }
};

class Answer final : public RestExchange {
public:
    void respond(RestResponse r) override { response = std::move(r); }
    std::optional<RestResponse> response;
};

class WebServeTest : public ::testing::Test {
protected:
    WebServeTest() : keys_(std::string(32, 's')) {
        core_ = std::make_unique<RestGatewayCore>("rest-1", outbox_, clock_, keys_,
                                                  RestLimits{}, ClientMessageLimits{});
    }
    RestResponse get(const std::string& target, const std::string& method = "GET") {
        auto answer = std::make_shared<Answer>();
        RestRequest request;
        request.method = method;
        request.target = target;
        core_->handle(answer, std::move(request));
        EXPECT_TRUE(answer->response.has_value());
        return answer->response.value_or(RestResponse{HttpStatus::internal_server_error, ""});
    }
    std::string header(const RestResponse& r, const std::string& name) {
        for (const auto& [n, v] : r.headers)
            if (n == name) return v;
        return {};
    }

    NoOutbox outbox_;
    SystemClock clock_;
    AccessKeys keys_;
    std::unique_ptr<RestGatewayCore> core_;
};

TEST_F(WebServeTest, ServesTheClientWithoutCredentials) {
    auto web = std::make_shared<WebFiles>();
    web->add("index.html", {"<!doctype html>", "text/html; charset=utf-8"});
    web->add("app.js", {"'use strict';", "text/javascript; charset=utf-8"});
    core_->set_web(web);
    for (const char* target : {"/", "/app", "/app/", "/app/?ws=ws://x/wss"}) {
        const RestResponse r = get(target);
        EXPECT_EQ(r.status, HttpStatus::ok) << target;
        EXPECT_EQ(r.body, "<!doctype html>") << target;
        EXPECT_EQ(r.content_type, "text/html; charset=utf-8");
    }
    const RestResponse js = get("/app/app.js");
    EXPECT_EQ(js.status, HttpStatus::ok);
    EXPECT_EQ(js.content_type, "text/javascript; charset=utf-8");
    EXPECT_EQ(header(js, "X-Content-Type-Options"), "nosniff");
    EXPECT_NE(header(js, "Content-Security-Policy").find("default-src 'self'"), std::string::npos);
    EXPECT_EQ(get("/app/missing.js").status, HttpStatus::not_found);
    EXPECT_EQ(get("/app/../app.js").status, HttpStatus::not_found);
    EXPECT_EQ(get("/app/app.js", "POST").status, HttpStatus::method_not_allowed);
    // The API is untouched: /alive, and 401 without credentials.
    EXPECT_EQ(get("/alive").body, "OK");
    EXPECT_EQ(get("/profile").status, HttpStatus::unauthorized);
}

TEST_F(WebServeTest, NoClientInstalledIsAClear404) {
    const RestResponse r = get("/");
    EXPECT_EQ(r.status, HttpStatus::not_found);
    EXPECT_NE(r.body.find("web_dir"), std::string::npos);
}

} // namespace
} // namespace vartalap::rest_gateway
