// `vartalapctl keys DIR --host H [--host H2 ...]`: a CURVE key pair per host for the internal
// transport (docs/SECURITY.md, "Internal transport").
//
// For each host it writes DIR/H.key (the secret key, mode 0600, never overwritten) and
// DIR/H.pub (the public key), and prints the topology entry to paste:
//
//   [host.H]
//   public_key = "<Z85>"
//   secret_key_file = "<absolute DIR>/H.key"   # copy this file to host H only
//
// Thread: main.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace vartalap::ctl {

// Returns the exit code: 0, or 1 with the reason on `err` (a bad host name, an existing key
// file, a directory that cannot be made). DIR is created 0700 if missing.
int run_keys(const std::string& dir, const std::vector<std::string>& hosts, std::ostream& out,
             std::ostream& err);

} // namespace vartalap::ctl
