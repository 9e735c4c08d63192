#include "server/api/api_auth.h"

#include <openssl/crypto.h>

namespace sonde::server {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The value of cookie `name` in a Cookie header ("a=1; b=2"), or empty.
std::string_view CookieValue(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    size_t end = header.find(';');
    std::string_view pair = Trim(header.substr(0, end));
    size_t eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == name) return pair.substr(eq + 1);
    if (end == std::string_view::npos) break;
    header.remove_prefix(end + 1);
  }
  return {};
}

}  // namespace

bool ApiAuth::Matches(std::string_view presented) const {
  return presented.size() == token_.size() &&
         CRYPTO_memcmp(presented.data(), token_.data(), token_.size()) == 0;
}

bool ApiAuth::Authorized(const httplib::Request& req) const {
  if (token_.empty()) return true;
  const std::string header = req.get_header_value("Authorization");
  std::string_view auth = header;
  constexpr std::string_view kBearer = "Bearer ";
  if (auth.size() > kBearer.size() && auth.substr(0, kBearer.size()) == kBearer &&
      Matches(Trim(auth.substr(kBearer.size()))))
    return true;
  for (size_t i = 0; i < req.get_header_value_count("Cookie"); ++i) {
    std::string cookie = req.get_header_value("Cookie", i);
    std::string_view v = CookieValue(cookie, kSessionCookie);
    if (!v.empty() && Matches(v)) return true;
  }
  return false;
}

void ApiAuth::Login(const httplib::Request& req, httplib::Response& res) const {
  std::string presented = req.has_param("token") ? req.get_param_value("token") : "";
  if (token_.empty() || !Matches(presented)) {
    res.status = 401;
    LoginPage(res, true);
    res.status = 401;
    return;
  }
  // The cookie carries the token itself: one shared secret, nothing to store
  // server-side, and it is never readable by page scripts (HttpOnly).
  res.set_header("Set-Cookie", std::string(kSessionCookie) + "=" + token_ +
                                   "; Path=/; HttpOnly; SameSite=Strict; Max-Age=2592000");
  res.set_redirect("/", 303);
}

void ApiAuth::LoginPage(httplib::Response& res, bool failed) {
  res.set_header("Cache-Control", "no-store");
  res.set_content(std::string("<!doctype html><html><head><meta charset=\"utf-8\"><title>Sonde: sign in</title>"
                              "</head><body><form method=\"post\" action=\"/api/login\">"
                              "<p>This Sonde server requires a token.</p>") +
                      (failed ? "<p role=\"alert\">Wrong token.</p>" : "") +
                      "<input type=\"password\" name=\"token\" autofocus aria-label=\"token\">"
                      "<button type=\"submit\">Sign in</button></form></body></html>",
                  "text/html; charset=utf-8");
}

}  // namespace sonde::server
