// rest-gateway: the static files of the web client (web/ in the source tree), served at `/`
// and `/app/` (docs/REST_API.md, "The web client").
//
// The files are read once, when the gateway starts: every regular file directly in the
// directory (no subdirectories, no symbolic links followed out of it) whose name is plain
// (letters, digits, '.', '-', '_', not starting with '.') and whose extension has a known
// Content-Type, at most kMaxFiles files of at most kMaxFileBytes each. A request can only
// name one of those entries, so no path reaches outside the directory, whatever its dots
// or escapes. Editing a file takes effect at the next start.
//
// Socket-free (in the core library). Thread-safety: a loaded WebFiles is read-only.
#pragma once

#include <cstddef>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vartalap::rest_gateway {

struct WebFile {
    std::string body;
    std::string content_type; // with "; charset=utf-8" for text
};

class WebFiles {
public:
    static constexpr std::size_t kMaxFiles = 64;
    static constexpr std::size_t kMaxFileBytes = 2u << 20;

    // Reads `dir` as above. Files skipped (name, type, size, count) are named in `skipped`.
    // An unreadable or missing directory gives an empty set and a line in `skipped`.
    static WebFiles load(const std::filesystem::path& dir, std::vector<std::string>& skipped);

    // The Content-Type of a file name by its extension, nullopt when not served.
    static std::optional<std::string> content_type_of(std::string_view name);
    // Whether `name` is a plain file name as above.
    static bool plain_name(std::string_view name);

    // Adds (or replaces) an entry made by the gateway itself (config.json).
    void add(std::string name, WebFile file) { files_[std::move(name)] = std::move(file); }
    const WebFile* find(std::string_view name) const;
    bool has_index() const { return find("index.html") != nullptr; }
    std::size_t size() const { return files_.size(); }
    const std::filesystem::path& dir() const { return dir_; }

private:
    std::filesystem::path dir_;
    std::map<std::string, WebFile, std::less<>> files_;
};

// The web client's directory: `option` (the rest-gateway's `web_dir`) when it is set, else
// the first of these that holds an index.html: <directory of the running executable>/../
// share/vartalap/web (an installed package: /usr/bin → /usr/share/vartalap/web), the source
// tree's web/ this binary was built from (`make run` from the build tree), and
// /usr/share/vartalap/web. Empty when none does.
std::filesystem::path find_web_dir(const std::string& option);

// The file a web path names: "/", "/app" and "/app/" → "index.html", "/app/<name>" →
// "<name>" (each also under /v1.0); nullopt for any other path.
std::optional<std::string> web_file_name(std::string_view path);

} // namespace vartalap::rest_gateway
