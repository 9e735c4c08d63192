#include "common/http/guarded_stream.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>

namespace sonde::net {
namespace {

void AddressOf(const sockaddr_storage& ss, std::string& ip, int& port) {
  char text[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
    port = ntohs(in->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
    port = ntohs(in6->sin6_port);
  }
  ip = text;
}

int MillisUntil(GuardedStream::Clock::time_point deadline) {
  auto now = GuardedStream::Clock::now();
  if (now >= deadline) return 0;
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
  return static_cast<int>(std::min<int64_t>(ms + 1, 1 << 30));
}

}  // namespace

GuardedStream::GuardedStream(socket_t sock, SSL* ssl, size_t max_head_bytes,
                             std::chrono::milliseconds write_timeout)
    : sock_(sock), ssl_(ssl), max_head_bytes_(max_head_bytes), write_timeout_(write_timeout) {}

void GuardedStream::BeginHead(Clock::time_point deadline) {
  in_head_ = true;
  head_bytes_ = 0;
  deadline_ = deadline;
  phase_start_ = Clock::now();
}

void GuardedStream::BeginBody(Clock::time_point deadline, uint64_t min_bytes_per_s) {
  in_head_ = false;
  deadline_ = deadline;
  phase_start_ = Clock::now();
  body_bytes_ = 0;
  min_body_rate_ = min_bytes_per_s;
}

// A body gets this long before its average rate is judged.
constexpr std::chrono::milliseconds kBodyRateGrace{2000};

GuardedStream::Clock::time_point GuardedStream::EffectiveDeadline() const {
  Clock::time_point d = deadline_;
  if (in_head_) {
    if (under_pressure_ && under_pressure_()) d = std::min(d, phase_start_ + pressure_head_limit_);
  } else if (min_body_rate_ > 0) {
    // When the bytes received so far stop meeting the minimum average rate.
    const auto earned = std::chrono::milliseconds(body_bytes_ * 1000 / min_body_rate_);
    d = std::min(d, phase_start_ + kBodyRateGrace + earned);
  }
  return d;
}

bool GuardedStream::WaitReadableGuarded(short events) {
  for (;;) {
    const auto deadline = EffectiveDeadline();
    const auto now = Clock::now();
    if (now >= deadline) return false;
    if (WaitFor(events, std::min(deadline, now + std::chrono::milliseconds(100)))) return true;
  }
}

bool GuardedStream::WaitFor(short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{sock_, events, 0};
    int rc = ::poll(&p, 1, MillisUntil(deadline));
    if (rc > 0) return true;
    if (rc == 0) return false;
    if (errno != EINTR) return false;
  }
}

bool GuardedStream::WaitReadable(Clock::time_point deadline) {
  if (buf_begin_ < buf_end_) return true;
  if (ssl_ != nullptr && SSL_pending(ssl_) > 0) return true;
  return WaitFor(POLLIN, deadline);
}

bool GuardedStream::Fill() {
  buf_begin_ = buf_end_ = 0;
  for (;;) {
    if (Clock::now() >= EffectiveDeadline()) {
      failure_ = Failure::kTimedOut;
      return false;
    }
    ssize_t n;
    if (ssl_ != nullptr) {
      n = SSL_read(ssl_, buf_.data(), static_cast<int>(buf_.size()));
      if (n <= 0) {
        int err = SSL_get_error(ssl_, static_cast<int>(n));
        short events = err == SSL_ERROR_WANT_READ ? POLLIN : err == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
        if (events == 0) {
          failure_ = Failure::kClosed;
          return false;
        }
        if (!WaitReadableGuarded(events)) {
          failure_ = Failure::kTimedOut;
          return false;
        }
        continue;
      }
    } else {
      n = ::recv(sock_, buf_.data(), buf_.size(), MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        if (!WaitReadableGuarded(POLLIN)) {
          failure_ = Failure::kTimedOut;
          return false;
        }
        continue;
      }
      if (n <= 0) {
        failure_ = Failure::kClosed;
        return false;
      }
    }
    buf_end_ = static_cast<size_t>(n);
    if (!in_head_) body_bytes_ += static_cast<uint64_t>(n);
    return true;
  }
}

bool GuardedStream::is_readable() const {
  return failure_ == Failure::kNone &&
         (buf_begin_ < buf_end_ || (ssl_ != nullptr && SSL_pending(ssl_) > 0) ||
          const_cast<GuardedStream*>(this)->WaitFor(POLLIN, deadline_));
}

bool GuardedStream::is_writable() const {
  return failure_ == Failure::kNone &&
         const_cast<GuardedStream*>(this)->WaitFor(POLLOUT, Clock::now() + write_timeout_);
}

ssize_t GuardedStream::read(char* ptr, size_t size) {
  if (failure_ != Failure::kNone) return -1;
  if (buf_begin_ == buf_end_ && !Fill()) return failure_ == Failure::kClosed ? 0 : -1;
  size_t n = std::min(size, buf_end_ - buf_begin_);
  if (in_head_) {
    if (head_bytes_ + n > max_head_bytes_) {
      failure_ = Failure::kHeadTooLarge;
      return -1;
    }
    head_bytes_ += n;
  }
  std::memcpy(ptr, buf_.data() + buf_begin_, n);
  buf_begin_ += n;
  return static_cast<ssize_t>(n);
}

ssize_t GuardedStream::write(const char* ptr, size_t size) {
  // After a failure only WriteFinalResponse writes (httplib would answer 400 first).
  if (failure_ != Failure::kNone) return -1;
  size_t done = 0;
  const auto deadline = Clock::now() + write_timeout_;
  while (done < size) {
    ssize_t n;
    if (ssl_ != nullptr) {
      n = SSL_write(ssl_, ptr + done, static_cast<int>(std::min<size_t>(size - done, 1 << 30)));
      if (n <= 0) {
        int err = SSL_get_error(ssl_, static_cast<int>(n));
        short events = err == SSL_ERROR_WANT_READ ? POLLIN : err == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
        if (events == 0 || !WaitFor(events, deadline)) return done > 0 ? static_cast<ssize_t>(done) : -1;
        continue;
      }
    } else {
      n = ::send(sock_, ptr + done, size - done, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        if (!WaitFor(POLLOUT, deadline)) return done > 0 ? static_cast<ssize_t>(done) : -1;
        continue;
      }
      if (n <= 0) return done > 0 ? static_cast<ssize_t>(done) : -1;
    }
    done += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(done);
}

void GuardedStream::WriteFinalResponse(int status, const char* reason) {
  std::string body = std::string(reason) + "\n";
  std::string head = "HTTP/1.1 " + std::to_string(status) + " " + reason +
                     "\r\nContent-Type: text/plain\r\nConnection: close\r\n";
  if (status == 503) head += "Retry-After: 1\r\n";
  head += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  Failure keep = failure_;
  failure_ = Failure::kNone;
  write(head.data(), head.size());
  failure_ = keep == Failure::kNone ? Failure::kClosed : keep;
}

void GuardedStream::get_remote_ip_and_port(std::string& ip, int& port) const {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getpeername(sock_, reinterpret_cast<sockaddr*>(&ss), &len) == 0) AddressOf(ss, ip, port);
}

void GuardedStream::get_local_ip_and_port(std::string& ip, int& port) const {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getsockname(sock_, reinterpret_cast<sockaddr*>(&ss), &len) == 0) AddressOf(ss, ip, port);
}

}  // namespace sonde::net
