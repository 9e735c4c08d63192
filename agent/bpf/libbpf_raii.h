#pragma once
// RAII owners for libbpf objects and the kernel handles around them. Each
// owns exactly one kernel resource and releases it in its destructor, so a
// loader that fails half-way leaks nothing.
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace sonde::bpf {

struct BpfLinkDeleter {
  void operator()(bpf_link* link) const { bpf_link__destroy(link); }
};
using BpfLink = std::unique_ptr<bpf_link, BpfLinkDeleter>;

struct RingBufferDeleter {
  void operator()(ring_buffer* rb) const { ring_buffer__free(rb); }
};
using RingBuffer = std::unique_ptr<ring_buffer, RingBufferDeleter>;

// A file descriptor libbpf does not own yet, e.g. a perf event before a
// program is attached to it.
class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  ~UniqueFd() { Close(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      Close();
      fd_ = other.release();
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }

 private:
  void Close() {
    if (fd_ >= 0) ::close(fd_);
  }
  int fd_;
};

// Attaches one program the way its section name says (tp_btf/..., kprobe/...),
// for loaders that choose which programs to attach and when.
inline absl::StatusOr<BpfLink> AttachProgram(bpf_program* prog) {
  BpfLink link(bpf_program__attach(prog));
  if (!link) return absl::ErrnoToStatus(errno, absl::StrCat("attaching ", bpf_program__name(prog)));
  return link;
}

// Attaches a perf_event program to an open perf event. On success the link
// owns the event (libbpf closes it on detach); on failure `event` closes it.
inline absl::StatusOr<BpfLink> AttachPerfEvent(bpf_program* prog, UniqueFd event) {
  BpfLink link(bpf_program__attach_perf_event(prog, event.get()));
  if (!link) {
    return absl::ErrnoToStatus(errno, absl::StrCat("attaching ", bpf_program__name(prog), " to a perf event"));
  }
  event.release();
  return link;
}

// Owns a bpftool-generated skeleton, given its generated functions, e.g.
//   using SocketTraceSkeleton = Skeleton<socket_trace, socket_trace__open, socket_trace__load,
//                                        socket_trace__attach, socket_trace__destroy>;
// Between Open() and Load() the caller sizes maps, sets .rodata and picks the
// programs to load; after Load() it either calls Attach() (every program with
// an auto-attachable section) or attaches programs one by one (AttachProgram,
// AttachPerfEvent).
template <typename T, T* (*OpenFn)(), int (*LoadFn)(T*), int (*AttachFn)(T*), void (*DestroyFn)(T*)>
class Skeleton {
 public:
  static absl::StatusOr<Skeleton> Open() {
    T* raw = OpenFn();
    if (raw == nullptr) return absl::ErrnoToStatus(errno, "opening BPF skeleton");
    return Skeleton(raw);
  }
  absl::Status Load() {
    const int err = LoadFn(skel_.get());
    if (err != 0) return absl::ErrnoToStatus(-err, "loading BPF programs (see libbpf messages above)");
    return absl::OkStatus();
  }
  absl::Status Attach() {
    const int err = AttachFn(skel_.get());
    if (err != 0) return absl::ErrnoToStatus(-err, "attaching BPF programs");
    return absl::OkStatus();
  }
  T* get() const { return skel_.get(); }
  T* operator->() const { return skel_.get(); }

 private:
  struct Deleter {
    void operator()(T* s) const { DestroyFn(s); }
  };
  explicit Skeleton(T* raw) : skel_(raw) {}
  std::unique_ptr<T, Deleter> skel_;
};

}  // namespace sonde::bpf
