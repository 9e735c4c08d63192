// User-space event throughput: events/s delivered by the recorded-file
// source to a consumer that validates each record, on one core.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "agent/capture/recording.h"

namespace {

std::string MakeRecording(int events, size_t payload_bytes) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("sonde_bench_" + std::to_string(getpid()) + "_" + std::to_string(payload_bytes) + ".rec"))
                               .string();
  auto w = sonde::capture::RecordingWriter::Create(path, {});
  std::vector<uint8_t> buf(sizeof(sonde_data_event) + payload_bytes);
  auto* ev = reinterpret_cast<sonde_data_event*>(buf.data());
  ev->hdr.type = SONDE_EVENT_DATA;
  ev->hdr.size = static_cast<uint32_t>(buf.size());
  ev->payload_len = static_cast<uint32_t>(payload_bytes);
  std::memset(ev->payload, 'x', payload_bytes);
  for (int i = 0; i < events; ++i) {
    ev->sock_id = static_cast<uint64_t>(i % 64);
    ev->bytes = payload_bytes;
    (void)(*w)->Write(buf);
  }
  (void)(*w)->Flush();
  return path;
}

void BM_RecordedFileEvents(benchmark::State& state) {
  const int kEvents = 200000;
  const auto payload = static_cast<size_t>(state.range(0));
  const std::string path = MakeRecording(kEvents, payload);
  uint64_t total = 0, bytes = 0;
  for (auto _ : state) {
    auto src = sonde::capture::RecordedFileSource::Open(path);
    for (;;) {
      auto st = (*src)->Poll(0, [&](sonde::capture::RawEvent ev) {
        const auto* d = sonde::capture::AsDataEvent(ev);
        benchmark::DoNotOptimize(d);
        bytes += ev.size();
      });
      if (!st.ok()) break;
    }
    total += (*src)->counters().events;
  }
  state.SetItemsProcessed(static_cast<int64_t>(total));
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  std::filesystem::remove(path);
}
BENCHMARK(BM_RecordedFileEvents)->Arg(128)->Arg(1024)->Arg(4096)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
