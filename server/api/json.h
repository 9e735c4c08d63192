#pragma once
// JSON views of stored rows. Times go out as strings of ns (exact) and as
// doubles of ms (what JavaScript charts use; a double keeps ~100 ns here).
#include <nlohmann/json.hpp>

#include <string_view>

#include "server/query/red.h"
#include "server/query/trace_assembler.h"
#include "server/store/storage.h"

namespace sonde::server {

// Names of the span enums by wire number (proto/sonde/v1/enum_names.h).
std::string_view SourceLetter(int source);
std::string_view KindName(int kind);
std::string_view ProtocolName(int protocol);

nlohmann::json SpanJson(const StoredSpan& s);
nlohmann::json TraceJson(const AssembledTrace& t);
nlohmann::json RedJson(const RedSeries& s);
nlohmann::json TcpPairsJson(const std::vector<StoredTcpWindow>& windows);
nlohmann::json RecordJson(const v1::RequestRecord& r);

}  // namespace sonde::server
