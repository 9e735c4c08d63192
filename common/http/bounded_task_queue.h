#pragma once
// A fixed thread pool for httplib with a bounded backlog. httplib hands every
// accepted connection to TaskQueue::enqueue, which cannot refuse; when the
// pool and its backlog are full the task runs at once on the accepting
// thread with RejectingConnection() true, so the server answers 503 and
// closes instead of holding one more socket (and eventually one more thread).
#include <httplib.h>

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace sonde::net {

// True while a task runs because the queue was full (see above).
bool RejectingConnection();

class BoundedTaskQueue final : public httplib::TaskQueue {
 public:
  // `threads` serve connections; at most `max_pending` more wait for one.
  BoundedTaskQueue(size_t threads, size_t max_pending);
  ~BoundedTaskQueue() override;

  void enqueue(std::function<void()> fn) override;
  void shutdown() override;

  // Connections waiting for a thread: an idle keep-alive connection gives its
  // thread up when this is non-zero.
  size_t pending() const;
  // Runs first in shutdown() (stops whatever still enqueues connections).
  std::function<void()> before_shutdown;

 private:
  void Work();

  const size_t max_pending_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace sonde::net
