// SPDX-License-Identifier: GPL-2.0
/*
 * Continuous CPU profiler.
 *
 * On-CPU: a perf_event program on a software cpu-clock event per CPU counts
 * samples per (pid, tid, user stack, kernel stack, time slot).
 * Off-CPU: tp_btf/sched_switch stores the stack at which a thread blocks and,
 * when it runs again, adds the blocked time (ns) to the same kind of key.
 *
 * Nothing goes through a ring buffer per sample. User space drains the maps:
 * two map sets (counts + stack traces) alternate by generation. The programs
 * write to set (gen & 1); user space bumps gen, waits a grace period and reads
 * and clears the now idle set. An off-CPU block that started in an older
 * generation keeps that generation in key.stack_gen so user space resolves
 * its stack ids from the stacks it saved when draining that generation.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "sonde/abi.h"

char LICENSE[] SEC("license") = "GPL";

#ifndef EFAULT
#define EFAULT 14
#endif

#define STACK_ENTRIES 16384
#define COUNT_ENTRIES 65536

/* Kernel-only: where and when a thread blocked. */
struct offcpu_start {
  __u64 ts_ns;
  __s32 user_stack_id;
  __s32 kernel_stack_id;
  __u32 gen;
  __u32 _pad;
};

#define STACK_MAP(name)                                           \
  struct {                                                        \
    __uint(type, BPF_MAP_TYPE_STACK_TRACE);                       \
    __uint(max_entries, STACK_ENTRIES);                           \
    __uint(key_size, sizeof(__u32));                              \
    __uint(value_size, SONDE_PROFILE_MAX_DEPTH * sizeof(__u64));  \
  } name SEC(".maps")

#define COUNT_MAP(name, value_type)                      \
  struct {                                               \
    __uint(type, BPF_MAP_TYPE_HASH);                     \
    __uint(max_entries, COUNT_ENTRIES);                  \
    __type(key, struct sonde_profile_key);               \
    __type(value, value_type);                           \
  } name SEC(".maps")

STACK_MAP(stacks_0);
STACK_MAP(stacks_1);
COUNT_MAP(oncpu_0, __u64);
COUNT_MAP(oncpu_1, __u64);
COUNT_MAP(offcpu_0, struct sonde_profile_offcpu_value);
COUNT_MAP(offcpu_1, struct sonde_profile_offcpu_value);

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 32768);
  __type(key, __u32); /* tid */
  __type(value, struct offcpu_start);
} offcpu_starts SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, __u32);  /* tgid */
  __type(value, __u8); /* enum sonde_filter_action */
} pid_filter SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 16384);
  __type(key, __u32);   /* tgid */
  __type(value, __u64); /* group leader start time */
} known_processes SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 64 * 1024);
} process_notices SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, SONDE_PROFILE_STAT_COUNT);
  __type(key, __u32);
  __type(value, __u64);
} profile_stats SEC(".maps");

/* Set before load. */
const volatile struct sonde_profile_config profile_config = {
    .flags = 0, .agent_tgid = 0, .min_block_ns = 1000, .slot_ns = 1000000000ULL};

/* Written by user space through the mmapped .bss. */
volatile struct sonde_profile_epoch profile_epoch;

static __always_inline void bump(__u32 stat) {
  __u64 *v = bpf_map_lookup_elem(&profile_stats, &stat);
  if (v) *v += 1;
}

static __always_inline bool wanted(__u32 tgid) {
  if (tgid == profile_config.agent_tgid) return false;
  __u8 *action = bpf_map_lookup_elem(&pid_filter, &tgid);
  if (action && *action == SONDE_FILTER_EXCLUDE) return false;
  if ((profile_config.flags & SONDE_PROFILE_PIDS_INCLUDE_ONLY) &&
      !(action && *action == SONDE_FILTER_INCLUDE))
    return false;
  return true;
}

static __always_inline __u32 slot_of(__u64 now_ns) {
  __u64 slot_ns = profile_config.slot_ns ? profile_config.slot_ns : 1000000000ULL;
  return (__u32)(now_ns / slot_ns);
}

static __always_inline void add_count(void *map, struct sonde_profile_key *key, __u64 value) {
  __u64 *v = bpf_map_lookup_elem(map, key);
  if (v) {
    __sync_fetch_and_add(v, value);
    return;
  }
  if (bpf_map_update_elem(map, key, &value, BPF_NOEXIST) == 0) return;
  v = bpf_map_lookup_elem(map, key); /* lost an insert race with another CPU */
  if (v)
    __sync_fetch_and_add(v, value);
  else
    bump(SONDE_PROFILE_STAT_COUNT_MAP_FULL);
}

static __always_inline void add_offcpu(void *map, struct sonde_profile_key *key, __u64 ns) {
  struct sonde_profile_offcpu_value *v = bpf_map_lookup_elem(map, key);
  if (!v) {
    struct sonde_profile_offcpu_value init = {.blocked_ns = ns, .blocks = 1};
    if (bpf_map_update_elem(map, key, &init, BPF_NOEXIST) == 0) return;
    v = bpf_map_lookup_elem(map, key); /* lost an insert race with another CPU */
    if (!v) {
      bump(SONDE_PROFILE_STAT_COUNT_MAP_FULL);
      return;
    }
  }
  __sync_fetch_and_add(&v->blocked_ns, ns);
  __sync_fetch_and_add(&v->blocks, 1);
}

/* Stack ids come from the stack map of generation gen; the map pointer must
 * be a constant for the verifier, hence the branch. */
static __always_inline void get_stacks(void *ctx, __u32 gen, __s32 *user_id, __s32 *kernel_id,
                                       bool user_space_task) {
  void *stacks = (gen & 1) ? (void *)&stacks_1 : (void *)&stacks_0;
  *kernel_id = bpf_get_stackid(ctx, stacks, 0);
  *user_id = user_space_task ? bpf_get_stackid(ctx, stacks, BPF_F_USER_STACK) : -1;
  if (*kernel_id < 0 && *kernel_id != -EFAULT) bump(SONDE_PROFILE_STAT_STACK_ERRORS);
  if (user_space_task && *user_id < 0 && *user_id != -EFAULT) bump(SONDE_PROFILE_STAT_STACK_ERRORS);
}

/* One notice per process lifetime (pid reuse is told apart by start time). */
static __always_inline void notice_process(__u32 tgid, struct task_struct *task) {
  __u64 start = BPF_CORE_READ(task, group_leader, start_time);
  __u64 *known = bpf_map_lookup_elem(&known_processes, &tgid);
  if (known && *known == start) return;
  bpf_map_update_elem(&known_processes, &tgid, &start, BPF_ANY);
  struct sonde_profile_new_process *n = bpf_ringbuf_reserve(&process_notices, sizeof(*n), 0);
  if (!n) {
    bump(SONDE_PROFILE_STAT_NOTICE_DROPPED);
    return;
  }
  n->pid = tgid;
  n->_pad = 0;
  n->start_time_ns = start;
  bpf_ringbuf_submit(n, 0);
}

SEC("perf_event")
int sonde_oncpu_sample(struct bpf_perf_event_data *ctx) {
  __u64 id = bpf_get_current_pid_tgid();
  __u32 tgid = id >> 32, tid = (__u32)id;
  if (tid == 0 && !(profile_config.flags & SONDE_PROFILE_INCLUDE_IDLE)) return 0;
  if (!wanted(tgid)) return 0;

  struct task_struct *task = bpf_get_current_task_btf();
  bool user_task = BPF_CORE_READ(task, mm) != NULL;
  __u32 gen = profile_epoch.gen;
  struct sonde_profile_key key = {};
  key.pid = tgid;
  key.tid = tid;
  key.stack_gen = gen;
  key.slot = slot_of(bpf_ktime_get_ns());
  bpf_get_current_comm(key.comm, sizeof(key.comm));
  get_stacks(ctx, gen, &key.user_stack_id, &key.kernel_stack_id, user_task);

  add_count((gen & 1) ? (void *)&oncpu_1 : (void *)&oncpu_0, &key, 1);
  bump(SONDE_PROFILE_STAT_SAMPLES);
  if (user_task) notice_process(tgid, task);
  return 0;
}

/* Runs in the context of prev, so the stacks captured are prev's. */
SEC("tp_btf/sched_switch")
int BPF_PROG(sonde_offcpu_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
             unsigned int prev_state) {
  __u64 now = bpf_ktime_get_ns();
  __u32 gen = profile_epoch.gen;

  /* 1. prev blocks: remember when and where. Kernel threads (no mm) are
   * skipped: they block all the time by design, and capturing two stacks on
   * each of their switches is most of this program's cost. */
  __u32 prev_tid = prev->pid, prev_tgid = prev->tgid;
  bool blocked = !preempt && prev_state != 0; /* 0 == TASK_RUNNING */
  if (prev_tid != 0 && prev->mm != NULL &&
      (blocked || (profile_config.flags & SONDE_PROFILE_OFFCPU_PREEMPTED)) && wanted(prev_tgid)) {
    struct offcpu_start start = {};
    start.ts_ns = now;
    start.gen = gen;
    get_stacks(ctx, gen, &start.user_stack_id, &start.kernel_stack_id, true);
    if (bpf_map_update_elem(&offcpu_starts, &prev_tid, &start, BPF_ANY))
      bump(SONDE_PROFILE_STAT_START_MAP_FULL);
    notice_process(prev_tgid, prev);
  }

  /* 2. next runs again: account the time it was off CPU. */
  __u32 next_tid = next->pid;
  struct offcpu_start *s = bpf_map_lookup_elem(&offcpu_starts, &next_tid);
  if (!s) return 0;
  struct offcpu_start start = *s;
  bpf_map_delete_elem(&offcpu_starts, &next_tid);
  if (now <= start.ts_ns) return 0;
  __u64 blocked_ns = now - start.ts_ns;
  if (blocked_ns < profile_config.min_block_ns) {
    bump(SONDE_PROFILE_STAT_SHORT_BLOCKS);
    return 0;
  }
  struct sonde_profile_key key = {};
  key.pid = next->tgid;
  key.tid = next_tid;
  key.user_stack_id = start.user_stack_id;
  key.kernel_stack_id = start.kernel_stack_id;
  key.stack_gen = start.gen;
  key.slot = slot_of(now);
  bpf_probe_read_kernel_str(key.comm, sizeof(key.comm), next->comm);
  add_offcpu((gen & 1) ? (void *)&offcpu_1 : (void *)&offcpu_0, &key, blocked_ns);
  bump(SONDE_PROFILE_STAT_SWITCHES);
  return 0;
}
