#pragma once
// PostgreSQL semantic conventions: span name "{operation} {table}" (or the
// operation alone), RED operation = db.operation.name, route = span name;
// error = an ErrorResponse (SQLSTATE) or no answer. Attributes:
// db.system.name=postgresql, db.namespace, db.query.text (literals already
// replaced by '?'), db.operation.name, db.collection.name,
// db.response.status_code (SQLSTATE), db.response.returned_rows.
#include "agent/protocols/semantics.h"

namespace sonde::protocols::postgres {

const RecordSemantics& PostgresSemantics();

// The SQLSTATE of a failed operation ("" when it succeeded).
std::string_view SqlState(const L7Record& record);

}  // namespace sonde::protocols::postgres
