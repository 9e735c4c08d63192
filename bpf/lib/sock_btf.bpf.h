/* SPDX-License-Identifier: Apache-2.0 */
/* fd -> socket and TCP sequence through BTF pointers, for BTF tracepoint
 * programs (tp_btf). Field loads through BTF pointers are plain loads guarded
 * by the kernel's exception table, not a bpf_probe_read_kernel() call each:
 * the walk below costs one helper call instead of eight. */
#ifndef SONDE_LIB_SOCK_BTF_BPF_H
#define SONDE_LIB_SOCK_BTF_BPF_H

#include "lib/sock.bpf.h"

extern void *bpf_rdonly_cast(const void *obj__ign, __u32 btf_id) __ksym;

#define SONDE_BTF_CAST(type, ptr) ((type *)bpf_rdonly_cast((ptr), bpf_core_type_id_kernel(type)))

/* The struct sock behind fd of the current task, or NULL when the fd is not
 * a socket; *inode_out receives the socket inode number. */
static __always_inline struct sock *sonde_sock_from_fd_btf(int fd, __u64 *inode_out) {
  if (fd < 0) return NULL;
  struct task_struct *task = bpf_get_current_task_btf();
  struct files_struct *files = task->files;
  if (!files) return NULL;
  struct fdtable *fdt = files->fdt;
  if (!fdt) return NULL;
  if ((unsigned int)fd >= fdt->max_fds) return NULL;
  struct file **fd_array = fdt->fd; /* a pointer to pointers: a scalar for the verifier */
  struct file *raw = NULL;
  if (bpf_probe_read_kernel(&raw, sizeof(raw), &fd_array[fd]) != 0 || !raw) return NULL;
  struct file *file = SONDE_BTF_CAST(struct file, raw);
  struct inode *inode = file->f_inode;
  if (!inode) return NULL;
  if ((inode->i_mode & SONDE_S_IFMT) != SONDE_S_IFSOCK) return NULL;
  void *private_data = file->private_data;
  if (!private_data) return NULL;
  struct socket *socket = SONDE_BTF_CAST(struct socket, private_data);
  *inode_out = inode->i_ino;
  return socket->sk;
}

/* TCP sequence number just past the last data byte written by the process
 * (egress) or consumed by it (ingress), read after the call. A read that also
 * consumed the peer's FIN advanced copied_seq one past the data: that is the
 * case when the receive side is shut down and nothing is left unread. */
static __always_inline __u32 sonde_tcp_seq_after_btf(struct sock *sk, __u8 direction) {
  struct tcp_sock *tp = SONDE_BTF_CAST(struct tcp_sock, sk);
  if (direction == SONDE_DIR_EGRESS) return tp->write_seq;
  __u32 copied = tp->copied_seq;
  if ((tp->inet_conn.icsk_inet.sk.sk_shutdown & SONDE_RCV_SHUTDOWN) && copied == tp->rcv_nxt) copied -= 1;
  return copied;
}

#endif /* SONDE_LIB_SOCK_BTF_BPF_H */
