#pragma once
// A throw-away CA, a server certificate for 127.0.0.1/localhost (with the
// subjectAltName curl and gRPC verify) and a client certificate, made by
// openssl(1) in a fresh temporary directory removed on destruction.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

namespace sonde::testing {

class TestCertificates {
 public:
  TestCertificates() {
    std::random_device rd;
    dir_ = std::filesystem::temp_directory_path() / ("sonde-certs-" + std::to_string(rd()));
    std::filesystem::create_directories(dir_);
    std::ofstream(dir_ / "server.ext") << "subjectAltName=IP:127.0.0.1,DNS:localhost\n";
    const std::string cmd =
        "cd " + dir_.string() +
        " && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 -subj /CN=sonde-test-ca"
        " && openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1"
        " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 1"
        " -extfile server.ext"
        " && openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=scraper-1"
        " && openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 1";
    ok_ = std::system(("(" + cmd + ") >/dev/null 2>&1").c_str()) == 0;
  }
  ~TestCertificates() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  TestCertificates(const TestCertificates&) = delete;
  TestCertificates& operator=(const TestCertificates&) = delete;

  bool ok() const { return ok_; }  // false: openssl failed (or is missing)
  // ca.pem, server.pem, server.key, client.pem, client.key
  std::string File(const char* name) const { return (dir_ / name).string(); }

 private:
  std::filesystem::path dir_;
  bool ok_ = false;
};

}  // namespace sonde::testing
