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

/* The struct sock behind a file descriptor of the current task, or NULL when
 * the fd is not a socket. *inode_out receives the socket inode number, which
 * identifies the socket for its whole life. */
static __always_inline struct sock *sonde_sock_from_fd(int fd, __u64 *inode_out) {
  if (fd < 0) return NULL;
  struct task_struct *task = (struct task_struct *)bpf_get_current_task();
  struct files_struct *files = BPF_CORE_READ(task, files);
  if (!files) return NULL;
  struct fdtable *fdt = BPF_CORE_READ(files, fdt);
  if (!fdt) return NULL;
  unsigned int max_fds = BPF_CORE_READ(fdt, max_fds);
  if ((unsigned int)fd >= max_fds) return NULL;
  struct file **fd_array = BPF_CORE_READ(fdt, fd);
  struct file *file = NULL;
  if (bpf_probe_read_kernel(&file, sizeof(file), &fd_array[fd]) != 0 || !file) return NULL;
  struct inode *inode = BPF_CORE_READ(file, f_inode);
  if (!inode) return NULL;
  umode_t mode = BPF_CORE_READ(inode, i_mode);
  if ((mode & SONDE_S_IFMT) != SONDE_S_IFSOCK) return NULL;
  struct socket *socket = BPF_CORE_READ(file, private_data);
  if (!socket) return NULL;
  *inode_out = BPF_CORE_READ(inode, i_ino);
  return BPF_CORE_READ(socket, sk);
}

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

/* TCP sequence number just past the last data byte written by the process
 * (egress) or consumed by it (ingress), read after the call. A read that
 * also consumed the peer's FIN advanced copied_seq one past the data: that
 * is the case when the receive side is shut down and nothing is left unread. */
static __always_inline __u32 sonde_tcp_seq_after(struct sock *sk, __u8 direction) {
  struct tcp_sock *tp = (struct tcp_sock *)sk;
  if (direction == SONDE_DIR_EGRESS) return BPF_CORE_READ(tp, write_seq);
  __u32 copied = BPF_CORE_READ(tp, copied_seq);
  if ((BPF_CORE_READ(sk, sk_shutdown) & SONDE_RCV_SHUTDOWN) && copied == BPF_CORE_READ(tp, rcv_nxt))
    copied -= 1;
  return copied;
}

#endif /* SONDE_LIB_SOCK_BPF_H */
