#pragma once
// Redis semantic conventions: span name, endpoint, RED operation and route
// are the command ("GET"); error = the reply was an error (or never came);
// db.* / server.* / network.peer.* attributes. Keys are never recorded.
#include "agent/protocols/semantics.h"

namespace sonde::protocols::redis {

const RecordSemantics& RedisSemantics();

// The reply's error prefix ("ERR", "WRONGTYPE"); empty when it was no error.
std::string_view ErrorCode(const L7Record& record);

}  // namespace sonde::protocols::redis
