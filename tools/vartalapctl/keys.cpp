// Thread: main. See keys.hpp.
#include "tools/vartalapctl/keys.hpp"

#include "common/zmq/curve.hpp"
#include "topology/endpoints.hpp"

#include <filesystem>
#include <fstream>
#include <set>

namespace vartalap::ctl {

int run_keys(const std::string& dir, const std::vector<std::string>& hosts, std::ostream& out,
             std::ostream& err) {
    namespace fs = std::filesystem;
    if (hosts.empty()) {
        err << "vartalapctl keys: name the hosts: --host NAME (one per host of the topology)\n";
        return 1;
    }
    std::set<std::string> seen;
    for (const std::string& host : hosts) {
        if (!topology::valid_host_name(host)) {
            err << "vartalapctl keys: '" << host
                << "' is not a host name (letters, digits, '.', '-', '_')\n";
            return 1;
        }
        if (!seen.insert(host).second) {
            err << "vartalapctl keys: host '" << host << "' is named twice\n";
            return 1;
        }
    }
    try {
        const fs::path directory = fs::absolute(dir);
        if (fs::create_directories(directory)) fs::permissions(directory, fs::perms::owner_all);
        // Refuse before writing anything, so a run either makes every key or none.
        for (const std::string& host : hosts)
            for (const char* ext : {".key", ".pub"})
                if (fs::exists(directory / (host + ext))) {
                    err << "vartalapctl keys: " << (directory / (host + ext)).string()
                        << " exists; a key is never overwritten (move it away to replace it)\n";
                    return 1;
                }
        for (const std::string& host : hosts) {
            const CurveKeyPair pair = generate_curve_keypair();
            const fs::path secret = directory / (host + ".key");
            write_curve_secret_file(secret, pair.secret_key);
            std::ofstream(directory / (host + ".pub")) << pair.public_key << '\n';
            out << "[host." << host << "]\n"
                << "public_key = \"" << pair.public_key << "\"\n"
                << "secret_key_file = \"" << secret.string() << "\"   # copy to host " << host
                << " only, mode 0600, owned by the daemons' user\n\n";
        }
    } catch (const std::exception& e) {
        err << "vartalapctl keys: " << e.what() << '\n';
        return 1;
    }
    return 0;
}

} // namespace vartalap::ctl
