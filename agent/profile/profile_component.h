#pragma once
// Plugs the profiler into the agent pipeline (agent/pipeline): Start() loads
// and attaches it, a thread drains it every drain_interval and hands the
// folded stacks to the exporter as sonde.v1.ProfileBatch messages (chunked so
// one drain never makes one oversized batch). Without BPF rights the agent
// keeps running without profiles (logged). Header-only so sonde_profile does
// not depend on the pipeline's libraries.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stop_token>
#include <thread>
#include <utility>
#include <vector>

#include "agent/pipeline/pipeline.h"
#include "agent/profile/profiler.h"
#include "agent/profile/proto_convert.h"

namespace sonde::profile {

class ProfilerComponent final : public pipeline::Component {
 public:
  using BatchSink = std::function<void(const sonde::v1::ProfileBatch&)>;
  static constexpr int kStacksPerBatch = 1000;

  ProfilerComponent(ProfilerOptions options, BatchSink sink)
      : options_(std::move(options)), sink_(std::move(sink)) {}

  absl::Status Start(pipeline::Agent& /*agent*/) override {
    auto p = Profiler::Create(options_);
    if (!p.ok()) {
      spdlog::warn("profiler disabled: {}", std::string(p.status().message()));
      return absl::OkStatus();
    }
    profiler_ = std::move(*p);
    spdlog::info("profiler on: {} Hz on-CPU{}, drain every {} ms", options_.frequency_hz,
                 options_.off_cpu ? " + off-CPU" : "", options_.drain_interval.count());
    thread_ = std::jthread([this](std::stop_token st) {
      profiler_->Run(st, [this](std::vector<ProfileWindow> windows) { Deliver(windows); });
    });
    return absl::OkStatus();
  }

  void Stop() override {
    if (thread_.joinable()) {
      thread_.request_stop();  // Run() drains once more before returning
      thread_.join();
    }
    profiler_.reset();
  }

  ~ProfilerComponent() override { Stop(); }

  Profiler* profiler() { return profiler_.get(); }

 private:
  void Deliver(const std::vector<ProfileWindow>& windows) {
    if (!sink_) return;
    sonde::v1::ProfileBatch all = ToProfileBatch(windows);
    for (int begin = 0; begin < all.stacks_size(); begin += kStacksPerBatch) {
      sonde::v1::ProfileBatch chunk;
      chunk.set_sample_frequency_hz(all.sample_frequency_hz());
      const int end = std::min(all.stacks_size(), begin + kStacksPerBatch);
      for (int i = begin; i < end; ++i) *chunk.add_stacks() = std::move(*all.mutable_stacks(i));
      sink_(chunk);
    }
  }

  ProfilerOptions options_;
  BatchSink sink_;
  std::unique_ptr<Profiler> profiler_;
  std::jthread thread_;
};

// `sonde-agent run` flags.
struct ProfileFlags {
  bool enabled = false;
  uint32_t frequency_hz = 99;
  uint32_t drain_interval_s = 10;
  bool off_cpu = true;
  std::vector<uint32_t> pids;  // empty: every process
};

inline void AddProfileFlags(CLI::App& app, ProfileFlags& flags) {
  app.add_flag("--profile", flags.enabled, "Continuous on/off-CPU profiling (docs/profiling.md)");
  app.add_option("--profile-hz", flags.frequency_hz, "On-CPU samples per second per CPU")
      ->capture_default_str();
  app.add_option("--profile-interval", flags.drain_interval_s, "Seconds between profile drains")
      ->capture_default_str();
  app.add_flag("!--no-off-cpu", flags.off_cpu, "Profile on-CPU only");
  app.add_option("--profile-pid", flags.pids, "Only profile these processes (repeatable)");
}

// One call for main.cc: the profiler as a pipeline component whose folded
// stacks go to the agent's profile sinks (the exporter), or are only counted
// in the log when nothing takes them (no server).
inline void AttachProfiler(pipeline::Agent& agent, const ProfileFlags& flags) {
  ProfilerOptions o;
  o.frequency_hz = flags.frequency_hz;
  o.drain_interval = std::chrono::seconds(flags.drain_interval_s);
  o.off_cpu = flags.off_cpu;
  o.include_pids = flags.pids;
  ProfilerComponent::BatchSink sink;
  if (agent.has_profile_sinks()) {
    sink = [&agent](const sonde::v1::ProfileBatch& b) { agent.EmitProfile(b); };
  } else {
    sink = [](const sonde::v1::ProfileBatch& b) {
      spdlog::debug("profile: {} folded stacks (no server configured)", b.stacks_size());
    };
  }
  agent.AddComponent(std::make_unique<ProfilerComponent>(std::move(o), std::move(sink)));
}

}  // namespace sonde::profile
