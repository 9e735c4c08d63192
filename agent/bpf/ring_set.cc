#include "agent/bpf/ring_set.h"

#include <bpf/bpf.h>
#include <sys/epoll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "agent/core/clock.h"

namespace sonde::bpf {
namespace {

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// A record being written is committed within a program run (well under a
// microsecond) unless its producer was interrupted; a few pauses catch the
// common case (the drain has caught up with a producer) without spinning
// away CPU time: past them the round ends and the next drain resumes.
constexpr int kBusySpins = 16;

}  // namespace

absl::StatusOr<std::unique_ptr<RingSet>> RingSet::Create(size_t count, uint64_t ring_bytes, size_t timestamp_offset,
                                                         Callback callback, void* ctx) {
  if (count == 0) return absl::InvalidArgumentError("a ring set needs at least one ring");
  auto set = std::make_unique<RingSet>(Passkey{});
  set->ring_bytes_ = ring_bytes;
  set->timestamp_offset_ = timestamp_offset;
  set->callback_ = callback;
  set->ctx_ = ctx;
  set->epoll_ = UniqueFd(epoll_create1(EPOLL_CLOEXEC));
  if (!set->epoll_.valid()) return absl::InternalError(absl::StrCat("epoll_create1: ", std::strerror(errno)));
  for (size_t i = 0; i < count; ++i) {
    UniqueFd fd(bpf_map_create(BPF_MAP_TYPE_RINGBUF, "sonde_cpu_ring", 0, 0, static_cast<uint32_t>(ring_bytes),
                               nullptr));
    if (!fd.valid()) {
      return absl::InternalError(absl::StrCat("creating ring buffer ", i, " of ", count, " (", ring_bytes >> 10,
                                              " KiB): ", std::strerror(errno)));
    }
    auto ring = RingConsumer::Open(fd.get(), ring_bytes);
    if (!ring.ok()) return ring.status();
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    if (epoll_ctl(set->epoll_.get(), EPOLL_CTL_ADD, fd.get(), &ev) != 0) {
      return absl::InternalError(absl::StrCat("epoll on ring buffer ", i, ": ", std::strerror(errno)));
    }
    set->rings_.push_back(std::move(*ring));
    set->fds_.push_back(std::move(fd));
  }
  set->heads_.resize(count);
  set->queued_.reserve(count);
  return set;
}

RingSet::~RingSet() {
  rings_.clear();  // unmapped before the maps' fds close
}

int RingSet::Wait(int timeout_ms) {
  epoll_event events[8];
  const int ready = epoll_wait(epoll_.get(), events, 8, timeout_ms);
  if (ready < 0) return errno == EINTR ? 0 : -errno;
  return ready > 0 ? 1 : 0;
}

double RingSet::MaxFillFraction() const {
  uint64_t most = 0;
  for (const auto& r : rings_) most = std::max(most, r->waiting_bytes());
  return static_cast<double>(most) / static_cast<double>(ring_bytes_);
}

RingSet::Refill RingSet::Queue(size_t ring, uint64_t cut_ns, bool* past_cut) {
  HeadRecord& head = heads_[ring];
  RingConsumer::Head state = rings_[ring]->Peek(&head.data, &head.size);
  for (int spin = 0; state == RingConsumer::Head::kBusy && spin < kBusySpins; ++spin) {
    CpuRelax();
    state = rings_[ring]->Peek(&head.data, &head.size);
  }
  if (state == RingConsumer::Head::kBusy) return Refill::kBusy;
  if (state == RingConsumer::Head::kEmpty) return Refill::kDone;
  head.ts = 0;
  if (head.size >= timestamp_offset_ + sizeof(head.ts)) std::memcpy(&head.ts, head.data + timestamp_offset_, sizeof(head.ts));
  if (head.ts >= cut_ns) {
    *past_cut = true;
    return Refill::kDone;
  }
  return Refill::kQueued;
}

int RingSet::Consume() {
  int delivered = 0;
  int result = 0;
  // Rounds: each delivers what was stamped before its start; another round
  // follows while records past the cut wait (the drain keeps up with a busy
  // ring, as one that consumes until empty would).
  for (bool again = true; again && result >= 0;) {
    again = false;
    const uint64_t cut = core::MonotonicNowNs();  // the events' clock (bpf_ktime_get_ns)
    bool past_cut = false;
    bool busy = false;
    queued_.clear();
    for (size_t i = 0; i < rings_.size() && !busy; ++i) {
      const Refill r = Queue(i, cut, &past_cut);
      busy = r == Refill::kBusy;
      if (r == Refill::kQueued) queued_.push_back(i);
    }
    while (!busy && result >= 0 && !queued_.empty()) {
      // The ring with the oldest record, and the time up to which it may run
      // on without looking at the others (records of one CPU come in runs).
      size_t best = 0;
      uint64_t bound = UINT64_MAX;
      for (size_t q = 1; q < queued_.size(); ++q) {
        if (heads_[queued_[q]].ts < heads_[queued_[best]].ts) {
          bound = heads_[queued_[best]].ts;
          best = q;
        } else {
          bound = std::min(bound, heads_[queued_[q]].ts);
        }
      }
      const size_t ring = queued_[best];
      for (;;) {
        const HeadRecord& head = heads_[ring];
        const int rc = callback_(ctx_, head.data, head.size);
        rings_[ring]->Advance();  // after: advancing may publish, and the producer may then reuse the bytes
        if (rc < 0) {
          result = rc;
          break;
        }
        ++delivered;
        const Refill r = Queue(ring, cut, &past_cut);
        if (r != Refill::kQueued) {
          busy = r == Refill::kBusy;
          queued_[best] = queued_.back();
          queued_.pop_back();
          break;
        }
        if (heads_[ring].ts > bound) break;
      }
    }
    again = past_cut && !busy;
  }
  for (auto& r : rings_) r->Publish();
  return result < 0 ? result : delivered;
}

}  // namespace sonde::bpf
