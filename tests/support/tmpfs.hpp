// A tmpfs of a given size mounted at a directory, for tests of a full disk (issue 14,
// section 7): mounting needs root (CAP_SYS_ADMIN), so a test asks mounted() and skips with
// error() when it could not. Unmounted (lazily: MNT_DETACH, so open files do not keep it
// busy) at destruction, also when the test failed. Thread: the test's.
#pragma once

#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

namespace vartalap::test {

class Tmpfs {
public:
    // `size` as mount(8) takes it: "4m", "512k".
    Tmpfs(const std::filesystem::path& at, const std::string& size) : path_(at) {
        std::filesystem::create_directories(path_);
        if (::geteuid() != 0) {
            error_ = "not root";
        } else if (::mount("tmpfs", path_.c_str(), "tmpfs", 0, ("size=" + size).c_str()) != 0) {
            error_ = std::string("mount -t tmpfs: ") + std::strerror(errno);
        } else {
            mounted_ = true;
        }
    }
    ~Tmpfs() {
        if (mounted_) ::umount2(path_.c_str(), MNT_DETACH);
    }
    Tmpfs(const Tmpfs&) = delete;
    Tmpfs& operator=(const Tmpfs&) = delete;

    bool mounted() const { return mounted_; }
    const std::string& error() const { return error_; }
    const std::filesystem::path& path() const { return path_; }
    // mount -o remount,size=<size>: the new size holds at once, for files already open.
    bool resize(const std::string& size) {
        return ::mount("tmpfs", path_.c_str(), "tmpfs", MS_REMOUNT, ("size=" + size).c_str()) == 0;
    }

private:
    std::filesystem::path path_;
    bool mounted_ = false;
    std::string error_;
};

} // namespace vartalap::test
