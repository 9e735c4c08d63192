#pragma once
// SQL text as Sonde records it (db.query.text): literals replaced by '?'
// (strings, E'' / B'' / X'' strings, dollar-quoted bodies, numbers), comments
// dropped, whitespace collapsed, bounded length; parameters ($1) and
// identifiers kept. Plus the statement's operation (db.operation.name) and
// main table (db.collection.name). Pure functions, never fail.
#include <string>
#include <string_view>

namespace sonde::protocols::postgres {

inline constexpr size_t kMaxQueryText = 2048;

// `truncated`: the text is a prefix (capture limit): an open literal at the end
// is still replaced.
std::string NormalizeQuery(std::string_view sql, size_t max_length = kMaxQueryText);

// The first keyword, uppercased ("SELECT", "BEGIN"); "" when the text does not
// start with a word. A WITH ... clause is skipped to the statement it leads to.
std::string OperationName(std::string_view normalized);

// The table a simple statement targets: SELECT ... FROM t, INSERT INTO t,
// UPDATE t, DELETE FROM t, COPY t, TRUNCATE t ("" when there is none).
std::string CollectionName(std::string_view normalized, std::string_view operation);

}  // namespace sonde::protocols::postgres
