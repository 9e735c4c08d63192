#include "agent/protocols/dns/semantics.h"

#include <charconv>

namespace sonde::protocols::dns {
namespace {

void DescribeDns(const L7Record& r, bool /*server_side*/, SpanDescription& out) {
  out.name = "DNS ";
  out.name.append(r.method);
  out.endpoint = r.path;
  out.operation = r.method;
  out.route = r.path;
  const std::string_view rcode = ResponseCode(r);
  if (r.flags & kRecordNoResponse) {
    out.error = true;
    out.status_message = "timeout";
  } else if (!rcode.empty() && rcode != "NOERROR") {
    out.error = true;
    out.status_message.assign(rcode);
  }
}

std::string Lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  return out;
}

void AppendDnsAttributes(const L7Record& r, const SpanDescription& description, const ExchangeAddresses& addr,
                         std::vector<Attribute>& a) {
  a.reserve(a.size() + 12);
  a.push_back({"dns.question.name", r.path});
  a.push_back({"sonde.dns.question.type", r.method});
  a.push_back({"sonde.dns.id", int64_t{r.stream_id}});
  a.push_back({"network.transport", r.scheme});
  a.push_back({"server.address", std::string(addr.server_address)});
  a.push_back({"server.port", int64_t{addr.server_port}});
  a.push_back({"network.peer.address", std::string(addr.peer_address)});
  a.push_back({"network.peer.port", int64_t{addr.peer_port}});
  if (const std::string_view rcode = ResponseCode(r); !rcode.empty()) {
    a.push_back({"sonde.dns.response_code", std::string(rcode)});
    const std::string_view answers = r.response.headers.Find("answers").value_or("0");
    int64_t n = 0;
    std::from_chars(answers.data(), answers.data() + answers.size(), n);
    a.push_back({"sonde.dns.answer_count", n});
    if (r.response.headers.Find("truncated")) a.push_back({"sonde.dns.truncated", true});
  }
  if (description.error) a.push_back({"error.type", Lowercase(description.status_message)});
  if (r.flags != 0) a.push_back({"sonde.record.flags", int64_t{r.flags}});
}

}  // namespace

std::string_view ResponseCode(const L7Record& r) { return r.response.headers.Find("rcode").value_or(""); }

const RecordSemantics& DnsSemantics() {
  static const RecordSemantics kDns{
      &DescribeDns, &AppendDnsAttributes,
      {"sonde_dns_server_request_duration_seconds", "dns_lookup_duration_seconds",
       "sonde_dns_server_request_errors_total", "sonde_dns_lookup_errors_total", "DNS lookups"}};
  return kDns;
}

}  // namespace sonde::protocols::dns
