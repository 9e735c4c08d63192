/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TCP health: per-socket counters and samples, aggregated in kernel maps and
 * read periodically by agent/tcp. BTF-typed tracepoints only (no kprobes):
 *   sock:inet_sock_set_state  connect latency, accepts, failed connects, closes
 *   tcp:tcp_retransmit_skb    retransmitted segments
 *   tcp:tcp_retransmit_synack SYN/ACK retransmissions (request sockets)
 *   tcp:tcp_send_reset        RSTs sent (with or without a socket)
 *   tcp:tcp_receive_reset     RSTs received
 *   tcp:tcp_probe             peer zero-window transitions (checked per segment,
 *                             map touched only on a transition)
 *   sock:sock_{send,recv}_length  srtt/cwnd/bytes samples and the owning process,
 *                             behind a per-socket gate in socket storage
 *
 * Every probe has the same shape: filter early, find (or create) the socket's
 * entry, update it in place. Nothing goes through a ring buffer.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "lib/sock_btf.bpf.h"
#include "sonde/abi.h"

char LICENSE[] SEC("license") = "GPL";

/* Minimum interval between srtt/cwnd/bytes samples of one socket. */
const volatile __u64 sample_interval_ns = 100 * 1000 * 1000ULL;
/* Process filter of the agent's capture (--pid / --exclude-pid), applied in
 * process context (send/recv sampling): a process the agent does not watch
 * costs one lookup per call, not a socket map update. Softirq hooks
 * (retransmits, resets, window probes) cannot know the process and count
 * every socket. */
const volatile __u32 agent_tgid = 0;
const volatile __u8 pids_include_only = 0;
const volatile __u8 has_pid_entries = 0;

#define SONDE_TCP_ESTABLISHED_STATE 1
#define SONDE_TCP_SYN_SENT 2
#define SONDE_TCP_SYN_RECV 3
#define SONDE_TCP_CLOSE 7
#define SONDE_TCP_LISTEN 10
#define SONDE_ECONNREFUSED 111
#define SONDE_ETIMEDOUT 110

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536); /* resized by user space */
  __type(key, __u64);         /* socket cookie */
  __type(value, struct sonde_tcp_sock_stats);
} tcp_socks SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 16384);
  __type(key, struct sonde_tcp_pair_key);
  __type(value, struct sonde_tcp_pair_stats);
} tcp_pairs SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, SONDE_TCP_STAT_COUNT);
  __type(key, __u32);
  __type(value, __u64);
} tcp_stats SEC(".maps");

/* Per-socket gate of the send/recv hooks, stored in the socket itself (freed
 * with it): when the next sample is due. Between samples a call costs this
 * one lookup instead of a cookie and an LRU hash lookup (~90-125 ns -> ~40 ns
 * per call, measured with bpf stats under bench/overhead). */
struct sonde_tcp_io_gate {
  __u64 next_sample_us; /* in tcp_sock.tcp_mstamp's clock (CLOCK_MONOTONIC, µs) */
};

struct {
  __uint(type, BPF_MAP_TYPE_SK_STORAGE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, int);
  __type(value, struct sonde_tcp_io_gate);
} tcp_io_gate SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, __u32);  /* tgid */
  __type(value, __u8); /* enum sonde_filter_action */
} tcp_pid_filter SEC(".maps");

static __always_inline bool process_watched(void) {
  __u32 tgid = bpf_get_current_pid_tgid() >> 32;
  if (tgid == agent_tgid) return false;
  if (!has_pid_entries) return true;
  __u8 *action = bpf_map_lookup_elem(&tcp_pid_filter, &tgid);
  if (action && *action == SONDE_FILTER_EXCLUDE) return false;
  if (pids_include_only && !(action && *action == SONDE_FILTER_INCLUDE)) return false;
  return true;
}

static __always_inline void count_stat(__u32 idx) {
  __u64 *v = bpf_map_lookup_elem(&tcp_stats, &idx);
  if (v) *v += 1;
}

static __always_inline __u64 sock_cookie(const struct sock *sk) {
  return bpf_get_socket_cookie((void *)sk);
}

/* Every program here is a BTF tracepoint: `sk` is a BTF pointer, so fields
 * are plain loads (CO-RE relocated), not a probe-read helper call each; the
 * send/recv hooks run on every socket call. */
static __always_inline int is_tcp_inet(const struct sock *sk) {
  __u16 family = sk->__sk_common.skc_family;
  if (family != SONDE_AF_INET && family != SONDE_AF_INET6) return 0;
  return sk->sk_protocol == SONDE_IPPROTO_TCP;
}

static __always_inline void fill_process(struct sonde_tcp_sock_stats *st) {
  st->pid = bpf_get_current_pid_tgid() >> 32;
  bpf_get_current_comm(st->comm, sizeof(st->comm));
}

/* Reads srtt/cwnd/bytes from the socket (CO-RE). */
static __always_inline void sample(const struct sock *sk, struct sonde_tcp_sock_stats *st,
                                   __u64 now) {
  const struct tcp_sock *tp = (const struct tcp_sock *)sk;
  st->srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3;
  st->rttvar_us = BPF_CORE_READ(tp, mdev_us) >> 2;
  st->snd_cwnd = BPF_CORE_READ(tp, snd_cwnd);
  st->bytes_acked = BPF_CORE_READ(tp, bytes_acked);
  st->bytes_received = BPF_CORE_READ(tp, bytes_received);
  st->last_sample_ns = now;
  count_stat(SONDE_TCP_STAT_SAMPLES);
}

/* The socket's entry, created (late join) when absent and `create` is set. */
static __always_inline struct sonde_tcp_sock_stats *get_stats(const struct sock *sk, __u64 cookie,
                                                              int create, __u8 role, __u64 now) {
  struct sonde_tcp_sock_stats *st = bpf_map_lookup_elem(&tcp_socks, &cookie);
  if (st || !create) return st;
  struct sonde_tcp_sock_stats init = {};
  if (sonde_fill_tuple((struct sock *)sk, &init.tuple) != 0) return NULL;
  init.role = role;
  init.start_ns = now;
  if (bpf_map_update_elem(&tcp_socks, &cookie, &init, BPF_NOEXIST) != 0) {
    st = bpf_map_lookup_elem(&tcp_socks, &cookie); /* lost a race: fine */
    if (!st) count_stat(SONDE_TCP_STAT_SOCK_MAP_FULL);
    return st;
  }
  return bpf_map_lookup_elem(&tcp_socks, &cookie);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tcp_set_state, const struct sock *sk, const int oldstate, const int newstate) {
  if (!is_tcp_inet(sk)) return 0;
  __u64 now = bpf_ktime_get_ns();
  __u64 cookie = sock_cookie(sk);

  /* connect(): CLOSE -> SYN_SENT runs in the connecting task. A reused cookie
   * cannot happen (cookies are unique per boot), so start fresh. */
  if (newstate == SONDE_TCP_SYN_SENT) {
    struct sonde_tcp_sock_stats init = {};
    if (sonde_fill_tuple((struct sock *)sk, &init.tuple) != 0) return 0;
    init.role = SONDE_ROLE_CLIENT;
    init.start_ns = now;
    init.state = newstate;
    fill_process(&init);
    init.sock_inode = sonde_sock_inode((struct sock *)sk);
    if (bpf_map_update_elem(&tcp_socks, &cookie, &init, BPF_ANY) != 0)
      count_stat(SONDE_TCP_STAT_SOCK_MAP_FULL);
    return 0;
  }
  /* Passive open: the child socket is cloned from the listener in SYN_RECV
   * (softirq: no process yet; filled at the first send/recv). */
  if (newstate == SONDE_TCP_SYN_RECV) {
    struct sonde_tcp_sock_stats init = {};
    if (sonde_fill_tuple((struct sock *)sk, &init.tuple) != 0) return 0;
    init.role = SONDE_ROLE_SERVER;
    init.start_ns = now;
    init.state = newstate;
    if (bpf_map_update_elem(&tcp_socks, &cookie, &init, BPF_ANY) != 0)
      count_stat(SONDE_TCP_STAT_SOCK_MAP_FULL);
    return 0;
  }
  if (newstate == SONDE_TCP_LISTEN || oldstate == SONDE_TCP_LISTEN) return 0;

  struct sonde_tcp_sock_stats *st =
      get_stats(sk, cookie, newstate != SONDE_TCP_CLOSE, SONDE_ROLE_UNKNOWN, now);
  if (!st) return 0;
  if (st->role == SONDE_ROLE_UNKNOWN && st->start_ns == now) st->flags |= SONDE_TCP_LATE_JOIN;
  st->state = newstate;

  if (newstate == SONDE_TCP_ESTABLISHED_STATE) {
    st->established_ns = now;
    st->flags |= SONDE_TCP_ESTABLISHED;
    sample(sk, st, now);
    if (oldstate == SONDE_TCP_SYN_SENT) {
      st->handshake_ns = now - st->start_ns;
    } else if (oldstate == SONDE_TCP_SYN_RECV) {
      /* The first RTT sample of an accepted socket is the SYN/ACK -> ACK time. */
      st->handshake_ns = (__u64)st->srtt_us * 1000;
    }
    if (!st->sock_inode) st->sock_inode = sonde_sock_inode((struct sock *)sk);
    return 0;
  }
  if (newstate == SONDE_TCP_CLOSE) {
    if (oldstate == SONDE_TCP_SYN_SENT) {
      int err = BPF_CORE_READ(sk, sk_err);
      if (err == SONDE_ECONNREFUSED)
        st->flags |= SONDE_TCP_FAILED_REFUSED;
      else if (err == SONDE_ETIMEDOUT)
        st->flags |= SONDE_TCP_FAILED_TIMEOUT;
      else
        st->flags |= SONDE_TCP_FAILED_OTHER;
    } else if (st->flags & SONDE_TCP_ESTABLISHED) {
      sample(sk, st, now);
    }
    st->closed_ns = now;
    st->flags |= SONDE_TCP_CLOSED;
    return 0;
  }
  /* FIN_WAIT*, CLOSE_WAIT, LAST_ACK, CLOSING: take the bytes while they are final-ish. */
  sample(sk, st, now);
  return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(tcp_retransmit, const struct sock *sk, const struct sk_buff *skb, int err) {
  if (err != 0 || !sk) return 0;
  __u64 now = bpf_ktime_get_ns();
  struct sonde_tcp_sock_stats *st = get_stats(sk, sock_cookie(sk), 1, SONDE_ROLE_UNKNOWN, now);
  if (!st) return 0;
  /* TcpRetransSegs counts tcp_skb_pcount(skb) segments; so do we. */
  const struct tcp_skb_cb *cb = (const struct tcp_skb_cb *)skb->cb;
  __u16 segs = BPF_CORE_READ(cb, tcp_gso_segs);
  if (segs == 0) segs = 1;
  __sync_fetch_and_add(&st->retrans_segs, segs);
  if (BPF_CORE_READ(sk, __sk_common.skc_state) == SONDE_TCP_SYN_SENT)
    __sync_fetch_and_add(&st->syn_retrans, 1);
  return 0;
}

static __always_inline struct sonde_tcp_pair_stats *get_pair(struct sonde_tcp_pair_key *key) {
  struct sonde_tcp_pair_stats *ps = bpf_map_lookup_elem(&tcp_pairs, key);
  if (ps) return ps;
  struct sonde_tcp_pair_stats zero = {};
  if (bpf_map_update_elem(&tcp_pairs, key, &zero, BPF_NOEXIST) != 0 &&
      !bpf_map_lookup_elem(&tcp_pairs, key)) {
    count_stat(SONDE_TCP_STAT_PAIR_MAP_FULL);
    return NULL;
  }
  return bpf_map_lookup_elem(&tcp_pairs, key);
}

SEC("tp_btf/tcp_retransmit_synack")
int BPF_PROG(tcp_retransmit_synack, const struct sock *sk, const struct request_sock *req) {
  struct sonde_tcp_pair_key key = {};
  key.family = BPF_CORE_READ(req, __req_common.skc_family);
  key.lport = BPF_CORE_READ(req, __req_common.skc_num);
  key.rport = bpf_ntohs(BPF_CORE_READ(req, __req_common.skc_dport));
  if (key.family == SONDE_AF_INET) {
    __u32 l = BPF_CORE_READ(req, __req_common.skc_rcv_saddr);
    __u32 r = BPF_CORE_READ(req, __req_common.skc_daddr);
    __builtin_memcpy(key.laddr, &l, 4);
    __builtin_memcpy(key.raddr, &r, 4);
  } else if (key.family == SONDE_AF_INET6) {
    BPF_CORE_READ_INTO(&key.laddr, req, __req_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
    BPF_CORE_READ_INTO(&key.raddr, req, __req_common.skc_v6_daddr.in6_u.u6_addr8);
  } else {
    return 0;
  }
  struct sonde_tcp_pair_stats *ps = get_pair(&key);
  if (ps) __sync_fetch_and_add(&ps->synack_retrans, 1);
  return 0;
}

/* RST sent without a full socket (no listener, or a request/timewait socket):
 * the tuple comes from the packet that provoked it. */
static __always_inline void count_orphan_reset(const struct sk_buff *skb) {
  unsigned char *head = BPF_CORE_READ(skb, head);
  __u16 nh = BPF_CORE_READ(skb, network_header);
  __u16 th = BPF_CORE_READ(skb, transport_header);
  __u8 vihl = 0;
  if (bpf_probe_read_kernel(&vihl, 1, head + nh) != 0) return;
  struct sonde_tcp_pair_key key = {};
  if ((vihl >> 4) == 4) {
    struct iphdr ip;
    if (bpf_probe_read_kernel(&ip, sizeof(ip), head + nh) != 0) return;
    if (ip.protocol != SONDE_IPPROTO_TCP) return;
    key.family = SONDE_AF_INET;
    /* The RST goes back: local = the packet's destination. */
    __builtin_memcpy(key.laddr, &ip.daddr, 4);
    __builtin_memcpy(key.raddr, &ip.saddr, 4);
  } else if ((vihl >> 4) == 6) {
    struct ipv6hdr ip6;
    if (bpf_probe_read_kernel(&ip6, sizeof(ip6), head + nh) != 0) return;
    if (ip6.nexthdr != SONDE_IPPROTO_TCP) return;
    key.family = SONDE_AF_INET6;
    __builtin_memcpy(key.laddr, &ip6.daddr, 16);
    __builtin_memcpy(key.raddr, &ip6.saddr, 16);
  } else {
    return;
  }
  struct tcphdr tcp;
  if (bpf_probe_read_kernel(&tcp, sizeof(tcp), head + th) != 0) return;
  key.lport = bpf_ntohs(tcp.dest);
  key.rport = bpf_ntohs(tcp.source);
  struct sonde_tcp_pair_stats *ps = get_pair(&key);
  if (ps) __sync_fetch_and_add(&ps->resets_sent, 1);
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(tcp_send_reset, const struct sock *sk, const struct sk_buff *skb) {
  if (sk) {
    __u8 state = BPF_CORE_READ(sk, __sk_common.skc_state);
    /* Full sockets only; timewait/request sockets have no cookie entry. */
    if (state != 6 /* TIME_WAIT */ && state != 12 /* NEW_SYN_RECV */ && is_tcp_inet(sk)) {
      struct sonde_tcp_sock_stats *st =
          get_stats(sk, sock_cookie(sk), 1, SONDE_ROLE_UNKNOWN, bpf_ktime_get_ns());
      if (st) __sync_fetch_and_add(&st->resets_sent, 1);
      return 0;
    }
  }
  if (skb) count_orphan_reset(skb);
  return 0;
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(tcp_receive_reset, struct sock *sk) {
  if (!sk || !is_tcp_inet(sk)) return 0;
  struct sonde_tcp_sock_stats *st =
      get_stats(sk, sock_cookie(sk), 1, SONDE_ROLE_UNKNOWN, bpf_ktime_get_ns());
  if (st) __sync_fetch_and_add(&st->resets_received, 1);
  return 0;
}

/* Every segment received on an established socket. tcp_probe runs before the
 * segment is processed, so tp->snd_wnd is still the previous window: a
 * segment advertising 0 while snd_wnd != 0 is a transition to zero. The map
 * is touched only on transitions (both ways). */
SEC("tp_btf/tcp_probe")
int BPF_PROG(tcp_probe, struct sock *sk, const struct sk_buff *skb) {
  /* Plain loads through BTF pointers (one kfunc call, no probe-read copy):
   * this runs for every segment received. */
  const struct tcphdr *th = SONDE_BTF_CAST(struct tcphdr, skb->data);
  if (th->rst || th->syn) return 0;
  __u32 snd_wnd = SONDE_BTF_CAST(struct tcp_sock, sk)->snd_wnd;
  int zero_now = th->window == 0;
  int zero_before = snd_wnd == 0;
  if (zero_now == zero_before) return 0;
  __u64 now = bpf_ktime_get_ns();
  struct sonde_tcp_sock_stats *st = get_stats(sk, sock_cookie(sk), 1, SONDE_ROLE_UNKNOWN, now);
  if (!st) return 0;
  if (zero_now) {
    if (!(st->flags & SONDE_TCP_ZERO_WINDOW)) {
      st->flags |= SONDE_TCP_ZERO_WINDOW;
      __sync_fetch_and_add(&st->zero_window_events, 1);
    }
  } else {
    st->flags &= ~SONDE_TCP_ZERO_WINDOW;
  }
  return 0;
}

/* Process context: attribute the socket to its process and sample srtt/cwnd
 * at most every sample_interval_ns. */
static __always_inline void on_io(struct sock *sk) {
  if (!sk || !process_watched() || !is_tcp_inet(sk)) return;
  __u8 state = sk->__sk_common.skc_state;
  if (state == SONDE_TCP_LISTEN || state == SONDE_TCP_CLOSE) return;
  struct sonde_tcp_io_gate *gate =
      bpf_sk_storage_get(&tcp_io_gate, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
  if (gate) {
    /* The socket's own clock, refreshed by TCP as it sends and receives: a
     * load instead of a helper call on every send and receive
     * (bpf_ktime_get_coarse_ns is refused to tracing programs). */
    const __u64 now_us = SONDE_BTF_CAST(struct tcp_sock, sk)->tcp_mstamp;
    if (now_us != 0 && now_us < gate->next_sample_us) return;
    gate->next_sample_us = now_us + sample_interval_ns / 1000;
  }
  const __u64 now = bpf_ktime_get_ns();
  __u64 cookie = sock_cookie(sk);
  struct sonde_tcp_sock_stats *st = get_stats(sk, cookie, 1, SONDE_ROLE_UNKNOWN, now);
  if (!st) return;
  if (st->start_ns == now) {
    st->flags |= SONDE_TCP_LATE_JOIN;
    st->state = state;
    if (state == SONDE_TCP_ESTABLISHED_STATE) st->flags |= SONDE_TCP_ESTABLISHED;
  }
  if (st->pid == 0) fill_process(st);
  if (!st->sock_inode) st->sock_inode = sonde_sock_inode(sk);
  /* Past the gate a sample is due; without one (storage not allocated), by the entry's time. */
  if (gate || now - st->last_sample_ns >= sample_interval_ns) sample(sk, st, now);
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(tcp_sock_send, struct sock *sk, int ret, int flags) {
  on_io(sk);
  return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(tcp_sock_recv, struct sock *sk, int ret, int flags) {
  on_io(sk);
  return 0;
}
