#include "common/http/idle_parking.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <vector>

namespace sonde::net {

IdleParking::IdleParking(size_t capacity, std::function<void(int)> ready, std::atomic<uint64_t>* closed)
    : capacity_(capacity), ready_(std::move(ready)), closed_(closed) {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = wake_fd_;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  thread_ = std::thread([this] { Run(); });
}

IdleParking::~IdleParking() {
  Stop();
  if (epoll_fd_ >= 0) close(epoll_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

bool IdleParking::Park(int sock, Clock::time_point deadline) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_ || capacity_ == 0) return false;
  if (parked_.size() >= capacity_) {
    // Full: the connection idle the longest makes room (nginx does the same
    // with keep-alive connections), so a flood of idle sockets cannot lock
    // out a client that is about to send its request.
    auto oldest = parked_.begin();
    for (auto it = parked_.begin(); it != parked_.end(); ++it) {
      if (it->second < oldest->second) oldest = it;
    }
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, oldest->first, nullptr);
    close(oldest->first);
    parked_.erase(oldest);
    ++*closed_;
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
  ev.data.fd = sock;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, sock, &ev) != 0) return false;
  parked_[sock] = deadline;
  return true;
}

size_t IdleParking::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return parked_.size();
}

void IdleParking::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [sock, deadline] : parked_) close(sock);
  parked_.clear();
}

void IdleParking::Run() {
  std::vector<epoll_event> events(256);
  for (;;) {
    int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), 100);
    std::vector<int> ready;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      for (int i = 0; i < n; ++i) {
        int fd = events[static_cast<size_t>(i)].data.fd;
        if (fd == wake_fd_) continue;
        epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
        if (parked_.erase(fd) > 0) ready.push_back(fd);
      }
      const auto now = Clock::now();
      for (auto it = parked_.begin(); it != parked_.end();) {
        if (it->second <= now) {  // idle past its deadline: nothing was asked
          epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, it->first, nullptr);
          close(it->first);
          ++*closed_;
          it = parked_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (int fd : ready) ready_(fd);
  }
}

}  // namespace sonde::net
