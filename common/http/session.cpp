// Thread: any (a pure function; see session.hpp).
#include "common/http/session.hpp"

#include <boost/beast/http/error.hpp>

namespace vartalap {

ReadFailure classify_read_error(boost::beast::error_code ec) {
    namespace http = boost::beast::http;
    if (ec == http::error::end_of_stream) return ReadFailure::closed;
    if (ec == http::error::body_limit) return ReadFailure::too_large;
    if (ec.category() == http::make_error_code(http::error::bad_target).category())
        return ReadFailure::malformed;
    return ReadFailure::closed; // timeout, reset, operation_aborted
}

} // namespace vartalap
