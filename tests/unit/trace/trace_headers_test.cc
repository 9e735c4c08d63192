#include <gtest/gtest.h>

#include "agent/trace/redaction.h"
#include "agent/protocols/http/route.h"
#include "agent/trace/trace_headers.h"

namespace sonde::trace {
namespace {

TEST(Traceparent, Valid) {
  auto ctx = ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  ASSERT_TRUE(ctx);
  EXPECT_EQ(ToHex(ctx->trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(ToHex(ctx->parent_span_id), "00f067aa0ba902b7");
  EXPECT_TRUE(ctx->sampled);
  // Future version with extra fields.
  EXPECT_TRUE(ParseTraceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what"));
}

TEST(Traceparent, Invalid) {
  const char* bad[] = {
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   // uppercase
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",   // zero trace id
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   // zero parent id
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   // version ff
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", // v00 with extra
      "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",    // short
      "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   // separator
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",   // flags
      "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00x",  // future, no dash
      "",
  };
  for (const char* b : bad) EXPECT_FALSE(ParseTraceparent(b)) << b;
}

TEST(Tracestate, Rules) {
  EXPECT_TRUE(ValidTracestate("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
  EXPECT_TRUE(ValidTracestate("tenant@vendor=x, other=y"));
  EXPECT_FALSE(ValidTracestate("Rojo=1"));           // uppercase key
  EXPECT_FALSE(ValidTracestate("a=1,a=2"));          // duplicate key
  EXPECT_FALSE(ValidTracestate("novalue"));
  EXPECT_FALSE(ValidTracestate("k=has,comma=x=y"));  // '=' in value
  std::string many;
  for (int i = 0; i < 33; ++i) many += "k" + std::to_string(i) + "=v,";
  EXPECT_FALSE(ValidTracestate(many));
}

TEST(B3, SingleAndMulti) {
  auto s = ParseB3Single("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90");
  ASSERT_TRUE(s);
  EXPECT_EQ(ToHex(s->trace_id), "80f198ee56343ba864fe8b2a57d3eff7");
  EXPECT_EQ(ToHex(s->parent_span_id), "e457b5a2e4d86bd1");
  auto s64 = ParseB3Single("64fe8b2a57d3eff7-e457b5a2e4d86bd1-0");
  ASSERT_TRUE(s64);
  EXPECT_EQ(ToHex(s64->trace_id), "000000000000000064fe8b2a57d3eff7");
  EXPECT_FALSE(s64->sampled);
  EXPECT_FALSE(ParseB3Single("1"));  // sampling only
  EXPECT_FALSE(ParseB3Single("0000000000000000-e457b5a2e4d86bd1"));
  EXPECT_FALSE(ParseB3Single("64fe8b2a57d3eff7-e457b5a2e4d86bd1-x"));
  auto m = ParseB3Multi("463AC35C9F6413AD48485A3953BB6124", "A2FB4A1D1A96D312", "1", "");
  ASSERT_TRUE(m);
  EXPECT_EQ(ToHex(m->parent_span_id), "a2fb4a1d1a96d312");
  EXPECT_FALSE(ParseB3Multi("xyz", "a2fb4a1d1a96d312", "1", ""));
}

TEST(Extract, PrefersTraceparentThenB3) {
  protocols::HeaderList h = {
      {"b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1", false},
      {"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
      {"tracestate", "a=b", false}};
  auto ctx = ExtractTraceContext(h);
  ASSERT_TRUE(ctx);
  EXPECT_EQ(ctx->format, ContextFormat::kW3C);
  EXPECT_EQ(ctx->tracestate, "a=b");
  h.SetValue(1, "00-zz");  // invalid traceparent falls back to b3
  ctx = ExtractTraceContext(h);
  ASSERT_TRUE(ctx);
  EXPECT_EQ(ctx->format, ContextFormat::kB3Single);
  h = {{"x-b3-traceid", "463ac35c9f6413ad", false}, {"x-b3-spanid", "a2fb4a1d1a96d312", false}};
  ctx = ExtractTraceContext(h);
  ASSERT_TRUE(ctx);
  EXPECT_EQ(ctx->format, ContextFormat::kB3Multi);
  EXPECT_FALSE(ExtractTraceContext({}));
}

TEST(Route, Normalise) {
  EXPECT_EQ(protocols::http::NormaliseRoute("/users/42"), "/users/{id}");
  EXPECT_EQ(protocols::http::NormaliseRoute("/users/42/orders/7/"), "/users/{id}/orders/{id}/");
  EXPECT_EQ(protocols::http::NormaliseRoute("/items/123e4567-e89b-12d3-a456-426614174000"), "/items/{id}");
  EXPECT_EQ(protocols::http::NormaliseRoute("/commits/da39a3ee5e6b4b0d3255bfef95601890afd80709"), "/commits/{id}");
  EXPECT_EQ(protocols::http::NormaliseRoute("/obj/507f1f77bcf86cd799439011"), "/obj/{id}");
  EXPECT_EQ(protocols::http::NormaliseRoute("/v1/prices/3.50"), "/v1/prices/{id}");
  EXPECT_EQ(protocols::http::NormaliseRoute("/t/01ARZ3NDEKTSV4RRFFQ69G5FAV"), "/t/{id}");
  EXPECT_EQ(protocols::http::NormaliseRoute("/api/v2/health"), "/api/v2/health");
  EXPECT_EQ(protocols::http::NormaliseRoute("/static/app.js"), "/static/app.js");
  EXPECT_EQ(protocols::http::NormaliseRoute("/feed/deadbeef"), "/feed/deadbeef");  // a word, no digit
  EXPECT_EQ(protocols::http::NormaliseRoute("/"), "/");
  EXPECT_EQ(protocols::http::NormaliseRoute("/blog/my-first-post"), "/blog/my-first-post");
}

TEST(Redaction, DefaultsAndConfigurable) {
  protocols::L7Record r;
  r.request.headers = {{"authorization", "Bearer x", false}, {"cookie", "a=b", false},
                       {"apikey", "k", false}, {"x-api-key", "k", false},
                       {"proxy-authorization", "p", false}, {"accept", "*/*", false}};
  r.response.headers = {{"set-cookie", "s=1", false}, {"x-secret", "s", false}};
  Redactor().Apply(r);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(r.request.headers[i].value, kRedacted);
  EXPECT_EQ(r.request.headers[5].value, "*/*");
  EXPECT_EQ(r.response.headers[0].value, kRedacted);
  EXPECT_EQ(r.response.headers[1].value, "s");
  Redactor custom({"X-Secret"});
  custom.Apply(r);
  EXPECT_EQ(r.response.headers[1].value, kRedacted);
  EXPECT_FALSE(custom.IsSensitive("authorization"));
}

// Query strings (issue #17): S and N spans are built from records (the
// pipeline redacts the record), A spans carry url.* attributes.
TEST(Redaction, QueryParametersAreScrubbedByName) {
  Redactor r;
  std::string q = "page=2&API_KEY=abc&access_token=t0k&q=x%3Dtoken&token&password=;sig=zz";
  r.ScrubQuery(q);
  EXPECT_EQ(q, "page=2&API_KEY=[REDACTED]&access_token=[REDACTED]&q=x%3Dtoken&token&password=[REDACTED];sig=[REDACTED]");
  std::string url = "https://api.example.com/v1/items?id=7&apikey=s3cr3t#frag";
  r.ScrubUrl(url);
  EXPECT_EQ(url, "https://api.example.com/v1/items?id=7&apikey=[REDACTED]#frag");
  std::string plain = "/v1/items";
  r.ScrubUrl(plain);
  EXPECT_EQ(plain, "/v1/items");
  Redactor custom({}, {"tenant"});
  std::string t = "tenant=acme&token=x";
  custom.ScrubQuery(t);
  EXPECT_EQ(t, "tenant=[REDACTED]&token=x");
}

TEST(Redaction, RecordsOfSystemAndNetworkSpansLoseSecretsInHeadersAndQuery) {
  protocols::L7Record rec;
  rec.path = "/login";
  rec.query = "user=bob&password=hunter2";
  rec.request.headers = {{"authorization", "Bearer abc", false}, {"cookie", "sid=1", false}};
  Redactor().Apply(rec);
  EXPECT_EQ(rec.query, "user=bob&password=[REDACTED]");
  EXPECT_EQ(rec.request.headers[0].value, kRedacted);
  EXPECT_EQ(rec.request.headers[1].value, kRedacted);
}

TEST(Redaction, AppSpanAttributesLoseSecretsInUrlsAndHeaders) {
  std::vector<protocols::Attribute> attrs = {
      {"url.query", std::string("token=abc&x=1")},
      {"url.full", std::string("http://h/p?access_token=abc")},
      {"http.target", std::string("/p?apikey=1")},
      {"http.request.header.authorization", std::string("Basic Zm9v")},
      {"url.path", std::string("/p")}};
  protocols::HeaderList req, resp;
  Redactor().Apply(attrs, req, resp);
  EXPECT_EQ(std::get<std::string>(attrs[0].value), "token=[REDACTED]&x=1");
  EXPECT_EQ(std::get<std::string>(attrs[1].value), "http://h/p?access_token=[REDACTED]");
  EXPECT_EQ(std::get<std::string>(attrs[2].value), "/p?apikey=[REDACTED]");
  EXPECT_EQ(std::get<std::string>(attrs[3].value), kRedacted);
  EXPECT_EQ(std::get<std::string>(attrs[4].value), "/p");
}

}  // namespace
}  // namespace sonde::trace
