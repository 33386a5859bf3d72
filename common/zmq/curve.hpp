// ZeroMQ CURVE for the internal tcp:// sockets: key pairs, the secret key file, and the
// socket options that make a socket a CURVE server or client. Who uses which key is the
// daemons' business (daemons/transport.hpp); the authentication of clients is the ZAP
// handler's (zap_guard.hpp). docs/SECURITY.md, "Internal transport".
//
// Keys are 32 bytes, written in Z85 (40 characters) everywhere: in the topology, in the
// secret key file, in socket options.
//
// Errors: functions that read files or make keys throw std::runtime_error with a message
// an operator can act on (the path and what is wrong with it).
// Thread-safety: pure functions, or functions on a socket its owning thread passes in.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <zmq.hpp>

namespace vartalap {

struct CurveKeyPair {
    std::string public_key; // Z85
    std::string secret_key; // Z85
};

// True if libzmq was built with CURVE (Debian's is).
bool curve_available();
// A fresh key pair (zmq_curve_keypair). Throws if CURVE is not available.
CurveKeyPair generate_curve_keypair();
// The public key of a Z85 secret key; throws std::runtime_error if it is not one.
std::string curve_public_of(std::string_view secret_z85);
// The 32 raw bytes of a Z85 key ("" if it is not one).
std::string curve_key_bytes(std::string_view z85);

// The secret key file: the Z85 secret key on its first line (a trailing newline allowed),
// owned by the daemons' user, mode 0600 (0400 also fine).
//
// write: creates `path` with mode 0600 and refuses to replace an existing file.
void write_curve_secret_file(const std::filesystem::path& path, std::string_view secret_z85);
// read: refuses a file that its group or others may read or write ("chmod 600 ..."), or
// that does not hold a secret key; returns the pair (public key derived from the secret).
CurveKeyPair read_curve_secret_file(const std::filesystem::path& path);

// Socket options; set before bind/connect (they apply to the endpoints bound or connected
// afterwards).
// A CURVE server with `own` key pair; its handshakes are authenticated by the process's ZAP
// handler under `zap_domain` (the daemon's instance name, so refusals are counted per
// daemon).
void make_curve_server(zmq::socket_ref socket, const CurveKeyPair& own, const std::string& zap_domain);
// A CURVE client presenting `own` and expecting the server whose public key is `server`.
void make_curve_client(zmq::socket_ref socket, const CurveKeyPair& own, const std::string& server);

} // namespace vartalap
