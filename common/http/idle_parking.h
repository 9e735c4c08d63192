#pragma once
// Connections waiting for their next request cost a file descriptor here, not
// a serving thread: one epoll thread watches them and hands a connection to
// the pool when bytes arrive, or closes it at its deadline. 2000 idle
// connections then do not keep /api/health from being served.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace sonde::net {

class IdleParking {
 public:
  using Clock = std::chrono::steady_clock;
  // `ready(sock)` runs on the parking thread when `sock` becomes readable (it
  // should enqueue the connection; it owns the socket from then on).
  // `closed` counts connections closed idle (evicted or past their deadline).
  IdleParking(size_t capacity, std::function<void(int)> ready, std::atomic<uint64_t>* closed);
  ~IdleParking();
  IdleParking(const IdleParking&) = delete;
  IdleParking& operator=(const IdleParking&) = delete;

  // Parks `sock` until readable or `deadline` (then it is closed). When full,
  // the longest-idle parked connection is closed to make room. False when
  // stopped: the caller keeps the socket.
  bool Park(int sock, Clock::time_point deadline);
  // Closes every parked socket; Park fails from now on.
  void Stop();
  size_t size() const;

 private:
  void Run();

  const size_t capacity_;
  std::function<void(int)> ready_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  mutable std::mutex mu_;
  bool stopping_ = false;
  std::atomic<uint64_t>* closed_;
  std::unordered_map<int, Clock::time_point> parked_;
  std::thread thread_;
};

}  // namespace sonde::net
