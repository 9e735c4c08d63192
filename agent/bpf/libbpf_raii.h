#pragma once
// RAII owners for libbpf objects. Each owns exactly one kernel resource and
// releases it in its destructor.
#include <bpf/libbpf.h>

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

// Owns a bpftool-generated skeleton. `Ops` names the skeleton's generated
// functions, e.g. SkeletonOps<socket_trace, socket_trace__open, ...>.
template <typename T, T* (*OpenFn)(), int (*LoadFn)(T*), int (*AttachFn)(T*), void (*DestroyFn)(T*)>
class Skeleton {
 public:
  static absl::StatusOr<Skeleton> Open() {
    T* raw = OpenFn();
    if (raw == nullptr) {
      return absl::InternalError(absl::StrCat("opening BPF skeleton failed: errno ", errno));
    }
    return Skeleton(raw);
  }
  absl::Status Load() {
    const int err = LoadFn(skel_.get());
    if (err != 0) {
      return absl::InternalError(absl::StrCat("loading BPF programs failed (", err,
                                              "): see libbpf messages above"));
    }
    return absl::OkStatus();
  }
  absl::Status Attach() {
    const int err = AttachFn(skel_.get());
    if (err != 0) return absl::InternalError(absl::StrCat("attaching BPF programs failed (", err, ")"));
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
