#include "agent/otlp/json_codec.h"

#include <algorithm>
#include <cmath>
#include <charconv>
#include <limits>

#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "agent/otlp/text_util.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"

namespace sonde::otlp {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;
using nlohmann::json;

bool IsHexIdField(const FieldDescriptor* field) {
  if (field->type() != FieldDescriptor::TYPE_BYTES) return false;
  std::string_view name = field->name();
  return EndsWith(name, "trace_id") || EndsWith(name, "span_id");
}

absl::Status Error(const FieldDescriptor* field, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("field '", field->json_name(), "': ", Str(what)));
}

int HexNibble(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

absl::Status DecodeHex(const FieldDescriptor* field, std::string_view hex, std::string* out) {
  if (hex.size() % 2 != 0) return Error(field, "hex id of odd length");
  out->resize(hex.size() / 2);
  for (size_t i = 0; i < out->size(); ++i) {
    int hi = HexNibble(hex[2 * i]), lo = HexNibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return Error(field, "id is not hex");
    (*out)[i] = static_cast<char>((hi << 4) | lo);
  }
  return absl::OkStatus();
}

template <typename T>
absl::Status ParseInteger(const FieldDescriptor* field, const json& v, T* out) {
  if (v.is_number_integer()) {
    if (v.is_number_unsigned()) {
      auto u = v.get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<T>::max())) return Error(field, "out of range");
      *out = static_cast<T>(u);
    } else {
      auto s = v.get<int64_t>();
      if (s < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
          (s > 0 && static_cast<uint64_t>(s) > static_cast<uint64_t>(std::numeric_limits<T>::max()))) {
        return Error(field, "out of range");
      }
      *out = static_cast<T>(s);
    }
    return absl::OkStatus();
  }
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (!std::isfinite(d) || d != std::floor(d) ||
        d < static_cast<double>(std::numeric_limits<T>::min()) ||
        d >= std::ldexp(1.0, std::numeric_limits<T>::digits)) {
      return Error(field, "not an integer");
    }
    *out = static_cast<T>(d);
    return absl::OkStatus();
  }
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    const char* begin = s.data();
    const char* end = s.data() + s.size();
    auto [ptr, ec] = std::from_chars(begin, end, *out);
    if (ec != std::errc() || ptr != end || s.empty()) return Error(field, "not an integer string");
    return absl::OkStatus();
  }
  return Error(field, "expected an integer");
}

absl::Status ParseDouble(const FieldDescriptor* field, const json& v, double* out) {
  if (v.is_number()) {
    *out = v.get<double>();
    return absl::OkStatus();
  }
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    if (s == "NaN") *out = std::numeric_limits<double>::quiet_NaN();
    else if (s == "Infinity") *out = std::numeric_limits<double>::infinity();
    else if (s == "-Infinity") *out = -std::numeric_limits<double>::infinity();
    else {
      auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
      if (ec != std::errc() || ptr != s.data() + s.size() || s.empty()) {
        return Error(field, "not a number string");
      }
    }
    return absl::OkStatus();
  }
  return Error(field, "expected a number");
}

absl::Status ParseMessage(const json& obj, Message* msg, int depth);

// Parses one (non-repeated) value and stores it, or adds it for repeated fields.
absl::Status ParseValue(const FieldDescriptor* field, const json& v, Message* msg, int depth) {
  const Reflection* r = msg->GetReflection();
  const bool rep = field->is_repeated();
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_MESSAGE: {
      if (!v.is_object()) return Error(field, "expected an object");
      Message* sub = rep ? r->AddMessage(msg, field) : r->MutableMessage(msg, field);
      return ParseMessage(v, sub, depth + 1);
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      if (!v.is_string()) return Error(field, "expected a string");
      const auto& s = v.get_ref<const std::string&>();
      std::string value;
      if (field->type() == FieldDescriptor::TYPE_BYTES) {
        if (IsHexIdField(field)) {
          if (auto st = DecodeHex(field, s, &value); !st.ok()) return st;
        } else if (!absl::Base64Unescape(s, &value) && !absl::WebSafeBase64Unescape(s, &value)) {
          return Error(field, "invalid base64");
        }
      } else {
        value = s;
      }
      rep ? r->AddString(msg, field, std::move(value)) : r->SetString(msg, field, std::move(value));
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_BOOL: {
      if (!v.is_boolean()) return Error(field, "expected true/false");
      rep ? r->AddBool(msg, field, v.get<bool>()) : r->SetBool(msg, field, v.get<bool>());
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      int number = 0;
      if (v.is_string()) {
        const auto* value = field->enum_type()->FindValueByName(v.get_ref<const std::string&>());
        if (value == nullptr) return Error(field, "unknown enum name");
        number = value->number();
      } else if (auto st = ParseInteger<int32_t>(field, v, &number); !st.ok()) {
        return st;
      }
      rep ? r->AddEnumValue(msg, field, number) : r->SetEnumValue(msg, field, number);
      return absl::OkStatus();
    }
#define SONDE_INT_CASE(CPPTYPE, T, SUFFIX)                                                \
  case FieldDescriptor::CPPTYPE: {                                                        \
    T value{};                                                                            \
    if (auto st = ParseInteger<T>(field, v, &value); !st.ok()) return st;                 \
    rep ? r->Add##SUFFIX(msg, field, value) : r->Set##SUFFIX(msg, field, value);          \
    return absl::OkStatus();                                                              \
  }
      SONDE_INT_CASE(CPPTYPE_INT32, int32_t, Int32)
      SONDE_INT_CASE(CPPTYPE_INT64, int64_t, Int64)
      SONDE_INT_CASE(CPPTYPE_UINT32, uint32_t, UInt32)
      SONDE_INT_CASE(CPPTYPE_UINT64, uint64_t, UInt64)
#undef SONDE_INT_CASE
    case FieldDescriptor::CPPTYPE_DOUBLE: {
      double d = 0;
      if (auto st = ParseDouble(field, v, &d); !st.ok()) return st;
      rep ? r->AddDouble(msg, field, d) : r->SetDouble(msg, field, d);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_FLOAT: {
      double d = 0;
      if (auto st = ParseDouble(field, v, &d); !st.ok()) return st;
      rep ? r->AddFloat(msg, field, static_cast<float>(d))
          : r->SetFloat(msg, field, static_cast<float>(d));
      return absl::OkStatus();
    }
  }
  return Error(field, "unsupported field type");
}

absl::Status ParseMessage(const json& obj, Message* msg, int depth) {
  if (depth > kMaxJsonDepth) return absl::InvalidArgumentError("JSON nested too deeply");
  const Descriptor* desc = msg->GetDescriptor();
  for (const auto& [key, value] : obj.items()) {
    const FieldDescriptor* field = desc->FindFieldByCamelcaseName(key);
    if (field == nullptr) field = desc->FindFieldByName(key);
    if (field == nullptr || value.is_null()) continue;  // unknown fields are ignored
    if (field->is_repeated()) {
      if (!value.is_array()) return Error(field, "expected an array");
      for (const auto& element : value) {
        if (auto st = ParseValue(field, element, msg, depth); !st.ok()) return st;
      }
    } else if (auto st = ParseValue(field, value, msg, depth); !st.ok()) {
      return st;
    }
  }
  return absl::OkStatus();
}

json PrintMessage(const Message& msg);

json PrintScalar(const Message& msg, const FieldDescriptor* field, int index) {
  const Reflection* r = msg.GetReflection();
  const bool rep = index >= 0;
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return PrintMessage(rep ? r->GetRepeatedMessage(msg, field, index) : r->GetMessage(msg, field));
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string s = rep ? r->GetRepeatedString(msg, field, index) : r->GetString(msg, field);
      if (field->type() != FieldDescriptor::TYPE_BYTES) return s;
      return IsHexIdField(field) ? absl::BytesToHexString(s) : absl::Base64Escape(s);
    }
    case FieldDescriptor::CPPTYPE_BOOL:
      return rep ? r->GetRepeatedBool(msg, field, index) : r->GetBool(msg, field);
    case FieldDescriptor::CPPTYPE_ENUM:
      return rep ? r->GetRepeatedEnumValue(msg, field, index) : r->GetEnumValue(msg, field);
    case FieldDescriptor::CPPTYPE_INT32:
      return rep ? r->GetRepeatedInt32(msg, field, index) : r->GetInt32(msg, field);
    case FieldDescriptor::CPPTYPE_UINT32:
      return rep ? r->GetRepeatedUInt32(msg, field, index) : r->GetUInt32(msg, field);
    case FieldDescriptor::CPPTYPE_INT64:
      return std::to_string(rep ? r->GetRepeatedInt64(msg, field, index) : r->GetInt64(msg, field));
    case FieldDescriptor::CPPTYPE_UINT64:
      return std::to_string(rep ? r->GetRepeatedUInt64(msg, field, index) : r->GetUInt64(msg, field));
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT: {
      double d = field->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE
                     ? (rep ? r->GetRepeatedDouble(msg, field, index) : r->GetDouble(msg, field))
                     : (rep ? r->GetRepeatedFloat(msg, field, index) : r->GetFloat(msg, field));
      if (std::isnan(d)) return "NaN";
      if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
      return d;
    }
  }
  return nullptr;
}

json PrintMessage(const Message& msg) {
  json out = json::object();
  std::vector<const FieldDescriptor*> fields;
  msg.GetReflection()->ListFields(msg, &fields);  // set fields only: defaults omitted
  for (const FieldDescriptor* field : fields) {
    if (field->is_repeated()) {
      json arr = json::array();
      int n = msg.GetReflection()->FieldSize(msg, field);
      for (int i = 0; i < n; ++i) arr.push_back(PrintScalar(msg, field, i));
      out[field->json_name()] = std::move(arr);
    } else {
      out[field->json_name()] = PrintScalar(msg, field, -1);
    }
  }
  return out;
}

}  // namespace

namespace {

// A JSON document costs 16-80 bytes per value once parsed: `[{},{},...]` is
// 3 bytes per object on the wire. Values (objects, arrays, scalars) are
// counted outside strings before parsing and bounded by the text's size.
constexpr size_t kMinJsonBytesPerValue = 4;

bool TooManyJsonValues(std::string_view text) {
  const size_t max_values = std::max<size_t>(4096, text.size() / kMinJsonBytesPerValue);
  size_t values = 1;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '{' || c == '[' || c == ',') {
      if (++values > max_values) return true;
    }
  }
  return false;
}

}  // namespace

absl::Status ParseOtlpJson(std::string_view text, Message* out) {
  out->Clear();
  if (TooManyJsonValues(text))
    return absl::InvalidArgumentError("JSON body holds too many values for its size");
  try {
    // Parse errors come back as a discarded value; the catch is a backstop so
    // no nlohmann exception ever crosses this boundary.
    json doc = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) return absl::InvalidArgumentError("malformed JSON");
    if (!doc.is_object()) return absl::InvalidArgumentError("JSON body is not an object");
    return ParseMessage(doc, out, 0);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("malformed JSON: ", e.what()));
  }
}

std::string PrintOtlpJson(const Message& message) {
  return PrintMessage(message).dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace sonde::otlp
