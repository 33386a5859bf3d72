// Thread: the rest-gateway's (load at start; then read-only). See web_files.hpp.
#include "daemons/rest_gateway/web_files.hpp"

#include <fstream>
#include <iterator>
#include <system_error>

#ifndef VARTALAP_WEB_SOURCE_DIR
#define VARTALAP_WEB_SOURCE_DIR ""
#endif

namespace vartalap::rest_gateway {

namespace fs = std::filesystem;

std::optional<std::string> WebFiles::content_type_of(std::string_view name) {
    static const std::pair<std::string_view, std::string_view> types[] = {
        {".html", "text/html; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".json", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
    };
    for (const auto& [extension, type] : types)
        if (name.size() > extension.size() && name.ends_with(extension)) return std::string(type);
    return std::nullopt;
}

bool WebFiles::plain_name(std::string_view name) {
    if (name.empty() || name.size() > 100 || name.front() == '.') return false;
    for (const unsigned char c : name)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_'))
            return false;
    return true;
}

WebFiles WebFiles::load(const fs::path& dir, std::vector<std::string>& skipped) {
    WebFiles files;
    files.dir_ = dir;
    std::error_code ec;
    fs::directory_iterator it(dir, ec);
    if (ec) {
        skipped.push_back(dir.string() + ": " + ec.message());
        return files;
    }
    for (; it != fs::directory_iterator(); it.increment(ec)) {
        if (ec) {
            skipped.push_back(dir.string() + ": " + ec.message());
            break;
        }
        const std::string name = it->path().filename().string();
        // symlink_status: a link is not followed (it could point anywhere).
        if (!fs::is_regular_file(it->symlink_status(ec))) continue;
        const auto type = content_type_of(name);
        if (!plain_name(name) || !type) {
            skipped.push_back(name + ": not a served name or type");
            continue;
        }
        const auto bytes = it->file_size(ec);
        if (ec || bytes > kMaxFileBytes) {
            skipped.push_back(name + ": larger than " + std::to_string(kMaxFileBytes) + " bytes");
            continue;
        }
        if (files.files_.size() >= kMaxFiles) {
            skipped.push_back(name + ": more than " + std::to_string(kMaxFiles) + " files");
            continue;
        }
        std::ifstream in(it->path(), std::ios::binary);
        std::string body{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
        if (!in.good() && !in.eof()) {
            skipped.push_back(name + ": unreadable");
            continue;
        }
        body.resize(std::min<std::size_t>(body.size(), kMaxFileBytes));
        files.files_[name] = WebFile{std::move(body), *type};
    }
    return files;
}

const WebFile* WebFiles::find(std::string_view name) const {
    const auto it = files_.find(name);
    return it == files_.end() ? nullptr : &it->second;
}

fs::path find_web_dir(const std::string& option) {
    if (!option.empty()) return option;
    std::vector<fs::path> candidates;
    std::error_code ec;
    const fs::path self = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) candidates.push_back(self.parent_path().parent_path() / "share" / "vartalap" / "web");
    if (const std::string source = VARTALAP_WEB_SOURCE_DIR; !source.empty())
        candidates.emplace_back(source);
    candidates.emplace_back("/usr/share/vartalap/web");
    for (const fs::path& dir : candidates)
        if (fs::is_regular_file(dir / "index.html", ec)) return dir;
    return {};
}

std::optional<std::string> web_file_name(std::string_view path) {
    if (path.starts_with("/v1.0/")) path.remove_prefix(5); // as the route table does
    if (path == "/" || path == "/app" || path == "/app/") return "index.html";
    constexpr std::string_view prefix = "/app/";
    if (!path.starts_with(prefix)) return std::nullopt;
    path.remove_prefix(prefix.size());
    if (!WebFiles::plain_name(path)) return std::nullopt;
    return std::string(path);
}

} // namespace vartalap::rest_gateway
