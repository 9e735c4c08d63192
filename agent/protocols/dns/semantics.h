#pragma once
// DNS semantic conventions: span name "DNS <type>" ("DNS AAAA"), RED
// operation = query type, route and endpoint = the question name; error = an
// rcode other than NOERROR (NXDOMAIN, SERVFAIL, REFUSED...) or no response
// (a timeout). Attributes: dns.question.name, error.type (the rcode name,
// lowercased, or "timeout"), Sonde's dns.* details, network.transport,
// server/peer addresses.
#include "agent/protocols/semantics.h"

namespace sonde::protocols::dns {

const RecordSemantics& DnsSemantics();

// The response code's name ("NOERROR", "NXDOMAIN"); "" without a response.
std::string_view ResponseCode(const L7Record& record);

}  // namespace sonde::protocols::dns
