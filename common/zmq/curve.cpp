// Thread: any; socket functions on the socket's owning thread.
#include "common/zmq/curve.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <stdexcept>
#include <sys/stat.h>
#include <unistd.h>

namespace vartalap {

namespace {

constexpr std::size_t kZ85Chars = 40;

std::string errno_text() { return std::strerror(errno); }

} // namespace

bool curve_available() { return zmq_has("curve") == 1; }

CurveKeyPair generate_curve_keypair() {
    char public_key[kZ85Chars + 1] = {};
    char secret_key[kZ85Chars + 1] = {};
    if (zmq_curve_keypair(public_key, secret_key) != 0)
        throw std::runtime_error(std::string("cannot make a CURVE key pair: ") +
                                 zmq_strerror(zmq_errno()) +
                                 (curve_available() ? "" : " (libzmq was built without CURVE)"));
    return {public_key, secret_key};
}

std::string curve_key_bytes(std::string_view z85) {
    if (z85.size() != kZ85Chars) return {};
    const std::string text(z85); // zmq_z85_decode reads a NUL-terminated string
    std::string bytes(32, '\0');
    if (!zmq_z85_decode(reinterpret_cast<std::uint8_t*>(bytes.data()), text.c_str())) return {};
    return bytes;
}

std::string curve_public_of(std::string_view secret_z85) {
    const std::string secret(secret_z85);
    char public_key[kZ85Chars + 1] = {};
    if (curve_key_bytes(secret).empty() || zmq_curve_public(public_key, secret.c_str()) != 0)
        throw std::runtime_error("not a CURVE secret key (40 characters of Z85)");
    return public_key;
}

void write_curve_secret_file(const std::filesystem::path& path, std::string_view secret_z85) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        throw std::runtime_error("cannot create " + path.string() + ": " + errno_text() +
                                 (errno == EEXIST ? " (a key is never overwritten: move the old "
                                                    "one away to replace it)"
                                                  : ""));
    const std::string text = std::string(secret_z85) + "\n";
    const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    const bool synced = written && ::fsync(fd) == 0;
    const std::string why = errno_text();
    ::close(fd);
    if (!synced) {
        std::filesystem::remove(path);
        throw std::runtime_error("cannot write " + path.string() + ": " + why);
    }
}

CurveKeyPair read_curve_secret_file(const std::filesystem::path& path) {
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0)
        throw std::runtime_error("CURVE secret key file " + path.string() + ": " + errno_text());
    if (!S_ISREG(info.st_mode))
        throw std::runtime_error("CURVE secret key file " + path.string() + " is not a file");
    if ((info.st_mode & 077) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(info.st_mode & 07777));
        throw std::runtime_error("CURVE secret key file " + path.string() + " has mode " + mode +
                                 ": other users could read the host's key; chmod 600 it");
    }
    std::ifstream in(path);
    std::string line;
    if (!in || !std::getline(in, line))
        throw std::runtime_error("cannot read CURVE secret key file " + path.string());
    if (!line.empty() && line.back() == '\r') line.pop_back();
    try {
        return {curve_public_of(line), line};
    } catch (const std::runtime_error&) {
        throw std::runtime_error("CURVE secret key file " + path.string() +
                                 ": the first line is not a secret key (40 characters of Z85; "
                                 "`vartalapctl keys` writes one)");
    }
}

void make_curve_server(zmq::socket_ref socket, const CurveKeyPair& own, const std::string& zap_domain) {
    socket.set(zmq::sockopt::curve_server, true);
    socket.set(zmq::sockopt::curve_secretkey, own.secret_key);
    socket.set(zmq::sockopt::zap_domain, zap_domain);
}

void make_curve_client(zmq::socket_ref socket, const CurveKeyPair& own, const std::string& server) {
    socket.set(zmq::sockopt::curve_serverkey, server);
    socket.set(zmq::sockopt::curve_publickey, own.public_key);
    socket.set(zmq::sockopt::curve_secretkey, own.secret_key);
}

} // namespace vartalap
