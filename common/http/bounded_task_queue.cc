#include "common/http/bounded_task_queue.h"

namespace sonde::net {
namespace {
thread_local bool t_rejecting = false;
}  // namespace

bool RejectingConnection() { return t_rejecting; }

BoundedTaskQueue::BoundedTaskQueue(size_t threads, size_t max_pending) : max_pending_(max_pending) {
  if (threads == 0) threads = 1;
  threads_.reserve(threads);
  for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { Work(); });
}

BoundedTaskQueue::~BoundedTaskQueue() { shutdown(); }

void BoundedTaskQueue::enqueue(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_ && queue_.size() < max_pending_) {
      queue_.push_back(std::move(fn));
      cv_.notify_one();
      return;
    }
  }
  t_rejecting = true;
  fn();
  t_rejecting = false;
}

void BoundedTaskQueue::shutdown() {
  if (before_shutdown) {
    before_shutdown();
    before_shutdown = nullptr;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

size_t BoundedTaskQueue::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

void BoundedTaskQueue::Work() {
  for (;;) {
    std::function<void()> fn;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      // Drain what was accepted before stopping: every queued socket is closed.
      if (queue_.empty()) return;
      fn = std::move(queue_.front());
      queue_.pop_front();
    }
    fn();
  }
}

}  // namespace sonde::net
