#include "agent/profile/proto_convert.h"

namespace sonde::profile {

void AppendToBatch(const std::vector<ProfileWindow>& windows, sonde::v1::ProfileBatch& batch) {
  for (const ProfileWindow& w : windows) {
    const bool on_cpu = w.kind == ProfileKind::kOnCpu;
    if (on_cpu && w.frequency_hz != 0) batch.set_sample_frequency_hz(w.frequency_hz);
    for (const ProcessProfile& p : w.processes) {
      for (const FoldedStack& s : p.stacks) {
        sonde::v1::FoldedStack* m = batch.add_stacks();
        m->set_stack(s.stack);
        m->set_pid(p.pid);
        m->set_tid(s.tid);
        m->set_comm(p.process_name);
        m->set_thread_name(s.thread_name);
        if (!p.container_id.empty()) m->set_container_id(p.container_id);
        m->set_kind(on_cpu ? sonde::v1::CPU_KIND_ON_CPU : sonde::v1::CPU_KIND_OFF_CPU);
        m->set_window_start_unix_ns(s.slot_start_unix_ns);
        m->set_window_end_unix_ns(s.slot_end_unix_ns);
        if (on_cpu) {
          m->set_count(s.value);
          m->set_value(s.value);
        } else {
          m->set_count(s.count);         // blocks
          m->set_value(s.value * 1000);  // us -> ns
        }
      }
    }
  }
}

sonde::v1::ProfileBatch ToProfileBatch(const std::vector<ProfileWindow>& windows) {
  sonde::v1::ProfileBatch batch;
  AppendToBatch(windows, batch);
  return batch;
}

}  // namespace sonde::profile
