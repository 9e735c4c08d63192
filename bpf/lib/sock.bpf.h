/* SPDX-License-Identifier: Apache-2.0 */
/* Kernel helpers shared by the probes: fd -> socket, tuple, TCP sequence.
 * Free of map definitions so every probe file can include it. */
#ifndef SONDE_LIB_SOCK_BPF_H
#define SONDE_LIB_SOCK_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "sonde/abi.h"

#define SONDE_AF_INET 2
#define SONDE_AF_INET6 10
#define SONDE_IPPROTO_TCP 6
#define SONDE_IPPROTO_UDP 17
#define SONDE_S_IFMT 00170000
#define SONDE_S_IFSOCK 0140000

/* The socket inode behind a struct sock (0 when it has no file: not yet
 * accepted, or orphaned after close). */
static __always_inline __u64 sonde_sock_inode(struct sock *sk) {
  struct socket *socket = BPF_CORE_READ(sk, sk_socket);
  if (!socket) return 0;
  struct file *file = BPF_CORE_READ(socket, file);
  if (!file) return 0;
  return BPF_CORE_READ(file, f_inode, i_ino);
}

/* Fills the tuple from the local point of view. Returns 0 for TCP/UDP over
 * IPv4/IPv6, -1 for anything else (unix sockets, raw, netlink...). */
static __always_inline int sonde_fill_tuple(struct sock *sk, struct sonde_tuple *t) {
  __u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
  if (family != SONDE_AF_INET && family != SONDE_AF_INET6) return -1;
  __u16 protocol = BPF_CORE_READ(sk, sk_protocol);
  if (protocol != SONDE_IPPROTO_TCP && protocol != SONDE_IPPROTO_UDP) return -1;
  t->family = family;
  t->l4_protocol = (__u8)protocol;
  /* inet_sport, not skc_num: moving to TCP_CLOSE (a peer's RST, processed
   * while the process is still inside a write to that socket) releases the
   * bound port and zeroes skc_num, but leaves inet_sport. */
  t->sport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
  if (t->sport == 0) t->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
  t->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
  if (family == SONDE_AF_INET) {
    __u32 saddr = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
    __u32 daddr = BPF_CORE_READ(sk, __sk_common.skc_daddr);
    __builtin_memcpy(t->saddr, &saddr, 4);
    __builtin_memcpy(t->daddr, &daddr, 4);
  } else {
    BPF_CORE_READ_INTO(&t->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
    BPF_CORE_READ_INTO(&t->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
  }
  return 0;
}

#define SONDE_RCV_SHUTDOWN 1

#endif /* SONDE_LIB_SOCK_BPF_H */
