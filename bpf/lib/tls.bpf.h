/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TLS plaintext through uprobes on the OpenSSL API (libssl 1.1/3.x, and any
 * binary that links it statically): SSL_read, SSL_read_ex, SSL_write,
 * SSL_write_ex. Included by socket_trace.bpf.c: the plaintext events share
 * its ring buffer, socket state, filters and record layout, so user space
 * sees them exactly like syscall data (plus SONDE_DATA_TLS).
 *
 * Tying an SSL* to its socket: the entry uprobe records the call per thread
 * (tls_calls). A socket read/write the same thread makes before the call
 * returns is the library moving that connection's ciphertext: sys_exit
 * notes its fd in the call record (tls_note_socket_call) and marks the
 * socket TLS, so its ciphertext is never copied again. The return uprobe
 * emits the plaintext on that socket and remembers SSL* -> (fd, inode) for
 * calls that make no syscall (a read served from an already-decrypted
 * record). This needs neither SSL_set_fd (a connection whose handshake
 * predates the agent is found on its first read/write) nor struct offsets of
 * a particular OpenSSL build.
 *
 * Libraries that do the socket I/O outside the SSL call (memory BIOs: Node's
 * TLSWrap reads the ciphertext with libuv, then calls SSL_read; calls
 * SSL_write, then writes the ciphertext) leave the fd unknown at return. The
 * call record then stays behind as "pending": the thread's next socket
 * read/write whose bytes start with a TLS record header (content type 20-23,
 * version 3.x) names the SSL*'s socket. Node's first SSL_read of a
 * connection runs inside the handshake (no plaintext yet) right before the
 * ServerHello goes out, so no plaintext is lost there; a client's first
 * SSL_write before any other call can be (counted in SONDE_STAT_TLS_NO_SOCKET).
 */
#ifndef SONDE_LIB_TLS_BPF_H
#define SONDE_LIB_TLS_BPF_H

/* Set by user space before load: false keeps the sys_exit path free of the
 * in-flight lookup (the verifier drops the dead branch). */
const volatile bool tls_enabled = false;

/* One SSL_read/SSL_write in flight on a thread. */
struct tls_call {
  __u64 ssl;
  __u64 buf;
  __u64 len_ptr; /* SSL_*_ex: size_t* receiving the byte count; 0 for SSL_read/SSL_write */
  __u64 ts_enter_ns;
  __u64 ts_io_ns; /* exit of the last read/write made inside the call, 0 if none */
  __u64 inode;   /* socket of a read/write made inside the call, valid when fd >= 0 */
  __s32 fd;      /* -1 until such a call is seen */
  __u8 syscall;  /* SONDE_SYS_SSL_READ / SONDE_SYS_SSL_WRITE */
  __u8 pending;  /* returned without a socket: the next TLS-looking socket call names it */
  __u8 _pad[2];
};

struct tls_ssl_key {
  __u32 tgid;
  __u32 _pad;
  __u64 ssl; /* SSL* in that process */
};

struct tls_ssl_socket {
  __u64 inode; /* checked against the fd before use: fds are reused */
  __s32 fd;
  __u32 _pad;
};

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH); /* pending records of idle threads age out */
  __uint(max_entries, 16384);
  __type(key, __u64); /* pid_tgid: the calling thread */
  __type(value, struct tls_call);
} tls_calls SEC(".maps");

/* At least the number of tls_calls entries (inserts counted, successful
 * deletes subtracted; an LRU eviction leaves it high, never low). While it
 * is 0 no thread is inside an SSL call, and a plaintext socket call skips
 * the per-thread lookup: nginx links OpenSSL, so its probes are attached on
 * nodes that serve no HTTPS at all. */
__u64 tls_calls_live = 0;

static __always_inline void tls_call_forget(__u64 *id) {
  if (bpf_map_delete_elem(&tls_calls, id) == 0) __sync_fetch_and_sub(&tls_calls_live, 1);
}

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct tls_ssl_key);
  __type(value, struct tls_ssl_socket);
} tls_ssl_sockets SEC(".maps");

/* Flags a socket as TLS (ciphertext no longer copied). A socket user space
 * ignored while it only saw ciphertext gets a second chance: its plaintext
 * is what the protocols read. */
static __always_inline void tls_mark_socket(__u64 inode) {
  struct sonde_sock_state *st = bpf_map_lookup_elem(&sock_states, &inode);
  if (st) {
    if (!(st->flags & SONDE_SOCK_TLS)) st->flags = (st->flags & ~SONDE_SOCK_IGNORED) | SONDE_SOCK_TLS;
    return;
  }
  /* filter_gen that cannot match: the first plaintext decides the port filter. */
  struct sonde_sock_state fresh = {.flags = SONDE_SOCK_TLS, .filter_gen = 0xffffffffu};
  if (bpf_map_update_elem(&sock_states, &inode, &fresh, BPF_NOEXIST) != 0) {
    st = bpf_map_lookup_elem(&sock_states, &inode);
    if (st) st->flags |= SONDE_SOCK_TLS;
  }
}

/* Whether the bytes a socket call moved start with a TLS record header. */
static __always_inline bool tls_record_header(__u8 syscall, __u64 buf) {
  __u64 first = buf;
  if (syscall == SONDE_SYS_READV || syscall == SONDE_SYS_WRITEV) {
    /* iov_base of the first iovec */
    if (bpf_probe_read_user(&first, sizeof(first), (const void *)buf) != 0) return false;
  } else if (syscall != SONDE_SYS_READ && syscall != SONDE_SYS_WRITE && syscall != SONDE_SYS_SENDTO &&
             syscall != SONDE_SYS_RECVFROM) {
    return false;
  }
  __u32 h = 0; /* content type, version major, version minor (little-endian bytes) */
  if (bpf_probe_read_user(&h, 3, (const void *)first) != 0) return false;
  const __u8 type = h & 0xff, major = (h >> 8) & 0xff, minor = (h >> 16) & 0xff;
  return type >= 20 && type <= 23 && major == 3 && minor <= 4;
}

/* Called by sys_exit for a socket read/write with bytes moved: true when the
 * bytes are TLS ciphertext of a known SSL call (noted, not copied): the
 * thread is inside the call, or a call of it is pending and these bytes look
 * like TLS records. */
static __noinline int tls_note_socket_call_slow(__s32 fd, __u64 inode, __u8 syscall, __u64 buf);

/* The sys_exit side stays small (its stack is near the 512-byte limit):
 * the lookup is inline, the rest a function of its own with its own frame. */
static __always_inline bool tls_note_socket_call(__s32 fd, __u64 inode, __u8 syscall, __u64 buf) {
  if (!tls_enabled || tls_calls_live == 0) return false;
  return tls_note_socket_call_slow(fd, inode, syscall, buf) != 0;
}

static __noinline int tls_note_socket_call_slow(__s32 fd, __u64 inode, __u8 syscall, __u64 buf) {
  __u64 id = bpf_get_current_pid_tgid();
  struct tls_call *c = bpf_map_lookup_elem(&tls_calls, &id);
  if (!c) return false;
  if (c->pending) {
    if (!tls_record_header(syscall, buf)) return false; /* some other socket of the thread */
    struct tls_ssl_key key = {.tgid = id >> 32, .ssl = c->ssl};
    struct tls_ssl_socket v = {.inode = inode, .fd = fd};
    bpf_map_update_elem(&tls_ssl_sockets, &key, &v, BPF_ANY);
    tls_call_forget(&id);
    tls_mark_socket(inode);
    count_stat(SONDE_STAT_TLS_CIPHERTEXT);
    return true;
  }
  if (c->fd != fd || c->inode != inode) {
    c->fd = fd;
    c->inode = inode;
    tls_mark_socket(inode);
  }
  c->ts_io_ns = bpf_ktime_get_ns();
  count_stat(SONDE_STAT_TLS_CIPHERTEXT);
  return true;
}

/* A read/write inside an SSL call that would block (a non-blocking server's
 * SSL_read with nothing to read yet): no bytes, but the fd is the call's
 * socket. Without it, such a call on a connection not seen yet would go
 * "pending" and guess its socket from later traffic. */
static __noinline int tls_note_blocked_call_slow(__s32 fd) {
  __u64 id = bpf_get_current_pid_tgid();
  struct tls_call *c = bpf_map_lookup_elem(&tls_calls, &id);
  if (!c || c->pending || c->fd >= 0) return 0;
  __u64 inode = 0;
  if (!sonde_sock_from_fd_btf(fd, &inode)) return 0;
  c->fd = fd;
  c->inode = inode;
  tls_mark_socket(inode);
  return 0;
}

static __always_inline void tls_note_blocked_call(__s32 fd) {
  if (tls_enabled && tls_calls_live != 0) tls_note_blocked_call_slow(fd);
}

static __always_inline int tls_enter(__u64 ssl, __u64 buf, __u64 len_ptr, __u8 syscall) {
  __u64 id = bpf_get_current_pid_tgid();
  if (!process_traced(id >> 32)) return 0;
  struct tls_call c = {.ssl = ssl, .buf = buf, .len_ptr = len_ptr, .fd = -1, .syscall = syscall};
  c.ts_enter_ns = bpf_ktime_get_ns();
  struct tls_call *existing = bpf_map_lookup_elem(&tls_calls, &id);
  if (existing) { /* a pending record of this thread: replaced, already counted */
    *existing = c;
  } else if (bpf_map_update_elem(&tls_calls, &id, &c, BPF_NOEXIST) == 0) {
    __sync_fetch_and_add(&tls_calls_live, 1);
  } else {
    count_stat(SONDE_STAT_TLS_STASH_FULL);
  }
  return 0;
}

static __always_inline int tls_exit(long ret) {
  __u64 id = bpf_get_current_pid_tgid();
  struct tls_call *cp = bpf_map_lookup_elem(&tls_calls, &id);
  if (!cp || cp->pending) return 0;
  const struct tls_call c = *cp;

  __u64 bytes = 0;
  if (c.len_ptr != 0) {
    __u64 n = 0; /* size_t */
    if (ret == 1 && bpf_probe_read_user(&n, sizeof(n), (const void *)c.len_ptr) == 0) bytes = n;
  } else if (ret > 0) {
    bytes = (__u64)ret;
  }

  /* Which socket: the one the call itself used, else the one this SSL* used last. */
  struct tls_ssl_key key = {.tgid = id >> 32, .ssl = c.ssl};
  struct tls_ssl_socket *known = bpf_map_lookup_elem(&tls_ssl_sockets, &key);
  __s32 fd = c.fd;
  __u64 want_inode = c.inode;
  if (fd >= 0) {
    if (!known || known->fd != fd || known->inode != c.inode) {
      struct tls_ssl_socket v = {.inode = c.inode, .fd = fd};
      bpf_map_update_elem(&tls_ssl_sockets, &key, &v, BPF_ANY);
    }
  } else if (known) {
    fd = known->fd;
    want_inode = known->inode;
  }
  __u64 inode = 0;
  struct sock *sk = fd >= 0 ? sonde_sock_from_fd_btf(fd, &inode) : NULL;
  if (!sk || inode != want_inode) {
    /* Unknown, closed, or the fd now names another socket (an SSL* address
     * reused): wait for the thread's next TLS-looking socket call. */
    cp->pending = 1;
    if (bytes != 0) count_stat(SONDE_STAT_TLS_NO_SOCKET);
    return 0;
  }
  tls_call_forget(&id);
  if (bytes == 0) return 0;

  __u32 cpu = bpf_get_smp_processor_id();
  struct scratch_event *s = bpf_map_lookup_elem(&scratch, &cpu);
  if (!s) {
    count_drop(SONDE_DROP_SCRATCH);
    return 0;
  }
  struct sonde_data_event *ev = &s->ev;
  struct sonde_sock_state *st = wanted_socket(sk, inode, SONDE_ROLE_UNKNOWN, &ev->tuple);
  if (!st) return 0;
  st->flags |= SONDE_SOCK_TLS;

  fill_header(&ev->hdr, SONDE_EVENT_DATA, id);
  ev->hdr.ts_enter_ns = c.ts_enter_ns;
  /* A write's bytes left when its last socket write returned, not when the
   * return probe ran: the peer may have read them already (a server span
   * must not seem to start before the client's). */
  if (c.syscall == SONDE_SYS_SSL_WRITE && c.ts_io_ns != 0) ev->hdr.ts_exit_ns = c.ts_io_ns;
  ev->sock_id = inode;
  ev->fd = fd;
  ev->syscall = c.syscall;
  ev->direction = c.syscall == SONDE_SYS_SSL_READ ? SONDE_DIR_INGRESS : SONDE_DIR_EGRESS;
  ev->flags = SONDE_DATA_TLS;
  ev->bytes = bytes;
  ev->role = st->role;
  ev->tcp_seq = 0;
  count_stat(SONDE_STAT_TLS_PLAINTEXT);

  __u32 limit = capture_bytes;
  if (limit > SONDE_PAYLOAD_MAX) limit = SONDE_PAYLOAD_MAX;
  const __u32 want = bytes < limit ? (__u32)bytes : limit;
  if (want <= 256) return submit_plain_256(ev, c.buf, want);
  if (want <= 1024) return submit_plain_1024(ev, c.buf, want);
  if (want <= 4096) return submit_plain_4096(ev, c.buf, want);
  return submit_plain_16384(ev, c.buf, want);
}

/* Attached by user space (agent/tls/tls_attacher.cc) to every libssl and
 * every binary with OpenSSL linked in; the section has no target, so the
 * skeleton does not auto-attach them. BPF_KPROBE/BPF_KRETPROBE: libbpf 1.1
 * has no BPF_UPROBE spelling; the argument registers are the same. */
SEC("uprobe")
int BPF_KPROBE(tls_read_enter, void *ssl, void *buf, int num) {
  return tls_enter((__u64)ssl, (__u64)buf, 0, SONDE_SYS_SSL_READ);
}

SEC("uprobe")
int BPF_KPROBE(tls_read_ex_enter, void *ssl, void *buf, __u64 num, __u64 *readbytes) {
  return tls_enter((__u64)ssl, (__u64)buf, (__u64)readbytes, SONDE_SYS_SSL_READ);
}

SEC("uprobe")
int BPF_KPROBE(tls_write_enter, void *ssl, const void *buf, int num) {
  return tls_enter((__u64)ssl, (__u64)buf, 0, SONDE_SYS_SSL_WRITE);
}

SEC("uprobe")
int BPF_KPROBE(tls_write_ex_enter, void *ssl, const void *buf, __u64 num, __u64 *written) {
  return tls_enter((__u64)ssl, (__u64)buf, (__u64)written, SONDE_SYS_SSL_WRITE);
}

/* The same on an emulated instruction just before the function's `ret`
 * (agent/tls/probe_sites.h), where %rax already holds the result: a plain
 * uprobe, no return trampoline and no single step. */
SEC("uprobe")
int BPF_KPROBE(tls_exit_site) { return tls_exit((long)(int)PT_REGS_RC(ctx)); }

/* One return probe serves all four: the call record says which it was. */
SEC("uretprobe")
int BPF_KRETPROBE(tls_exit_probe, long ret) { return tls_exit((long)(int)ret); }

#endif /* SONDE_LIB_TLS_BPF_H */
