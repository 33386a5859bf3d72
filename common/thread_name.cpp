// Thread: see thread_name.hpp.
#include "common/thread_name.hpp"

#include <filesystem>
#include <fstream>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace vartalap {

namespace {

constexpr std::size_t kMaxTail = 4; // the owner's last part kept whole ("1", "12", "edge")

} // namespace

std::string thread_name(std::string_view owner, std::string_view suffix, std::size_t max) {
    std::string whole = std::string(owner) + std::string(suffix);
    if (whole.size() <= max) return whole;
    if (suffix.size() + 2 > max) return whole.substr(0, max); // no room for "x~": cut plainly
    const std::size_t budget = max - suffix.size();            // bytes left for the owner
    std::string_view tail;
    if (const auto dash = owner.rfind('-'); dash != std::string_view::npos) {
        tail = owner.substr(dash + 1);
        if (tail.size() > kMaxTail || tail.size() + 2 > budget) tail = {};
    }
    const std::size_t head = budget - 1 - tail.size();
    return std::string(owner.substr(0, head)) + "~" + std::string(tail) + std::string(suffix);
}

std::string shared_thread_owner(const std::vector<std::string>& instances) {
    if (instances.empty()) return "vartalap";
    if (instances.size() == 1) return instances.front();
    return instances.front() + "+" + std::to_string(instances.size() - 1);
}

void name_this_thread(std::string_view owner, std::string_view suffix) {
    pthread_setname_np(pthread_self(), thread_name(owner, suffix).c_str());
}

int rename_other_threads(const std::function<std::optional<std::string>(const std::string& name)>& rename) {
    const std::string self = std::to_string(::syscall(SYS_gettid));
    int renamed = 0;
    std::error_code error;
    for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", error)) {
        if (task.path().filename() == self) continue;
        std::string name;
        {
            std::ifstream comm(task.path() / "comm");
            if (!std::getline(comm, name)) continue;
        }
        const std::optional<std::string> new_name = rename(name);
        if (!new_name) continue;
        std::ofstream comm(task.path() / "comm");
        comm << *new_name;
        if (comm.flush()) ++renamed;
    }
    return renamed;
}

int name_threads_started_here(std::string_view suffix) {
    char own[kThreadNameMax + 1] = {};
    if (pthread_getname_np(pthread_self(), own, sizeof(own)) != 0) return 0;
    const std::string renamed_to = thread_name(own, suffix);
    return rename_other_threads([&](const std::string& name) -> std::optional<std::string> {
        if (name != own) return std::nullopt;
        return renamed_to;
    });
}

} // namespace vartalap
