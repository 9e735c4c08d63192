/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Socket capture: every read/write-family syscall on a TCP/UDP socket becomes
 * a data event with timing, identity, tuple, TCP sequence and a payload
 * prefix; connect/accept/close and TCP state changes become connection
 * events.
 *
 * One BTF tracepoint, sys_exit, dispatches on the syscall number.
 * Per-syscall classic tracepoints would build a perf record on every traced
 * call (28 of them cost ~16 % of a proxied nginx's throughput on the
 * development VM; the BTF program that does nothing costs ~3 %). So:
 *  - a syscall we do not trace returns after one switch;
 *  - only close() is handled at entry, by its own classic tracepoint (rare,
 *    and no program runs at the entry of any other syscall); every other
 *    call is filtered and read at exit, with its arguments read back from
 *    pt_regs (no stash);
 *  - per-socket state (role, cached tuple, "not wanted") makes a socket that
 *    is not inet, filtered out by port or ignored by user space (not L7, TLS
 *    ciphertext) cost one lookup per call;
 * and events are submitted without waking user space (it drains on a timer;
 * a wake-up is forced only past a fill threshold).
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "lib/sock.bpf.h"
#include "lib/sock_btf.bpf.h"
#include "lib/syscall_nr.bpf.h"
#include "sonde/abi.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by user space before load. */
const volatile __u32 capture_bytes = SONDE_PAYLOAD_DEFAULT; /* <= SONDE_PAYLOAD_MAX */
const volatile __u64 wakeup_threshold_bytes = 1 << 20;

#define SONDE_EINPROGRESS 115
#define SONDE_EAGAIN 11

/* Per-CPU scratch: the event under construction. Twice the max payload so
 * that (masked offset + bounded length) always stays inside for the verifier. */
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wgnu-variable-sized-type-not-at-end"
struct scratch_event {
  struct sonde_data_event ev; /* ev.payload[] aliases payload[] below */
  __u8 payload[2 * SONDE_PAYLOAD_MAX];
};
#pragma clang diagnostic pop

/* One ring buffer per CPU, merged by time in user space (agent/bpf/ring_set.h):
 * with one shared ring every reserve took the same spinlock and moved the
 * producer position and record headers between the producing CPUs' caches. */
struct cpu_ring {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 1 << 20); /* the template: user space creates the rings */
};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
  __uint(max_entries, 1); /* set to the number of possible CPUs by user space */
  __type(key, __u32);
  __array(values, struct cpu_ring);
} rings SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 262144);
  __type(key, __u64); /* socket inode */
  __type(value, struct sonde_sock_state);
} sock_states SEC(".maps");

/* Array (not per-CPU: per-CPU values are capped at 32 KiB) indexed by CPU. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1); /* set to the number of possible CPUs by user space */
  __type(key, __u32);
  __type(value, struct scratch_event);
} scratch SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, SONDE_DROP_REASON_COUNT);
  __type(key, __u32);
  __type(value, __u64);
} drops SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, SONDE_STAT_COUNT);
  __type(key, __u32);
  __type(value, __u64);
} stats SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct sonde_filter_config);
} filter_config SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, __u32); /* tgid */
  __type(value, __u8); /* enum sonde_filter_action */
} pid_filter SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, __u16); /* port, host order */
  __type(value, __u8);
} port_filter SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, __u64); /* cgroup v2 id */
  __type(value, __u8);
} cgroup_filter SEC(".maps");

static __always_inline void count(void *map, __u32 index) {
  __u64 *value = bpf_map_lookup_elem(map, &index);
  if (value) *value += 1;
}
#define count_drop(reason) count(&drops, reason)
#define count_stat(stat) count(&stats, stat)

static __always_inline struct sonde_filter_config *filter_cfg(void) {
  __u32 zero = 0;
  return bpf_map_lookup_elem(&filter_config, &zero);
}

/* Process-level filter, applied at syscall entry before any work. */
static __always_inline bool process_traced(__u32 tgid) {
  struct sonde_filter_config *cfg = filter_cfg();
  if (!cfg) return false;
  if (tgid == cfg->agent_tgid) return false;
  /* Map lookups only when the maps hold entries: this runs on every traced syscall. */
  if (cfg->mode & SONDE_FILTER_HAS_PID_ENTRIES) {
    __u8 *action = bpf_map_lookup_elem(&pid_filter, &tgid);
    if (action && *action == SONDE_FILTER_EXCLUDE) goto filtered;
    if ((cfg->mode & SONDE_FILTER_PIDS_INCLUDE_ONLY) && !(action && *action == SONDE_FILTER_INCLUDE))
      goto filtered;
  }
  if (cfg->mode & SONDE_FILTER_HAS_CGROUP_ENTRIES) {
    __u64 cgid = bpf_get_current_cgroup_id();
    __u8 *cg_action = bpf_map_lookup_elem(&cgroup_filter, &cgid);
    if (cg_action && *cg_action == SONDE_FILTER_EXCLUDE) goto filtered;
    if ((cfg->mode & SONDE_FILTER_CGROUPS_INCLUDE_ONLY) &&
        !(cg_action && *cg_action == SONDE_FILTER_INCLUDE))
      goto filtered;
  }
  return true;
filtered:
  count_stat(SONDE_STAT_FILTERED);
  return false;
}

/* Port-level filter, decided once per socket and filter generation. */
static __always_inline bool ports_traced(const struct sonde_tuple *t, struct sonde_filter_config *cfg) {
  __u16 sport = t->sport, dport = t->dport;
  __u8 *a = bpf_map_lookup_elem(&port_filter, &sport);
  __u8 *b = bpf_map_lookup_elem(&port_filter, &dport);
  if ((a && *a == SONDE_FILTER_EXCLUDE) || (b && *b == SONDE_FILTER_EXCLUDE)) return false;
  if ((cfg->mode & SONDE_FILTER_PORTS_INCLUDE_ONLY) &&
      !((a && *a == SONDE_FILTER_INCLUDE) || (b && *b == SONDE_FILTER_INCLUDE)))
    return false;
  return true;
}

/* The state of socket `inode` (created when missing) with a current port
 * filter decision, or NULL when the socket is not wanted. `role` (when not
 * UNKNOWN) is recorded: connect/accept know it. `*tuple` receives the tuple. */
static __always_inline struct sonde_sock_state *wanted_socket(struct sock *sk, __u64 inode, __u8 role,
                                                              struct sonde_tuple *tuple) {
  struct sonde_filter_config *cfg = filter_cfg();
  if (!cfg) return NULL;
  struct sonde_sock_state *st = bpf_map_lookup_elem(&sock_states, &inode);
  if (st) {
    if (role != SONDE_ROLE_UNKNOWN) st->role = role;
    if (st->flags & (SONDE_SOCK_NOT_INET | SONDE_SOCK_IGNORED)) {
      if (st->flags & SONDE_SOCK_IGNORED) count_stat(SONDE_STAT_IGNORED);
      return NULL;
    }
    if (st->filter_gen == cfg->generation) {
      if (st->flags & SONDE_SOCK_FILTERED) {
        count_stat(SONDE_STAT_FILTERED);
        return NULL;
      }
      if (st->flags & SONDE_SOCK_TUPLE_CACHED) {
        *tuple = st->tuple;
        return st;
      }
    }
  }
  struct sonde_sock_state fresh = {};
  if (sonde_fill_tuple(sk, tuple) != 0) {
    fresh.flags = SONDE_SOCK_NOT_INET;
    bpf_map_update_elem(&sock_states, &inode, &fresh, BPF_ANY);
    return NULL;
  }
  const bool traced = ports_traced(tuple, cfg);
  if (st) {
    st->filter_gen = cfg->generation;
    st->flags = (st->flags & SONDE_SOCK_TLS) | (traced ? 0 : SONDE_SOCK_FILTERED);
  } else {
    fresh.role = role;
    fresh.filter_gen = cfg->generation;
    fresh.flags = traced ? 0 : SONDE_SOCK_FILTERED;
    if (bpf_map_update_elem(&sock_states, &inode, &fresh, BPF_ANY) != 0) count_drop(SONDE_DROP_CONN_MAP_FULL);
    st = bpf_map_lookup_elem(&sock_states, &inode);
  }
  if (!traced) {
    count_stat(SONDE_STAT_FILTERED);
    return NULL;
  }
  if (!st) return NULL;
  /* A TCP socket with a remote port is connected: its tuple no longer changes.
   * UDP sockets may send anywhere, so theirs is read on every call. */
  if (tuple->l4_protocol == SONDE_IPPROTO_TCP && tuple->dport != 0 && tuple->sport != 0) {
    st->tuple = *tuple;
    st->flags |= SONDE_SOCK_TUPLE_CACHED;
  }
  return st;
}

/* Entry times are not taken (see on_sys_exit): ts_enter_ns = ts_exit_ns. */
static __always_inline void fill_header(struct sonde_event_header *h, __u32 type, __u64 pid_tgid) {
  h->type = type;
  h->ts_exit_ns = bpf_ktime_get_ns();
  h->ts_enter_ns = h->ts_exit_ns;
  h->pid = pid_tgid >> 32;
  h->tid = (__u32)pid_tgid;
  bpf_get_current_comm(&h->comm, sizeof(h->comm));
}

/* A data event's header: the thread name only on the socket's first event
 * (see sonde_event_header.comm). The scratch record is reused: clear it. */
static __always_inline void fill_data_header(struct sonde_event_header *h, struct sonde_sock_state *st,
                                             __u64 pid_tgid) {
  if (!(st->flags & SONDE_SOCK_COMM_SENT)) {
    fill_header(h, SONDE_EVENT_DATA, pid_tgid);
    st->flags |= SONDE_SOCK_COMM_SENT;
    return;
  }
  h->type = SONDE_EVENT_DATA;
  h->ts_exit_ns = bpf_ktime_get_ns();
  h->ts_enter_ns = h->ts_exit_ns;
  h->pid = pid_tgid >> 32;
  h->tid = (__u32)pid_tgid;
  __builtin_memset(h->comm, 0, sizeof(h->comm));
}

/* This CPU's ring buffer; NULL only for a CPU user space did not know of
 * (hot-plugged after start): its events are counted as lost. */
static __always_inline void *cpu_ring(void) {
  __u32 cpu = bpf_get_smp_processor_id();
  void *ring = bpf_map_lookup_elem(&rings, &cpu);
  if (!ring) count_drop(SONDE_DROP_RINGBUF_FULL);
  return ring;
}

/* Wake the reader only when the buffer is filling up. */
static __always_inline __u64 wakeup_flags(void *ring) {
  if (bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA) >= wakeup_threshold_bytes) {
    count_stat(SONDE_STAT_WAKEUPS);
    return BPF_RB_FORCE_WAKEUP;
  }
  return BPF_RB_NO_WAKEUP;
}

static __always_inline void submit(void *data, __u64 size) {
  void *ring = cpu_ring();
  if (!ring) return;
  if (bpf_ringbuf_output(ring, data, size, wakeup_flags(ring)) != 0) {
    count_drop(SONDE_DROP_RINGBUF_FULL);
    return;
  }
  count_stat(SONDE_STAT_EVENTS);
}

/* ------------------------------------------------------------- payloads -- */

static __always_inline __u8 direction_of(__u8 syscall) {
  switch (syscall) {
    case SONDE_SYS_READ:
    case SONDE_SYS_READV:
    case SONDE_SYS_RECVFROM:
    case SONDE_SYS_RECVMSG:
    case SONDE_SYS_RECVMMSG:
      return SONDE_DIR_INGRESS;
    default:
      return SONDE_DIR_EGRESS;
  }
}

/* Copies up to `len` user bytes to payload[off..]; returns bytes copied. */
static __always_inline __u32 copy_user(struct scratch_event *s, __u32 off, __u64 src, __u64 len) {
  __u32 limit = capture_bytes;
  if (limit > SONDE_PAYLOAD_MAX) limit = SONDE_PAYLOAD_MAX;
  if (off >= limit) return 0;
  __u64 room = limit - off;
  if (len > room) len = room;
  off &= SONDE_PAYLOAD_MAX - 1;
  if (len > SONDE_PAYLOAD_MAX) len = SONDE_PAYLOAD_MAX;
  if (len == 0) return 0;
  if (bpf_probe_read_user(&s->payload[off], len, (const void *)src) != 0) {
    count_drop(SONDE_DROP_PAYLOAD_READ);
    return 0;
  }
  return len;
}

/* State of one iovec walk; bpf_loop verifies the callback once instead of
 * unrolling SONDE_MAX_IOVECS copies per call site. */
struct iovec_walk {
  __u64 iov_ptr;
  __u64 iovcnt;
  __u64 remaining; /* bytes the call moved that are not yet attributed */
  __u32 copied;
};

static long copy_one_iovec(__u32 i, void *data) {
  struct iovec_walk *w = data;
  if (i >= w->iovcnt || w->remaining == 0) return 1;
  __u32 cpu = bpf_get_smp_processor_id();
  struct scratch_event *s = bpf_map_lookup_elem(&scratch, &cpu);
  if (!s) return 1;
  struct iovec iov = {};
  if (bpf_probe_read_user(&iov, sizeof(iov), (const void *)(w->iov_ptr + i * sizeof(iov))) != 0)
    return 1;
  __u64 take = iov.iov_len < w->remaining ? iov.iov_len : w->remaining;
  __u32 got = copy_user(s, w->copied, (__u64)iov.iov_base, take);
  w->copied += got;
  w->remaining -= take;
  return got < take ? 1 : 0; /* stop once the capture limit is reached */
}

/* Copies the first `total` bytes spread over an iovec array. */
static __always_inline __u32 copy_iovecs(__u64 iov_ptr, __u64 iovcnt, __u64 total) {
  struct iovec_walk w = {.iov_ptr = iov_ptr, .iovcnt = iovcnt, .remaining = total, .copied = 0};
  bpf_loop(SONDE_MAX_IOVECS, copy_one_iovec, &w, 0);
  return w.copied;
}

/* iovec pointer/count and address (msg_name) of a user msghdr. */
static __always_inline int read_msghdr(__u64 msg_ptr, __u64 *iov, __u64 *iovcnt, __u64 *name) {
  struct user_msghdr msg = {};
  if (bpf_probe_read_user(&msg, sizeof(msg), (const void *)msg_ptr) != 0) return -1;
  *iov = (__u64)msg.msg_iov;
  *iovcnt = msg.msg_iovlen;
  *name = (__u64)msg.msg_name;
  return 0;
}

/* A UDP datagram's peer from the sockaddr its call passed (sendto, msg_name)
 * or had filled in (recvfrom, recvmsg: read at exit): an unconnected socket
 * (a DNS server, a resolver) has no peer of its own. Replaces the tuple's
 * remote end; without an address (connected socket) the socket's stays. */
static __always_inline void read_peer(struct sonde_data_event *ev, __u64 addr) {
  if (!addr) return;
  struct sockaddr_in6 sa = {};
  if (bpf_probe_read_user(&sa, sizeof(struct sockaddr_in), (const void *)addr) != 0) return;
  if (sa.sin6_family == SONDE_AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)&sa;
    __builtin_memset(ev->tuple.daddr, 0, sizeof(ev->tuple.daddr));
    __builtin_memcpy(ev->tuple.daddr, &in->sin_addr.s_addr, 4);
    ev->tuple.dport = bpf_ntohs(in->sin_port);
  } else if (sa.sin6_family == SONDE_AF_INET6) {
    if (bpf_probe_read_user(&sa, sizeof(sa), (const void *)addr) != 0) return;
    __builtin_memcpy(ev->tuple.daddr, &sa.sin6_addr, 16);
    ev->tuple.dport = bpf_ntohs(sa.sin6_port);
  } else {
    return;
  }
  ev->flags |= SONDE_DATA_PEER_ADDR;
}

/* Reserve-and-fill for one contiguous user buffer: the record is a size
 * class (the verifier needs a constant reservation), the payload is read
 * into it directly, and hdr.size tells user space the bytes that count. */

#define SONDE_SUBMIT_PLAIN(N)                                                                  \
  static __always_inline int submit_plain_##N(const struct sonde_data_event *ev, __u64 src, \
                                              __u32 want) {                                 \
    void *ring = cpu_ring();                                                                \
    if (!ring) return 0;                                                                    \
    struct sonde_data_event *rec = bpf_ringbuf_reserve(ring, sizeof(*rec) + (N), 0);        \
    if (!rec) {                                                                             \
      count_drop(SONDE_DROP_RINGBUF_FULL);                                                  \
      return 0;                                                                             \
    }                                                                                       \
    __builtin_memcpy(rec, ev, sizeof(*rec));                                                \
    __u64 n = want;                                                                         \
    asm volatile("" : "+r"(n)); /* keep the clamp: the verifier needs it, clang proves it */ \
    if (n > (N)) n = (N);                                                                   \
    asm volatile("" : "+r"(n)); /* and use the clamped register itself */                   \
    if (n != 0 && bpf_probe_read_user(rec->payload, n, (const void *)src) != 0) {           \
      count_drop(SONDE_DROP_PAYLOAD_READ);                                                  \
      n = 0;                                                                                \
    }                                                                                       \
    rec->payload_len = (__u32)n;                                                            \
    if (n < rec->bytes) rec->flags |= SONDE_DATA_TRUNCATED;                                 \
    rec->hdr.size = sizeof(*rec) + n;                                                       \
    bpf_ringbuf_submit(rec, wakeup_flags(ring));                                            \
    count_stat(SONDE_STAT_EVENTS);                                                          \
    return 0;                                                                               \
  }

SONDE_SUBMIT_PLAIN(256)
SONDE_SUBMIT_PLAIN(1024)
SONDE_SUBMIT_PLAIN(4096)
SONDE_SUBMIT_PLAIN(16384)

/* A few iovecs holding a small message (nginx's writev of headers + body):
 * the same direct copy. Each piece lands at a masked offset, so the record
 * is reserved at twice the class for the verifier's bounds; larger or more
 * scattered calls take the scratch path below. */
#define SONDE_IOV_SMALL 512
#define SONDE_IOV_DIRECT_MAX 4

static __always_inline int submit_iovecs_small(const struct sonde_data_event *ev, __u64 iov_ptr, __u64 iovcnt,
                                               __u32 want) {
  void *ring = cpu_ring();
  if (!ring) return 0;
  struct sonde_data_event *rec = bpf_ringbuf_reserve(ring, sizeof(*rec) + 2 * SONDE_IOV_SMALL, 0);
  if (!rec) {
    count_drop(SONDE_DROP_RINGBUF_FULL);
    return 0;
  }
  __builtin_memcpy(rec, ev, sizeof(*rec));
  __u64 copied = 0, remaining = want;
#pragma unroll
  for (int i = 0; i < SONDE_IOV_DIRECT_MAX; i++) {
    if (i >= iovcnt || remaining == 0) break;
    struct iovec v = {};
    if (bpf_probe_read_user(&v, sizeof(v), (const void *)(iov_ptr + i * sizeof(v))) != 0) break;
    __u64 take = v.iov_len < remaining ? v.iov_len : remaining;
    asm volatile("" : "+r"(take));
    if (take > SONDE_IOV_SMALL) take = SONDE_IOV_SMALL;
    asm volatile("" : "+r"(take));
    __u64 off = copied & (SONDE_IOV_SMALL - 1); /* copied < want <= SONDE_IOV_SMALL here */
    asm volatile("" : "+r"(off));
    if (off >= SONDE_IOV_SMALL) break;
    if (take != 0 && bpf_probe_read_user(&rec->payload[off], take, (const void *)v.iov_base) != 0) {
      count_drop(SONDE_DROP_PAYLOAD_READ);
      break;
    }
    copied += take;
    remaining -= take;
  }
  rec->payload_len = (__u32)copied;
  if (copied < rec->bytes) rec->flags |= SONDE_DATA_TRUNCATED;
  rec->hdr.size = sizeof(*rec) + (__u32)copied;
  bpf_ringbuf_submit(rec, wakeup_flags(ring));
  count_stat(SONDE_STAT_EVENTS);
  return 0;
}

/* TLS plaintext (uprobes on OpenSSL) shares the maps and records above. */
#include "lib/tls.bpf.h"

/* ------------------------------------------------------------ data exit -- */

/* The payload of an event whose bytes sit in an iovec array: small messages
 * straight into the ring-buffer record, others through the scratch copy. */
static __always_inline int submit_iovecs(struct scratch_event *s, __u64 iov, __u64 iovcnt) {
  struct sonde_data_event *ev = &s->ev;
  __u32 limit = capture_bytes;
  if (limit > SONDE_PAYLOAD_MAX) limit = SONDE_PAYLOAD_MAX;
  const __u32 want = ev->bytes < limit ? (__u32)ev->bytes : limit;
  if (iov && iovcnt <= SONDE_IOV_DIRECT_MAX && want <= SONDE_IOV_SMALL)
    return submit_iovecs_small(ev, iov, iovcnt, want);
  __u32 captured = 0;
  if (iov) captured = copy_iovecs(iov, iovcnt, ev->bytes);
  if (captured < ev->bytes) ev->flags |= SONDE_DATA_TRUNCATED;
  ev->payload_len = captured;
  __u64 size = sizeof(struct sonde_data_event) + captured;
  if (size > sizeof(struct sonde_data_event) + SONDE_PAYLOAD_MAX)
    size = sizeof(struct sonde_data_event) + SONDE_PAYLOAD_MAX;
  ev->hdr.size = size;
  submit(s, size);
  return 0;
}

/* sendmmsg/recvmmsg: every message (up to SONDE_MAX_MMSG) is an event of its
 * own with its length, payload and, on UDP, its peer (glibc's resolver sends
 * the A and AAAA queries in one sendmmsg). */
struct mmsg_walk {
  __u64 vec;      /* struct mmsghdr array */
  __u64 count;    /* messages the call moved */
  struct sonde_tuple socket_tuple;
  __u8 udp;
};

static long emit_one_mmsg(__u32 i, void *data) {
  struct mmsg_walk *w = data;
  if (i >= w->count) return 1;
  __u32 cpu = bpf_get_smp_processor_id();
  struct scratch_event *s = bpf_map_lookup_elem(&scratch, &cpu);
  if (!s) return 1;
  struct mmsghdr m = {};
  if (bpf_probe_read_user(&m, sizeof(m), (const void *)(w->vec + (__u64)i * sizeof(m))) != 0) return 1;
  if (m.msg_len == 0) return 0;
  struct sonde_data_event *ev = &s->ev;
  ev->bytes = m.msg_len;
  ev->flags = SONDE_DATA_MULTI_MSG;
  ev->tcp_seq = 0;
  ev->tuple = w->socket_tuple;
  if (w->udp) read_peer(ev, (__u64)m.msg_hdr.msg_name);
  submit_iovecs(s, (__u64)m.msg_hdr.msg_iov, m.msg_hdr.msg_iovlen);
  return 0;
}

static __always_inline int emit_mmsg(struct scratch_event *s, __u64 vec, long ret) {
  count_stat(SONDE_STAT_MMSG_CALLS);
  struct mmsg_walk w = {.vec = vec, .count = (__u64)ret, .udp = s->ev.tuple.l4_protocol == SONDE_IPPROTO_UDP};
  w.socket_tuple = s->ev.tuple;
  if (ret > SONDE_MAX_MMSG) { /* the rest is not captured: counted as lost events */
    __u32 reason = SONDE_DROP_MMSG_EXCESS;
    __u64 *excess = bpf_map_lookup_elem(&drops, &reason);
    if (excess) *excess += (__u64)ret - SONDE_MAX_MMSG;
  }
  bpf_loop(SONDE_MAX_MMSG, emit_one_mmsg, &w, 0);
  return 0;
}

static __always_inline int emit_data(__u8 syscall, __s32 fd, __u64 buf, __u64 count_arg,
                                     __u64 addr_arg, long ret) {
  if (ret <= 0) return 0;
  __u64 inode = 0;
  struct sock *sk = sonde_sock_from_fd_btf(fd, &inode);
  if (!sk) return 0;
  if (tls_note_socket_call(fd, inode, syscall, buf)) return 0; /* ciphertext of an SSL call */

  __u32 cpu = bpf_get_smp_processor_id();
  struct scratch_event *s = bpf_map_lookup_elem(&scratch, &cpu);
  if (!s) {
    count_drop(SONDE_DROP_SCRATCH);
    return 0;
  }
  struct sonde_data_event *ev = &s->ev;
  struct sonde_sock_state *st = wanted_socket(sk, inode, SONDE_ROLE_UNKNOWN, &ev->tuple);
  if (!st) return 0;
  if (st->flags & SONDE_SOCK_TLS) { /* ciphertext (handshake, alerts): the uprobes give the plaintext */
    count_stat(SONDE_STAT_TLS_CIPHERTEXT);
    return 0;
  }

  __u64 pid_tgid = bpf_get_current_pid_tgid();
  fill_data_header(&ev->hdr, st, pid_tgid);
  ev->sock_id = inode;
  ev->fd = fd;
  ev->syscall = syscall;
  ev->direction = direction_of(syscall);
  ev->flags = 0;
  ev->bytes = (__u64)ret;
  ev->role = st->role;

  /* Resolve where the bytes are, then copy them at one call site. */
  __u64 plain_buf = 0, iov = 0, iovcnt = 0, peer_addr = 0;
  switch (syscall) {
    case SONDE_SYS_READ:
    case SONDE_SYS_WRITE:
      plain_buf = buf;
      break;
    case SONDE_SYS_SENDTO:
    case SONDE_SYS_RECVFROM:
      plain_buf = buf;
      peer_addr = addr_arg;
      break;
    case SONDE_SYS_READV:
    case SONDE_SYS_WRITEV:
      iov = buf;
      iovcnt = count_arg;
      break;
    case SONDE_SYS_SENDMSG:
    case SONDE_SYS_RECVMSG:
      if (read_msghdr(buf, &iov, &iovcnt, &peer_addr) != 0) iov = 0;
      break;
    case SONDE_SYS_SENDMMSG:
    case SONDE_SYS_RECVMMSG:
      return emit_mmsg(s, buf, ret); /* ret is a message count */
    case SONDE_SYS_SENDFILE:
      count_stat(SONDE_STAT_SENDFILE_CALLS);
      ev->flags |= SONDE_DATA_NO_PAYLOAD;
      break;
    default:
      return 0;
  }
  if (ev->tuple.l4_protocol == SONDE_IPPROTO_TCP) {
    /* The call has already advanced write_seq/copied_seq by ret bytes. */
    ev->tcp_seq = sonde_tcp_seq_after_btf(sk, ev->direction) - (__u32)ret;
    ev->flags |= SONDE_DATA_SEQ_VALID;
  } else {
    ev->tcp_seq = 0;
    if (ev->tuple.l4_protocol == SONDE_IPPROTO_UDP) read_peer(ev, peer_addr);
  }

  /* One contiguous buffer (read/write/sendto/recvfrom, most calls): copied
   * straight into a ring-buffer record of the next size class, no scratch
   * copy. */
  __u32 limit = capture_bytes;
  if (limit > SONDE_PAYLOAD_MAX) limit = SONDE_PAYLOAD_MAX;
  const __u32 want = ev->bytes < limit ? (__u32)ev->bytes : limit;
  if (plain_buf) {
    if (want <= 256) return submit_plain_256(ev, plain_buf, want);
    if (want <= 1024) return submit_plain_1024(ev, plain_buf, want);
    if (want <= 4096) return submit_plain_4096(ev, plain_buf, want);
    return submit_plain_16384(ev, plain_buf, want);
  }
  return submit_iovecs(s, iov, iovcnt);
}

/* ---------------------------------------------------------- connections -- */

static __always_inline void emit_conn(__u32 type, struct sock *sk, __u64 inode, const struct sonde_tuple *tuple,
                                      __s32 fd, __s32 retval, __u8 role, __u8 syscall,
                                      __u64 pid_tgid) {
  struct sonde_conn_event ev = {};
  ev.tuple = *tuple;
  fill_header(&ev.hdr, type, pid_tgid);
  ev.hdr.size = sizeof(ev);
  ev.sock_id = inode;
  ev.fd = fd;
  ev.retval = retval;
  ev.role = role;
  ev.syscall = syscall;
  if (ev.tuple.l4_protocol == SONDE_IPPROTO_TCP) {
    struct tcp_sock *tp = (struct tcp_sock *)sk;
    ev.bytes_sent = BPF_CORE_READ(tp, bytes_sent);
    ev.bytes_received = BPF_CORE_READ(tp, bytes_received);
  }
  submit(&ev, sizeof(ev));
}

static __always_inline int exit_connection(__u8 syscall, __s32 fd_arg, long ret) {
  __u8 role;
  __s32 fd;
  if (syscall == SONDE_SYS_CONNECT) {
    /* Non-blocking connects return -EINPROGRESS and complete later. */
    role = SONDE_ROLE_CLIENT;
    fd = fd_arg;
  } else {
    if (ret < 0) return 0;
    role = SONDE_ROLE_SERVER;
    fd = (__s32)ret;
  }
  __u64 inode = 0;
  struct sock *sk = sonde_sock_from_fd_btf(fd, &inode);
  if (!sk) return 0;
  const bool opened = syscall != SONDE_SYS_CONNECT || ret == 0 || ret == -SONDE_EINPROGRESS;
  struct sonde_tuple tuple = {};
  struct sonde_sock_state *st = wanted_socket(sk, inode, opened ? role : SONDE_ROLE_UNKNOWN, &tuple);
  if (!st) return 0;
  st->flags |= SONDE_SOCK_COMM_SENT; /* the connection event names the thread */
  emit_conn(SONDE_EVENT_CONN_OPEN, sk, inode, &tuple, fd, (__s32)ret, role, syscall,
            bpf_get_current_pid_tgid());
  return 0;
}

/* close() is reported at entry: the fd no longer resolves at exit. Only
 * sockets the agent has state for (seen in connect/accept or a data call). */
static __always_inline int enter_close(__s32 fd, __u64 pid_tgid) {
  __u64 inode = 0;
  struct sock *sk = sonde_sock_from_fd_btf(fd, &inode);
  if (!sk) return 0;
  struct sonde_sock_state *st = bpf_map_lookup_elem(&sock_states, &inode);
  if (!st) return 0;
  const __u8 role = st->role;
  const bool wanted = !(st->flags & (SONDE_SOCK_NOT_INET | SONDE_SOCK_FILTERED | SONDE_SOCK_IGNORED));
  bpf_map_delete_elem(&sock_states, &inode);
  if (!wanted) return 0;
  struct sonde_tuple tuple = {};
  if (sonde_fill_tuple(sk, &tuple) != 0) return 0;
  emit_conn(SONDE_EVENT_CONN_CLOSE, sk, inode, &tuple, fd, 0, role, SONDE_SYS_CLOSE,
            pid_tgid);
  return 0;
}

/* -------------------------------------------------------------- dispatch -- */

/* Our syscall code for a kernel syscall number; UNKNOWN for the untraced. */
static __always_inline __u8 traced_syscall(long nr) {
  switch (nr) {
    case SONDE_NR_read: return SONDE_SYS_READ;
    case SONDE_NR_write: return SONDE_SYS_WRITE;
    case SONDE_NR_readv: return SONDE_SYS_READV;
    case SONDE_NR_writev: return SONDE_SYS_WRITEV;
    case SONDE_NR_sendto: return SONDE_SYS_SENDTO;
    case SONDE_NR_recvfrom: return SONDE_SYS_RECVFROM;
    case SONDE_NR_sendmsg: return SONDE_SYS_SENDMSG;
    case SONDE_NR_recvmsg: return SONDE_SYS_RECVMSG;
    case SONDE_NR_sendmmsg: return SONDE_SYS_SENDMMSG;
    case SONDE_NR_recvmmsg: return SONDE_SYS_RECVMMSG;
    case SONDE_NR_sendfile: return SONDE_SYS_SENDFILE;
    case SONDE_NR_connect: return SONDE_SYS_CONNECT;
    case SONDE_NR_accept: return SONDE_SYS_ACCEPT;
    case SONDE_NR_accept4: return SONDE_SYS_ACCEPT4;
    case SONDE_NR_close: return SONDE_SYS_CLOSE;
    default: return SONDE_SYS_UNKNOWN;
  }
}

/* Only close() needs entry: its fd no longer resolves at exit. The classic
 * per-syscall tracepoint runs a program for close() alone; a BTF sys_enter
 * program would run for every syscall of every process (~10-30 ns each,
 * ~30 syscalls per proxied request) to keep one of them. */
SEC("tracepoint/syscalls/sys_enter_close")
int on_sys_enter_close(struct trace_event_raw_sys_enter *ctx) {
  const __u64 pid_tgid = bpf_get_current_pid_tgid();
  if (!process_traced(pid_tgid >> 32)) return 0;
  return enter_close((__s32)ctx->args[0], pid_tgid);
}

/* Fallback for kernels without syscall tracepoints (CONFIG_FTRACE_SYSCALLS
 * off): user space loads one of the two (SocketCapture::Create). */
SEC("tp_btf/sys_enter")
int BPF_PROG(on_sys_enter_any, struct pt_regs *regs, long id) {
  if (id != SONDE_NR_close) return 0;
  const __u64 pid_tgid = bpf_get_current_pid_tgid();
  if (!process_traced(pid_tgid >> 32)) return 0;
  return enter_close((__s32)SONDE_SYSCALL_ARG0(regs), pid_tgid);
}

/* Everything else is decided and read at exit: the argument registers still
 * hold the caller's values, so nothing is stashed at entry. The entry time
 * of data calls is not taken (ts_enter_ns = ts_exit_ns): a task-storage
 * write at entry and read at exit cost ~25 % of a captured call. */
SEC("tp_btf/sys_exit")
int BPF_PROG(on_sys_exit, struct pt_regs *regs, long ret) {
  const long id = SONDE_SYSCALL_NR(regs);
  const __u8 syscall = traced_syscall(id);
  if (syscall == SONDE_SYS_UNKNOWN || syscall == SONDE_SYS_CLOSE) return 0;
  if (ret < 0 && syscall != SONDE_SYS_CONNECT) { /* failed calls move no bytes */
    /* but a would-block read/write inside an SSL call still names its socket */
    if (ret == -SONDE_EAGAIN) tls_note_blocked_call((__s32)SONDE_SYSCALL_ARG0(regs));
    return 0;
  }
  if (!process_traced(bpf_get_current_pid_tgid() >> 32)) return 0;
  const __s32 fd = (__s32)SONDE_SYSCALL_ARG0(regs);
  if (syscall == SONDE_SYS_CONNECT || syscall == SONDE_SYS_ACCEPT || syscall == SONDE_SYS_ACCEPT4)
    return exit_connection(syscall, fd, ret);
  if (syscall == SONDE_SYS_SENDFILE) /* out_fd, in_fd, offset, count */
    return emit_data(syscall, fd, 0, SONDE_SYSCALL_ARG3(regs), 0, ret);
  /* fd, buf, count, flags, sockaddr (sendto/recvfrom) */
  return emit_data(syscall, fd, SONDE_SYSCALL_ARG1(regs), SONDE_SYSCALL_ARG2(regs), SONDE_SYSCALL_ARG4(regs), ret);
}

/* The socket is done for, whoever closed it: TCP_CLOSE (peer reset, timeout,
 * end of the close handshake), or both directions shut down on the way to
 * FIN_WAIT1/LAST_ACK -- which is how the kernel's own close of the fd looks
 * when a process exits without close() (__tcp_close sets SHUTDOWN_MASK, then
 * changes state, then orphans the socket: its inode still resolves here).
 * Lets user space release the connection (after a short grace: this runs in
 * softirq context, possibly before the owner's last calls are in the ring
 * buffer) and drops the socket's state, which no close() may come to drop.
 * After a close() the state is already gone: one lookup. The pid is not
 * meaningful here, so no process filter applies. */
SEC("tracepoint/sock/inet_sock_set_state")
int on_state_change(struct trace_event_raw_inet_sock_set_state *ctx) {
  if (ctx->protocol != SONDE_IPPROTO_TCP) return 0;
  struct sock *sk = (struct sock *)ctx->skaddr;
  if (ctx->newstate != 7 /* TCP_CLOSE */) {
    if (ctx->newstate != 4 /* TCP_FIN_WAIT1 */ && ctx->newstate != 9 /* TCP_LAST_ACK */) return 0;
    if ((BPF_CORE_READ_BITFIELD_PROBED(sk, sk_shutdown) & 3 /* SHUTDOWN_MASK */) != 3) return 0;
  }
  __u64 inode = sonde_sock_inode(sk);
  if (inode == 0) return 0; /* orphaned: close() already reported it */
  struct sonde_sock_state *st = bpf_map_lookup_elem(&sock_states, &inode);
  if (!st) return 0;
  const __u8 role = st->role;
  const bool wanted = !(st->flags & (SONDE_SOCK_NOT_INET | SONDE_SOCK_FILTERED | SONDE_SOCK_IGNORED));
  bpf_map_delete_elem(&sock_states, &inode);
  if (!wanted) return 0;
  struct sonde_conn_event ev = {};
  if (sonde_fill_tuple(sk, &ev.tuple) != 0) return 0;
  ev.hdr.type = SONDE_EVENT_CONN_CLOSE;
  ev.hdr.size = sizeof(ev);
  ev.hdr.ts_enter_ns = ev.hdr.ts_exit_ns = bpf_ktime_get_ns();
  ev.sock_id = inode;
  ev.fd = -1;
  ev.retval = ctx->newstate;
  ev.role = role;
  ev.syscall = SONDE_SYS_STATE_CHANGE;
  struct tcp_sock *tp = (struct tcp_sock *)sk;
  ev.bytes_sent = BPF_CORE_READ(tp, bytes_sent);
  ev.bytes_received = BPF_CORE_READ(tp, bytes_received);
  submit(&ev, sizeof(ev));
  return 0;
}
