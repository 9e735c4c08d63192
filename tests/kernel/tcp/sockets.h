#pragma once
// Small blocking-socket helpers for the kernel tests (RAII fds).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <utility>
#include <vector>

namespace sonde::testing {

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) { reset(); fd_ = std::exchange(o.fd_, -1); }
    return *this;
  }
  ~Fd() { reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void reset() { if (fd_ >= 0) ::close(fd_); fd_ = -1; }
 private:
  int fd_ = -1;
};

inline sockaddr_in Addr(const std::string& ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  return a;
}

inline Fd Listen(const std::string& ip, uint16_t port, int rcvbuf = 0) {
  Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (rcvbuf) setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  sockaddr_in a = Addr(ip, port);
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return Fd();
  if (listen(fd.get(), 128) != 0) return Fd();
  return fd;
}

// Returns the connected fd, or an invalid one with errno in *err.
inline Fd Connect(const std::string& ip, uint16_t port, int* err = nullptr, int syn_count = 0) {
  Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (syn_count) setsockopt(fd.get(), IPPROTO_TCP, TCP_SYNCNT, &syn_count, sizeof(syn_count));
  sockaddr_in a = Addr(ip, port);
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    if (err) *err = errno;
    return Fd();
  }
  if (err) *err = 0;
  return fd;
}

inline bool SendAll(int fd, size_t n) {
  std::vector<char> buf(64 * 1024, 'x');
  while (n > 0) {
    ssize_t w = send(fd, buf.data(), std::min(n, buf.size()), MSG_NOSIGNAL);
    if (w <= 0) return false;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Reads until EOF; returns bytes read.
inline size_t DrainToEof(int fd) {
  std::vector<char> buf(64 * 1024);
  size_t total = 0;
  for (;;) {
    ssize_t r = recv(fd, buf.data(), buf.size(), 0);
    if (r <= 0) return total;
    total += static_cast<size_t>(r);
  }
}

inline void AbortiveClose(Fd& fd) {
  linger l{1, 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  fd.reset();
}

}  // namespace sonde::testing
