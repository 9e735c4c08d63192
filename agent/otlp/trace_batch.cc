#include "agent/otlp/trace_batch.h"

#include <cstring>
#include <limits>

#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/stubs/common.h"
#include "opentelemetry/proto/resource/v1/resource.pb.h"
#include "opentelemetry/proto/trace/v1/trace.pb.h"

namespace sonde::otlp {
namespace {

using opentelemetry::proto::common::v1::AnyValue;
using opentelemetry::proto::common::v1::KeyValue;

// Wire types.
constexpr uint32_t kVarint = 0, kFixed64 = 1, kLen = 2, kFixed32 = 5;

// Protobuf's parser counts nesting from 100 at the top-level message; the
// submessages handed to it here are parsed with a limit one lower than their
// real remaining depth, so they are never accepted where the full parse is not.
constexpr int kRecursionLimit = 100;

// One message's bytes. Every read fails (false) rather than read past the end.
class Reader {
 public:
  explicit Reader(std::string_view bytes)
      : p_(reinterpret_cast<const uint8_t*>(bytes.data())), end_(p_ + bytes.size()) {}
  bool done() const { return p_ == end_; }

  bool Varint(uint64_t* out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) return false;
      const uint8_t b = *p_++;
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        *out = v;
        return true;
      }
    }
    return false;  // over 10 bytes
  }
  // Field number and wire type; field 0 and tags over 32 bits fail.
  bool Tag(uint32_t* field, uint32_t* wire) {
    uint64_t tag = 0;
    if (p_ != end_ && *p_ < 0x80) {
      tag = *p_++;
    } else if (!Varint(&tag)) {
      return false;
    }
    if (tag > std::numeric_limits<uint32_t>::max()) return false;
    *field = static_cast<uint32_t>(tag >> 3);
    *wire = static_cast<uint32_t>(tag & 7);
    return *field != 0;
  }
  bool Bytes(std::string_view* out) {
    uint64_t n = 0;
    if (!Varint(&n) || n > static_cast<uint64_t>(end_ - p_) ||
        n > static_cast<uint64_t>(std::numeric_limits<int>::max())) {
      return false;
    }
    *out = std::string_view(reinterpret_cast<const char*>(p_), static_cast<size_t>(n));
    p_ += n;
    return true;
  }
  bool Fixed64(uint64_t* out) {
    if (end_ - p_ < 8) return false;
    std::memcpy(out, p_, 8);  // little-endian hosts (x86-64, arm64)
    p_ += 8;
    return true;
  }
  bool Fixed32(uint32_t* out) {
    if (end_ - p_ < 4) return false;
    std::memcpy(out, p_, 4);
    p_ += 4;
    return true;
  }
  // Skips an unknown field; groups (wire types 3/4) and invalid types fail.
  bool Skip(uint32_t wire) {
    uint64_t u64;
    uint32_t u32;
    std::string_view s;
    switch (wire) {
      case kVarint: return Varint(&u64);
      case kFixed64: return Fixed64(&u64);
      case kLen: return Bytes(&s);
      case kFixed32: return Fixed32(&u32);
      default: return false;
    }
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

[[gnu::noinline]] bool ValidUtf8Slow(std::string_view s) {
  return google::protobuf::internal::IsStructurallyValidUTF8(s.data(), static_cast<int>(s.size()));
}

// protobuf's proto3 string check; ASCII (nearly every key and value) decided
// 8 bytes at a time without a call.
inline bool ValidUtf8(std::string_view s) {
  const char* p = s.data();
  const size_t n = s.size();
  uint64_t high = 0;
  if (n >= 8) {  // whole words, the last one overlapping
    for (size_t i = 0; i + 8 <= n; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      high |= w;
    }
    uint64_t last;
    std::memcpy(&last, p + n - 8, 8);
    high |= last;
  } else if (n >= 4) {
    uint32_t a, b;
    std::memcpy(&a, p, 4);
    std::memcpy(&b, p + n - 4, 4);
    high = a | b;
  } else {
    for (size_t i = 0; i < n; ++i) high |= static_cast<uint8_t>(p[i]);
  }
  return (high & 0x8080808080808080ull) == 0 || ValidUtf8Slow(s);
}

// Validates (and, for AnyValue, keeps) a submessage the fast path does not
// interpret field by field, with protobuf's own parser.
template <typename Message>
Message* ParseSub(TraceBatch* out, std::string_view bytes, int depth) {
  if (!out->arena) out->arena = std::make_unique<google::protobuf::Arena>();
  auto* message = google::protobuf::Arena::CreateMessage<Message>(out->arena.get());
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                           static_cast<int>(bytes.size()));
  in.SetRecursionLimit(kRecursionLimit - depth - 1);
  if (!message->MergePartialFromCodedStream(&in) || !in.ConsumedEntireMessage()) return nullptr;
  return message;
}

class Decoder {
 public:
  explicit Decoder(TraceBatch* out) : out_(out) {}

  bool Request(std::string_view bytes) {
    Reader r(bytes);
    uint32_t field, wire;
    while (!r.done()) {
      if (!r.Tag(&field, &wire)) return false;
      if (field == 1) {
        std::string_view sub;
        if (wire != kLen || !r.Bytes(&sub) || !ResourceSpans(sub)) return false;
      } else if (!r.Skip(wire)) {
        return false;
      }
    }
    return true;
  }

 private:
  // depth: the message's nesting level (the request is 0).
  bool ResourceSpans(std::string_view bytes) {
    ResourceView rv;
    rv.span_begin = static_cast<uint32_t>(out_->spans.size());
    bool have_resource = false;
    Reader r(bytes);
    uint32_t field, wire;
    std::string_view sub;
    while (!r.done()) {
      if (!r.Tag(&field, &wire)) return false;
      switch (field) {
        case 1:  // resource (a repeat would merge: left to protobuf)
          if (wire != kLen || have_resource || !r.Bytes(&sub) || !Resource(sub, &rv)) return false;
          have_resource = true;
          break;
        case 2:  // scope_spans
          if (wire != kLen || !r.Bytes(&sub) || !ScopeSpans(sub)) return false;
          break;
        case 3:  // schema_url
          if (wire != kLen || !r.Bytes(&sub) || !ValidUtf8(sub)) return false;
          break;
        default:
          if (!r.Skip(wire)) return false;
      }
    }
    rv.span_count = static_cast<uint32_t>(out_->spans.size()) - rv.span_begin;
    out_->resources.push_back(rv);
    return true;
  }

  bool Resource(std::string_view bytes, ResourceView* rv) {
    rv->attr_begin = static_cast<uint32_t>(out_->attributes.size());
    Reader r(bytes);
    uint32_t field, wire;
    std::string_view sub;
    uint64_t ignored;
    while (!r.done()) {
      if (!r.Tag(&field, &wire)) return false;
      switch (field) {
        case 1:  // attributes
          if (wire != kLen || !r.Bytes(&sub) || !KeyValueMsg(sub, /*depth=*/3)) return false;
          break;
        case 2:  // dropped_attributes_count
          if (wire != kVarint || !r.Varint(&ignored)) return false;
          break;
        case 3:  // entity_refs
          if (wire != kLen || !r.Bytes(&sub) ||
              ParseSub<opentelemetry::proto::common::v1::EntityRef>(out_, sub, 3) == nullptr) {
            return false;
          }
          break;
        default:
          if (!r.Skip(wire)) return false;
      }
    }
    rv->attr_count = static_cast<uint32_t>(out_->attributes.size()) - rv->attr_begin;
    return true;
  }

  bool ScopeSpans(std::string_view bytes) {
    Reader r(bytes);
    uint32_t field, wire;
    std::string_view sub;
    while (!r.done()) {
      if (!r.Tag(&field, &wire)) return false;
      switch (field) {
        case 1:  // scope: not used by the span model, validated only
          if (wire != kLen || !r.Bytes(&sub) ||
              ParseSub<opentelemetry::proto::common::v1::InstrumentationScope>(out_, sub, 3) == nullptr) {
            return false;
          }
          break;
        case 2:  // spans
          if (wire != kLen || !r.Bytes(&sub) || !Span(sub)) return false;
          break;
        case 3:  // schema_url
          if (wire != kLen || !r.Bytes(&sub) || !ValidUtf8(sub)) return false;
          break;
        default:
          if (!r.Skip(wire)) return false;
      }
    }
    return true;
  }

  bool Span(std::string_view bytes) {
    SpanView& s = out_->spans.emplace_back();  // in place; nothing else grows `spans` meanwhile
    s.attr_begin = static_cast<uint32_t>(out_->attributes.size());
    bool have_status = false;
    Reader r(bytes);
    uint32_t field, wire;
    std::string_view sub;
    uint64_t u64;
    uint32_t u32;
    while (!r.done()) {
      if (!r.Tag(&field, &wire)) return false;
      switch (field) {
        case 1:
          if (wire != kLen || !r.Bytes(&s.trace_id)) return false;
          break;
        case 2:
          if (wire != kLen || !r.Bytes(&s.span_id)) return false;
          break;
        case 3:  // trace_state
          if (wire != kLen || !r.Bytes(&sub) || !ValidUtf8(sub)) return false;
          break;
        case 4:
          if (wire != kLen || !r.Bytes(&s.parent_span_id)) return false;
          break;
        case 5:
          if (wire != kLen || !r.Bytes(&s.name) || !ValidUtf8(s.name)) return false;
          break;
        case 6:
          if (wire != kVarint || !r.Varint(&u64)) return false;
          s.kind = static_cast<int32_t>(u64);
          break;
        case 7:
          if (wire != kFixed64 || !r.Fixed64(&s.start_unix_ns)) return false;
          break;
        case 8:
          if (wire != kFixed64 || !r.Fixed64(&s.end_unix_ns)) return false;
          break;
        case 9:
          if (wire != kLen || !r.Bytes(&sub) || !KeyValueMsg(sub, /*depth=*/4)) return false;
          break;
        case 10: case 12: case 14:  // dropped_*_count
          if (wire != kVarint || !r.Varint(&u64)) return false;
          break;
        case 11:  // events: validated only
          if (wire != kLen || !r.Bytes(&sub) ||
              ParseSub<opentelemetry::proto::trace::v1::Span::Event>(out_, sub, 4) == nullptr) {
            return false;
          }
          break;
        case 13:  // links: validated only
          if (wire != kLen || !r.Bytes(&sub) ||
              ParseSub<opentelemetry::proto::trace::v1::Span::Link>(out_, sub, 4) == nullptr) {
            return false;
          }
          break;
        case 15:  // status (a repeat would merge: left to protobuf)
          if (wire != kLen || have_status || !r.Bytes(&sub) || !Status(sub, &s)) return false;
          have_status = true;
          break;
        case 16:  // flags
          if (wire != kFixed32 || !r.Fixed32(&u32)) return false;
          break;
        default:
          if (!r.Skip(wire)) return false;
      }
    }
    s.attr_count = static_cast<uint32_t>(out_->attributes.size()) - s.attr_begin;
    return true;
  }

  bool Status(std::string_view bytes, SpanView* s) {
    Reader r(bytes);
    uint32_t field, wire;
    uint64_t u64;
    while (!r.done()) {
      if (!r.Tag(&field, &wire)) return false;
      if (field == 2) {
        if (wire != kLen || !r.Bytes(&s->status_message) || !ValidUtf8(s->status_message)) return false;
      } else if (field == 3) {
        if (wire != kVarint || !r.Varint(&u64)) return false;
        s->status_code = static_cast<int32_t>(u64);
      } else if (!r.Skip(wire)) {
        return false;
      }
    }
    return true;
  }

  bool KeyValueMsg(std::string_view bytes, int depth) {
    // Built in place: a stack copy pushed afterwards costs store-forwarding stalls.
    AttributeView& a = out_->attributes.emplace_back();
    bool have_value = false;
    Reader r(bytes);
    uint32_t field, wire;
    std::string_view sub;
    while (!r.done()) {
      if (!r.Tag(&field, &wire)) return false;
      if (field == 1) {
        if (wire != kLen || !r.Bytes(&a.key) || !ValidUtf8(a.key)) return false;
      } else if (field == 2) {
        if (wire != kLen || have_value || !r.Bytes(&sub) || !AnyValueMsg(sub, depth + 1, &a.value)) {
          return false;
        }
        have_value = true;
      } else if (!r.Skip(wire)) {
        return false;
      }
    }
    return true;
  }

  bool AnyValueMsg(std::string_view bytes, int depth, ValueView* v) {
    Reader r(bytes);
    uint32_t field, wire;
    uint64_t u64;
    std::string_view sub;
    while (!r.done()) {
      if (!r.Tag(&field, &wire)) return false;
      switch (field) {  // oneof: the last member on the wire wins
        case 1:
          if (wire != kLen || !r.Bytes(&v->s) || !ValidUtf8(v->s)) return false;
          v->type = ValueView::Type::kString;
          break;
        case 2:
          if (wire != kVarint || !r.Varint(&u64)) return false;
          v->type = ValueView::Type::kBool;
          v->b = u64 != 0;
          break;
        case 3:
          if (wire != kVarint || !r.Varint(&u64)) return false;
          v->type = ValueView::Type::kInt;
          v->i = static_cast<int64_t>(u64);
          break;
        case 4:
          if (wire != kFixed64 || !r.Fixed64(&u64)) return false;
          v->type = ValueView::Type::kDouble;
          std::memcpy(&v->d, &u64, 8);
          break;
        case 5: case 6: {  // array / kvlist: the whole value goes through protobuf
          if (wire != kLen || !r.Bytes(&sub)) return false;
          const AnyValue* parsed = ParseSub<AnyValue>(out_, bytes, depth);
          if (parsed == nullptr) return false;
          *v = ViewOf(*parsed);
          return true;
        }
        case 7:
          if (wire != kLen || !r.Bytes(&v->s)) return false;
          v->type = ValueView::Type::kBytes;
          break;
        default:
          if (!r.Skip(wire)) return false;
      }
    }
    return true;
  }

  TraceBatch* out_;
};

}  // namespace

void TraceBatch::Clear() {
  attributes.clear();
  spans.clear();
  resources.clear();
  arena.reset();
}

bool DecodeTraceBatchWire(std::string_view body, TraceBatch* out) {
  out->Clear();
  if (body.size() > static_cast<size_t>(std::numeric_limits<int>::max())) return false;
  Decoder decoder(out);
  if (decoder.Request(body)) return true;
  out->Clear();
  return false;
}

ValueView ViewOf(const AnyValue& value) {
  ValueView v;
  switch (value.value_case()) {
    case AnyValue::kStringValue:
      v.type = ValueView::Type::kString;
      v.s = value.string_value();
      break;
    case AnyValue::kBoolValue:
      v.type = ValueView::Type::kBool;
      v.b = value.bool_value();
      break;
    case AnyValue::kIntValue:
      v.type = ValueView::Type::kInt;
      v.i = value.int_value();
      break;
    case AnyValue::kDoubleValue:
      v.type = ValueView::Type::kDouble;
      v.d = value.double_value();
      break;
    case AnyValue::kBytesValue:
      v.type = ValueView::Type::kBytes;
      v.s = value.bytes_value();
      break;
    case AnyValue::kArrayValue:
    case AnyValue::kKvlistValue:
      v.type = ValueView::Type::kStructured;
      v.structured = &value;
      break;
    case AnyValue::VALUE_NOT_SET:
      break;
  }
  return v;
}

void TraceBatchFromProto(const opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest& request,
                         TraceBatch* out) {
  out->Clear();
  auto add_attributes = [out](const google::protobuf::RepeatedPtrField<KeyValue>& attrs) {
    for (const KeyValue& kv : attrs) out->attributes.push_back({kv.key(), ViewOf(kv.value())});
  };
  for (const auto& rs : request.resource_spans()) {
    ResourceView rv;
    rv.attr_begin = static_cast<uint32_t>(out->attributes.size());
    add_attributes(rs.resource().attributes());
    rv.attr_count = static_cast<uint32_t>(out->attributes.size()) - rv.attr_begin;
    rv.span_begin = static_cast<uint32_t>(out->spans.size());
    for (const auto& ss : rs.scope_spans()) {
      for (const auto& in : ss.spans()) {
        SpanView s;
        s.trace_id = in.trace_id();
        s.span_id = in.span_id();
        s.parent_span_id = in.parent_span_id();
        s.name = in.name();
        s.status_message = in.status().message();
        s.kind = in.kind();
        s.status_code = in.status().code();
        s.start_unix_ns = in.start_time_unix_nano();
        s.end_unix_ns = in.end_time_unix_nano();
        s.attr_begin = static_cast<uint32_t>(out->attributes.size());
        add_attributes(in.attributes());
        s.attr_count = static_cast<uint32_t>(out->attributes.size()) - s.attr_begin;
        out->spans.push_back(s);
      }
    }
    rv.span_count = static_cast<uint32_t>(out->spans.size()) - rv.span_begin;
    out->resources.push_back(rv);
  }
}

}  // namespace sonde::otlp
