#include "agent/bpf/uprobe_multi.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>

namespace sonde::bpf {
namespace {

// union bpf_attr as BPF_LINK_CREATE reads it for a uprobe_multi link (uapi
// linux/bpf.h, 6.6): the command's fields, nothing after them.
struct LinkCreateUprobeMulti {
  uint32_t prog_fd;
  uint32_t target_fd;
  uint32_t attach_type;
  uint32_t flags;
  uint64_t path;             // const char*
  uint64_t offsets;          // const uint64_t[cnt]
  uint64_t ref_ctr_offsets;  // const uint64_t[cnt] or 0
  uint64_t cookies;          // const uint64_t[cnt] or 0
  uint32_t cnt;
  uint32_t uprobe_flags;
  uint32_t pid;
};
static_assert(offsetof(LinkCreateUprobeMulti, path) == 16 && offsetof(LinkCreateUprobeMulti, pid) == 56,
              "layout of bpf_attr.link_create.uprobe_multi");

}  // namespace

UniqueFd CreateUprobeMultiLink(int prog_fd, const std::string& path, uint64_t offset, bool return_probe,
                               uint32_t pid) {
  LinkCreateUprobeMulti attr{};
  attr.prog_fd = static_cast<uint32_t>(prog_fd);
  attr.attach_type = kBpfTraceUprobeMulti;
  attr.path = reinterpret_cast<uint64_t>(path.c_str());
  attr.offsets = reinterpret_cast<uint64_t>(&offset);
  attr.cnt = 1;
  attr.uprobe_flags = return_probe ? kBpfUprobeMultiReturn : 0;
  attr.pid = pid;
  return UniqueFd(static_cast<int>(syscall(SYS_bpf, BPF_LINK_CREATE, &attr, sizeof(attr))));
}

}  // namespace sonde::bpf
