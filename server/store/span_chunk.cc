#include "server/store/span_chunk.h"

#include <algorithm>
#include <cstdio>

namespace sonde::server::span_chunk {
namespace {

void PutVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

}  // namespace

bool IsError(const v1::Span& s) {
  return s.status() == v1::STATUS_CODE_ERROR || s.http_status() >= 500 || s.grpc_status() > 0;
}

std::string_view ServiceOf(const v1::Span& s) {
  if (!s.service_name().empty()) return s.service_name();
  if (!s.comm().empty()) return s.comm();
  return "unknown";
}

std::string_view EndpointOf(const v1::Span& s) {
  return s.endpoint().empty() ? std::string_view(s.name()) : std::string_view(s.endpoint());
}

uint64_t DurationOf(const v1::Span& s) {
  return s.end_unix_ns() > s.start_unix_ns() ? s.end_unix_ns() - s.start_unix_ns() : 0;
}

bool HasParent(const v1::Span& s) {
  for (char c : s.parent_span_id())
    if (c != 0) return true;
  return false;
}

int StatusClassBit(int http_status) {
  int c = http_status / 100;
  return (c >= 0 && c <= 9) ? 1 << c : 1 << 10;
}

void AppendAttribute(const v1::Attribute& a, std::string* out) {
  *out += a.key();
  *out += '=';
  switch (a.value_case()) {
    case v1::Attribute::kStringValue: *out += a.string_value(); break;
    case v1::Attribute::kIntValue: *out += std::to_string(a.int_value()); break;
    case v1::Attribute::kDoubleValue: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%g", a.double_value());
      *out += buf;
      break;
    }
    case v1::Attribute::kBoolValue: *out += a.bool_value() ? "true" : "false"; break;
    default: break;
  }
}

std::string AttributeText(const v1::Span& s) {
  std::string out = "\n";
  for (const auto& a : s.attributes()) {
    AppendAttribute(a, &out);
    out += '\n';
  }
  return out;
}

void AddDistinct(std::string* list, std::string_view value) {
  if (list->empty()) list->push_back('\n');
  if (list->size() > 4096) {  // too many distinct values: mark "matches anything"
    if (!list->ends_with(kListFull)) *list += "*\n";
    return;
  }
  const std::string_view l(*list);
  for (size_t pos = l.find(value, 1); pos != std::string_view::npos; pos = l.find(value, pos + 1)) {
    if (l[pos - 1] == '\n' && pos + value.size() < l.size() && l[pos + value.size()] == '\n')
      return;  // already listed
  }
  list->append(value.data(), value.size());
  *list += '\n';
}

void StartData(std::string* data) {
  data->clear();
  data->push_back('R');
}

void AppendSpan(const v1::Span& span, std::string* data) {
  // Field 2 (spans) of v1::Batch, length-delimited.
  const size_t size = span.ByteSizeLong();
  data->push_back(static_cast<char>((v1::Batch::kSpansFieldNumber << 3) | 2));
  PutVarint(size, data);
  const size_t at = data->size();
  data->resize(at + size);
  span.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(data->data() + at));
}

std::string_view Compress(const std::string& data, ZSTD_CCtx* zstd, int level, std::string* packed) {
  if (data.size() <= 64 || zstd == nullptr) return data;  // too small to gain
  const std::string_view raw = std::string_view(data).substr(1);
  packed->resize(1 + ZSTD_compressBound(raw.size()));
  const size_t got =
      ZSTD_compressCCtx(zstd, packed->data() + 1, packed->size() - 1, raw.data(), raw.size(), level);
  if (ZSTD_isError(got) || got + 1 >= data.size()) return data;
  (*packed)[0] = 'S';
  packed->resize(1 + got);
  return *packed;
}

bool Decode(std::string_view blob, v1::Batch* out, std::string* scratch) {
  out->Clear();
  if (blob.empty()) return false;
  const char* body = blob.data() + 1;
  const size_t body_size = blob.size() - 1;
  if (blob[0] == 'R') return out->ParseFromArray(body, static_cast<int>(body_size));
  if (blob[0] != 'S') return false;
  const unsigned long long raw = ZSTD_getFrameContentSize(body, body_size);
  if (raw == ZSTD_CONTENTSIZE_ERROR || raw == ZSTD_CONTENTSIZE_UNKNOWN || raw > (1u << 30))
    return false;
  scratch->resize(static_cast<size_t>(raw));
  const size_t got = ZSTD_decompress(scratch->data(), scratch->size(), body, body_size);
  if (ZSTD_isError(got) || got != raw) return false;
  return out->ParseFromArray(scratch->data(), static_cast<int>(raw));
}

void RowSummary::Reset() {
  start = UINT64_MAX;
  end = max_dur = errors = 0;
  sources = kinds = status_classes = 0;
  root = nullptr;
  services.clear();
  endpoints.clear();
  attrs.clear();
}

void RowSummary::Add(const v1::Span& sp) {
  const uint64_t dur = DurationOf(sp);
  start = std::min(start, sp.start_unix_ns());
  end = std::max(end, sp.start_unix_ns() + dur);
  max_dur = std::max(max_dur, dur);
  errors += IsError(sp) ? 1 : 0;
  sources |= 1 << (static_cast<int>(sp.source()) & 15);
  kinds |= 1 << (static_cast<int>(sp.kind()) & 15);
  status_classes |= StatusClassBit(static_cast<int>(sp.http_status()));
  AddDistinct(&services, ServiceOf(sp));
  AddDistinct(&endpoints, EndpointOf(sp));
  for (const auto& a : sp.attributes()) {
    attr_line_.clear();
    AppendAttribute(a, &attr_line_);
    AddDistinct(&attrs, attr_line_);
  }
  if (!root) {
    root = &sp;
    return;
  }
  const bool root_parented = HasParent(*root), parented = HasParent(sp);
  const bool better = root_parented != parented ? !parented
                      : sp.start_unix_ns() != root->start_unix_ns() ? sp.start_unix_ns() < root->start_unix_ns()
                                                                     : dur > DurationOf(*root);
  if (better) root = &sp;
}

void RowSummary::Finish() {
  if (attrs.empty()) attrs = "\n";
}

void Rollup::Add(const v1::Span& sp) {
  const uint64_t second = sp.start_unix_ns() / 1'000'000'000;
  const std::string_view service = ServiceOf(sp), endpoint = EndpointOf(sp);
  key_.assign(reinterpret_cast<const char*>(&second), sizeof second);
  key_.push_back(static_cast<char>(sp.source()));
  key_.push_back(static_cast<char>(sp.kind()));
  key_.append(service.data(), service.size());
  key_.push_back('\0');
  key_.append(endpoint.data(), endpoint.size());
  auto [it, fresh] = rows_.try_emplace(key_);
  Row& r = it->second;
  if (fresh) {
    r.second = second;
    r.service = service;
    r.endpoint = endpoint;
    r.source = static_cast<int>(sp.source());
    r.kind = static_cast<int>(sp.kind());
  }
  const uint64_t dur = DurationOf(sp);
  ++r.count;
  r.errors += IsError(sp) ? 1 : 0;
  r.dur_sum += dur;
  r.dur_max = std::max(r.dur_max, dur);
}

}  // namespace sonde::server::span_chunk
