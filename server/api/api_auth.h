#pragma once
// Access to the UI and JSON API when a token is configured (--ui-token or
// --ui-token-file): a request is let in with "Authorization: Bearer <token>"
// or with the cookie set by POST /api/login (form field `token`). Without a
// token everything is open (the listener then must be loopback or
// --insecure, see server/main.cc).
#include <string>
#include <string_view>

#include <httplib.h>

namespace sonde::server {

inline constexpr char kSessionCookie[] = "sonde_token";

class ApiAuth {
 public:
  explicit ApiAuth(std::string token) : token_(std::move(token)) {}

  bool enabled() const { return !token_.empty(); }
  // Constant-time comparison of the bearer token or the session cookie.
  bool Authorized(const httplib::Request& req) const;
  // POST /api/login: sets the session cookie (HttpOnly, SameSite=Strict) and
  // redirects to the UI, or answers 401.
  void Login(const httplib::Request& req, httplib::Response& res) const;
  // The page a browser without the cookie is sent to.
  static void LoginPage(httplib::Response& res, bool failed);

 private:
  bool Matches(std::string_view presented) const;
  std::string token_;
};

}  // namespace sonde::server
