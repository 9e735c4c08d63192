#include "agent/otlp/span_convert.h"

#include <algorithm>
#include <charconv>
#include <cstring>

#include "absl/strings/escaping.h"
#include "agent/otlp/json_codec.h"
#include "agent/otlp/semconv.h"
#include "common/semconv/grpc_status.h"
#include "opentelemetry/proto/trace/v1/trace.pb.h"

namespace sonde::otlp {
namespace {

using opentelemetry::proto::common::v1::AnyValue;
using opentelemetry::proto::common::v1::KeyValue;
using OtlpSpan = opentelemetry::proto::trace::v1::Span;

template <size_t N>
bool CopyId(std::string_view bytes, std::array<uint8_t, N>* out) {
  if (bytes.size() != N) return false;
  std::memcpy(out->data(), bytes.data(), N);
  return std::any_of(out->begin(), out->end(), [](uint8_t b) { return b != 0; });
}

// Assigns in place: when the slot already holds a string (the span object is
// reused across spans), its capacity is reused instead of allocating.
// Overwrites `s` with `text` in its existing buffer (same-length keys, the
// common case for a reused span, cost one memcpy).
// Keys and values are mostly under 32 bytes: copied with fixed-size (inlined)
// overlapping moves instead of a memcpy call.
inline void CopyBytes(char* dst, const char* src, size_t n) {
  if (n >= 16 && n <= 32) {
    char a[16], b[16];
    std::memcpy(a, src, 16);
    std::memcpy(b, src + n - 16, 16);
    std::memcpy(dst, a, 16);
    std::memcpy(dst + n - 16, b, 16);
  } else if (n >= 8 && n < 16) {
    uint64_t a, b;
    std::memcpy(&a, src, 8);
    std::memcpy(&b, src + n - 8, 8);
    std::memcpy(dst, &a, 8);
    std::memcpy(dst + n - 8, &b, 8);
  } else if (n >= 4 && n < 8) {
    uint32_t a, b;
    std::memcpy(&a, src, 4);
    std::memcpy(&b, src + n - 4, 4);
    std::memcpy(dst, &a, 4);
    std::memcpy(dst + n - 4, &b, 4);
  } else if (n > 0 && n < 4) {
    for (size_t i = 0; i < n; ++i) dst[i] = src[i];
  } else if (n > 32) {
    std::memcpy(dst, src, n);
  }
}

void Assign(std::string* s, std::string_view text) {
  if (s->size() != text.size()) s->resize(text.size());
  CopyBytes(s->data(), text.data(), text.size());
}

void SetString(trace::AttributeValue* out, std::string_view text) {
  if (auto* s = std::get_if<std::string>(out)) Assign(s, text);
  else *out = std::string(text);
}

void SetAttributeValue(const ValueView& v, trace::AttributeValue* out) {
  switch (v.type) {
    case ValueView::Type::kString: return SetString(out, v.s);
    case ValueView::Type::kBool: *out = v.b; return;
    case ValueView::Type::kInt: *out = v.i; return;
    case ValueView::Type::kDouble: *out = v.d; return;
    case ValueView::Type::kBytes: return SetString(out, absl::Base64Escape(absl::string_view(v.s.data(), v.s.size())));
    case ValueView::Type::kStructured: return SetString(out, PrintOtlpJson(*v.structured));  // OTLP/JSON text
    case ValueView::Type::kEmpty: break;
  }
  SetString(out, std::string_view());
}

// Writes attribute number `index`, reusing the vector's existing element.
void PutAttribute(std::vector<trace::Attribute>* attrs, size_t index, std::string_view key,
                  const ValueView& value) {
  if (index == attrs->size()) attrs->emplace_back();
  trace::Attribute& a = (*attrs)[index];
  Assign(&a.key, key);
  SetAttributeValue(value, &a.value);
}

int64_t AsInt(const ValueView& v) {
  if (v.type == ValueView::Type::kInt) return v.i;
  if (v.type == ValueView::Type::kDouble) return static_cast<int64_t>(v.d);
  if (v.type == ValueView::Type::kString) {
    int64_t out = 0;
    std::from_chars(v.s.data(), v.s.data() + v.s.size(), out);
    return out;
  }
  return 0;
}

std::string_view AsString(const ValueView& v) { return v.is_string() ? v.s : std::string_view(); }

using Value = trace::AttributeValue;

int64_t AsInt(const Value& v) {
  if (const auto* i = std::get_if<int64_t>(&v)) return *i;
  if (const auto* d = std::get_if<double>(&v)) return static_cast<int64_t>(*d);
  if (const auto* s = std::get_if<std::string>(&v)) {
    int64_t out = 0;
    std::from_chars(s->data(), s->data() + s->size(), out);
    return out;
  }
  return 0;
}

const std::string& AsString(const Value& v) {
  static const std::string kEmpty;
  const auto* s = std::get_if<std::string>(&v);
  return s != nullptr ? *s : kEmpty;
}

// The attributes the span model lifts into typed fields. Legacy names were
// already mapped to current ones (DeriveCurrentSemconvNames), so only current
// names and both rpc.* generations are read here.
struct Lifted {
  const Value* method = nullptr;
  const Value* route = nullptr;
  const Value* url_path = nullptr;
  const Value* url_full = nullptr;
  const Value* http_status = nullptr;
  const Value* rpc_system = nullptr;
  const Value* rpc_service = nullptr;
  const Value* rpc_method = nullptr;
  const Value* rpc_status = nullptr;
  const Value* rpc_grpc_status = nullptr;
  const Value* server_address = nullptr;
  const Value* server_port = nullptr;
  const Value* client_address = nullptr;
  const Value* client_port = nullptr;
  const Value* peer_address = nullptr;
  const Value* peer_port = nullptr;
  const Value* protocol_version = nullptr;
};

void Lift(const trace::Attribute& a, Lifted* l) {
  using namespace std::string_view_literals;
  const std::string_view k = a.key;  // compares check the length before any memcmp
  if (k.empty()) return;
  const Value* v = &a.value;
  // Compare on the first characters before full matches: this runs for every attribute.
  switch (k[0]) {
    case 'h':
      if (k == "http.request.method"sv) l->method = v;
      else if (k == "http.route"sv) l->route = v;
      else if (k == "http.response.status_code"sv) l->http_status = v;
      break;
    case 'u':
      if (k == "url.path"sv) l->url_path = v;
      else if (k == "url.full"sv) l->url_full = v;
      break;
    case 'r':
      if (k == "rpc.system"sv || (k == "rpc.system.name"sv && l->rpc_system == nullptr)) l->rpc_system = v;
      else if (k == "rpc.service"sv) l->rpc_service = v;
      else if (k == "rpc.method"sv) l->rpc_method = v;
      else if (k == "rpc.response.status_code"sv) l->rpc_status = v;
      else if (k == "rpc.grpc.status_code"sv) l->rpc_grpc_status = v;
      break;
    case 's':
      if (k == "server.address"sv) l->server_address = v;
      else if (k == "server.port"sv) l->server_port = v;
      break;
    case 'c':
      if (k == "client.address"sv) l->client_address = v;
      else if (k == "client.port"sv) l->client_port = v;
      break;
    case 'n':
      if (k == "network.peer.address"sv) l->peer_address = v;
      else if (k == "network.peer.port"sv) l->peer_port = v;
      else if (k == "network.protocol.version"sv) l->protocol_version = v;
      break;
    default:
      break;
  }
}

// rpc.response.status_code of a gRPC span: the code's name ("NOT_FOUND",
// current conventions) or its number; -1 when it is neither.
int GrpcStatusOf(const Value& v) {
  if (const auto* s = std::get_if<std::string>(&v)) return semconv::GrpcStatusFromString(*s).value_or(-1);
  return static_cast<int>(AsInt(v));
}

std::string_view PathOfUrl(std::string_view url) {
  size_t scheme = url.find("://");
  size_t start = scheme == std::string_view::npos ? 0 : url.find('/', scheme + 3);
  if (start == std::string_view::npos) return "/";
  size_t end = url.find_first_of("?#", start);
  return url.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
}

// out = a + sep + b, in out's existing buffer (no temporary per span).
void Join(std::string* out, std::string_view a, char sep, std::string_view b) {
  out->assign(a.data(), a.size());
  out->push_back(sep);
  out->append(b.data(), b.size());
}

void SetEndpoint(const Value* address, const Value* port, trace::Endpoint* out) {
  if (address != nullptr) out->address = AsString(*address);
  if (port != nullptr) out->port = static_cast<uint16_t>(AsInt(*port));
}

}  // namespace

void MakeResourceContext(const AttributeView* attributes, size_t count,
                         const std::optional<ProcessInfo>& sender, ResourceContext* ctx) {
  ctx->service_name.clear();
  ctx->pid = 0;
  ctx->comm.clear();
  ctx->container_id.clear();
  for (size_t i = 0; i < count; ++i) {
    const std::string_view key = attributes[i].key;
    const ValueView& v = attributes[i].value;
    if (key == "service.name") ctx->service_name = AsString(v);
    else if (key == "process.pid" && !sender) ctx->pid = static_cast<uint32_t>(AsInt(v));
    else if (key == "process.executable.name" && !sender) ctx->comm = AsString(v);
    else if (key == "container.id" && !sender) ctx->container_id = AsString(v);
  }
  if (sender) {
    ctx->pid = sender->pid;
    ctx->comm = sender->comm;
    ctx->container_id = sender->container_id;
  }
}

ResourceContext MakeResourceContext(const opentelemetry::proto::resource::v1::Resource& resource,
                                    const std::optional<ProcessInfo>& sender) {
  std::vector<AttributeView> views;
  views.reserve(static_cast<size_t>(resource.attributes_size()));
  for (const KeyValue& kv : resource.attributes()) views.push_back({kv.key(), ViewOf(kv.value())});
  ResourceContext ctx;
  MakeResourceContext(views.data(), views.size(), sender, &ctx);
  return ctx;
}

absl::Status ConvertSpan(const OtlpSpan& in, const ResourceContext& resource, trace::Span* out) {
  TraceBatch batch;
  SpanView view;
  view.trace_id = in.trace_id();
  view.span_id = in.span_id();
  view.parent_span_id = in.parent_span_id();
  view.name = in.name();
  view.status_message = in.status().message();
  view.kind = in.kind();
  view.status_code = in.status().code();
  view.start_unix_ns = in.start_time_unix_nano();
  view.end_unix_ns = in.end_time_unix_nano();
  for (const KeyValue& kv : in.attributes()) batch.attributes.push_back({kv.key(), ViewOf(kv.value())});
  view.attr_count = static_cast<uint32_t>(batch.attributes.size());
  return ConvertSpan(view, batch.attributes.data(), resource, out);
}

absl::Status ConvertSpan(const SpanView& in, const AttributeView* attributes,
                         const ResourceContext& resource, trace::Span* out) {
  if (!CopyId(in.trace_id, &out->trace_id)) {
    return absl::InvalidArgumentError("span with an invalid trace id (need 16 non-zero bytes)");
  }
  if (!CopyId(in.span_id, &out->span_id)) {
    return absl::InvalidArgumentError("span with an invalid span id (need 8 non-zero bytes)");
  }
  out->parent_span_id.fill(0);
  if (!in.parent_span_id.empty()) {
    if (in.parent_span_id.size() != 8) {
      return absl::InvalidArgumentError("span with an invalid parent span id (need 8 bytes)");
    }
    CopyId(in.parent_span_id, &out->parent_span_id);
  }
  const bool has_parent = std::any_of(out->parent_span_id.begin(), out->parent_span_id.end(),
                                      [](uint8_t b) { return b != 0; });
  out->parent_reason = has_parent ? trace::LinkReason::kOtlpParent : trace::LinkReason::kNone;
  out->source = trace::SpanSource::kApplication;
  // OTLP kind and status numbers map onto the agent's enums by number.
  using OtlpSpan = opentelemetry::proto::trace::v1::Span;
  using OtlpStatus = opentelemetry::proto::trace::v1::Status;
  static_assert(static_cast<int>(trace::SpanKind::kInternal) == OtlpSpan::SPAN_KIND_INTERNAL);
  static_assert(static_cast<int>(trace::SpanKind::kServer) == OtlpSpan::SPAN_KIND_SERVER);
  static_assert(static_cast<int>(trace::SpanKind::kClient) == OtlpSpan::SPAN_KIND_CLIENT);
  static_assert(static_cast<int>(trace::SpanKind::kProducer) == OtlpSpan::SPAN_KIND_PRODUCER);
  static_assert(static_cast<int>(trace::SpanKind::kConsumer) == OtlpSpan::SPAN_KIND_CONSUMER);
  static_assert(static_cast<int>(trace::StatusCode::kOk) == OtlpStatus::STATUS_CODE_OK);
  static_assert(static_cast<int>(trace::StatusCode::kError) == OtlpStatus::STATUS_CODE_ERROR);
  out->kind = in.kind >= 0 && in.kind <= OtlpSpan::SPAN_KIND_CONSUMER ? static_cast<trace::SpanKind>(in.kind)
                                                                      : trace::SpanKind::kUnspecified;
  out->name = in.name;
  out->service_name = resource.service_name;
  out->start_unix_ns = in.start_unix_ns;
  out->end_unix_ns = in.end_unix_ns;
  const int code = in.status_code;
  out->status = code == OtlpStatus::STATUS_CODE_OK      ? trace::StatusCode::kOk
                : code == OtlpStatus::STATUS_CODE_ERROR ? trace::StatusCode::kError
                                                        : trace::StatusCode::kUnset;
  out->status_message = in.status_message;
  out->pid = resource.pid;
  out->comm = resource.comm;
  out->container_id = resource.container_id;
  // Fields set below only when the span says so: reset, `out` may be reused.
  out->protocol = protocols::L7Protocol::kUnknown;
  out->endpoint.clear();
  out->http_status = 0;
  out->grpc_status = -1;
  for (trace::Endpoint* e : {&out->local, &out->peer, &out->client, &out->server}) {
    e->address.clear();
    e->port = 0;
  }

  size_t n = 0;
  for (uint32_t i = 0; i < in.attr_count; ++i) {
    if (attributes[i].key.empty()) continue;
    PutAttribute(&out->attributes, n++, attributes[i].key, attributes[i].value);
  }
  // Current semconv names next to the legacy ones (originals kept).
  DeriveCurrentSemconvNames(attributes, in.attr_count, in.kind,
                            [out, &n](std::string_view key, const ValueView& v) {
    PutAttribute(&out->attributes, n++, key, v);
  });
  out->attributes.resize(n);
  Lifted l;  // pointers into out->attributes: taken after the vector stopped growing
  for (const trace::Attribute& a : out->attributes) Lift(a, &l);

  // Protocol and endpoint: gRPC first (grpc-js spans also carry http.* names).
  const bool grpc = l.rpc_system != nullptr && AsString(*l.rpc_system) == "grpc";
  if (grpc || l.rpc_method != nullptr) {
    out->protocol = grpc ? protocols::L7Protocol::kGrpc : protocols::L7Protocol::kUnknown;
    const std::string_view method = l.rpc_method ? std::string_view(AsString(*l.rpc_method)) : "";
    // Current semconv: rpc.method = "pkg.Service/Method"; first generation
    // splits it into rpc.service + rpc.method.
    if (l.rpc_service != nullptr && method.find('/') == std::string_view::npos) {
      Join(&out->endpoint, AsString(*l.rpc_service), '/', method);
    } else {
      out->endpoint.assign(method.data(), method.size());
    }
    if (l.rpc_grpc_status != nullptr) out->grpc_status = static_cast<int>(AsInt(*l.rpc_grpc_status));
    else if (l.rpc_status != nullptr && grpc) out->grpc_status = GrpcStatusOf(*l.rpc_status);
  } else if (l.method != nullptr) {
    const std::string_view version = l.protocol_version ? std::string_view(AsString(*l.protocol_version)) : "";
    out->protocol = !version.empty() && version[0] == '2' ? protocols::L7Protocol::kHttp2
                                                          : protocols::L7Protocol::kHttp1;
    std::string_view path;
    if (l.route != nullptr) path = AsString(*l.route);
    else if (l.url_path != nullptr) path = AsString(*l.url_path);
    else if (l.url_full != nullptr) path = PathOfUrl(AsString(*l.url_full));
    if (path.empty()) out->endpoint = AsString(*l.method);
    else Join(&out->endpoint, AsString(*l.method), ' ', path);
  }
  if (l.http_status != nullptr) out->http_status = static_cast<int>(AsInt(*l.http_status));

  // Connection ends, from the span's side of the exchange.
  trace::Endpoint server, client;
  SetEndpoint(l.server_address, l.server_port, &server);
  SetEndpoint(l.client_address, l.client_port, &client);
  if (out->kind == trace::SpanKind::kServer || out->kind == trace::SpanKind::kConsumer) {
    if (l.peer_address != nullptr || l.peer_port != nullptr) {
      SetEndpoint(l.peer_address, l.peer_port, &out->peer);
    } else {
      out->peer = client;
    }
    out->local = server;
    out->client = out->peer;
    out->server = server;
  } else {
    if (l.peer_address != nullptr) SetEndpoint(l.peer_address, l.peer_port, &out->peer);
    else out->peer = server;
    out->server = server;
  }
  return absl::OkStatus();
}

}  // namespace sonde::otlp
