#pragma once
// The pairwise reference assembler (see the .cc).
#include <vector>

#include "server/query/trace_assembler.h"

namespace sonde::server::reference {

AssembledTrace ReferenceAssembleTrace(const std::vector<StoredSpan>& spans, const AssemblerOptions& options = {});

}  // namespace sonde::server::reference
