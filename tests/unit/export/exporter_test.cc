// The exporter against a real in-process sonde-server ingest (gRPC on
// loopback + SQLite): conversion, compression, batching, bounded queue,
// back-off, and no loss across a server restart.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <thread>

#include "agent/export/compression.h"
#include "agent/export/server_exporter.h"
#include "agent/export/span_convert.h"
#include "server/ingest/ingest_service.h"
#include "server/store/sqlite_storage.h"

namespace sonde::exporter {
namespace {

using namespace std::chrono_literals;

std::filesystem::path TempDir() {
  std::random_device rd;
  auto p = std::filesystem::path(SONDE_BINARY_DIR) / "test-output" / "export-unit" /
           ("t" + std::to_string(rd()) + std::to_string(rd()));
  std::filesystem::create_directories(p);
  return p;
}

int FreePort() {
  // Bind :0, read the port, close: the kernel does not hand it out again soon.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

// A real ingest endpoint: IngestService over SqliteStorage.
class TestServer {
 public:
  TestServer(const std::filesystem::path& dir, int port, std::string token = "") {
    server::SqliteStorage::Options o;
    o.path = (dir / "sonde.db").string();
    storage_ = std::move(*server::SqliteStorage::Open(o));
    service_ = std::make_unique<server::IngestService>(storage_.get(), token);
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:" + std::to_string(port), grpc::InsecureServerCredentials(), &port_);
    b.RegisterService(service_.get());
    server_ = b.BuildAndStart();
  }
  ~TestServer() { Stop(); }
  void Stop() {
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + 200ms);
    server_.reset();
  }
  int port() const { return port_; }
  uint64_t SpanCount() {
    server::EndpointQuery q;
    uint64_t n = 0;
    auto eps = storage_->Endpoints(q);
    if (!eps.ok()) return 0;
    for (const auto& e : *eps) n += e.count;
    return n;
  }
  server::SqliteStorage* storage() { return storage_.get(); }
  const server::IngestCounters& counters() { return service_->counters(); }

 private:
  std::unique_ptr<server::SqliteStorage> storage_;
  std::unique_ptr<server::IngestService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

trace::Span MakeSpan(uint64_t n) {
  trace::Span s;
  for (int i = 0; i < 8; ++i) s.trace_id[static_cast<size_t>(i)] = static_cast<uint8_t>(n >> (8 * i));
  s.trace_id[15] = 1;
  for (int i = 0; i < 8; ++i) s.span_id[static_cast<size_t>(i)] = static_cast<uint8_t>(n >> (8 * i));
  s.span_id[7] = 0x80;
  s.kind = trace::SpanKind::kServer;
  s.name = "GET /item";
  s.endpoint = "GET /item";
  s.service_name = "svc";
  s.start_unix_ns = 1'700'000'000'000'000'000ull + n * 1000;
  s.end_unix_ns = s.start_unix_ns + 500'000;
  s.http_status = 200;
  return s;
}

ExporterOptions Options(int port) {
  ExporterOptions o;
  o.target = "127.0.0.1:" + std::to_string(port);
  o.identity.set_host_name("test-host");
  o.identity.set_node_id("node-1");
  o.max_batch_items = 100;
  o.flush_interval = 50ms;
  o.backoff_initial = 20ms;
  o.backoff_max = 200ms;
  return o;
}

TEST(SpanConvert, CopiesEveryField) {
  trace::Span s = MakeSpan(5);
  s.parent_span_id[0] = 9;
  s.parent_reason = trace::LinkReason::kTcpSequence;
  s.source = trace::SpanSource::kApplication;
  s.pid = 11;
  s.tid = 12;
  s.comm = "nginx";
  s.client = {"10.0.0.1", 4000};
  s.server = {"10.0.0.2", 80};
  s.protocol = protocols::L7Protocol::kGrpc;
  s.grpc_status = 14;
  s.request_tcp_seq = 77;
  s.request_seq_valid = true;
  s.attributes.push_back({"k", int64_t{3}});
  s.attributes.push_back({"d", 1.5});
  s.attributes.push_back({"b", true});
  s.request_headers.Add("x-h", "<script>");
  v1::Span p;
  SpanToProto(s, &p);
  EXPECT_EQ(p.trace_id().size(), 16u);
  EXPECT_EQ(p.parent_span_id()[0], 9);
  EXPECT_EQ(p.parent_reason(), v1::LINK_REASON_TCP_SEQUENCE);
  EXPECT_EQ(p.source(), v1::SPAN_SOURCE_APPLICATION);
  EXPECT_EQ(p.kind(), v1::SPAN_KIND_SERVER);
  EXPECT_EQ(p.client().address(), "10.0.0.1");
  EXPECT_EQ(p.server().port(), 80u);
  EXPECT_EQ(p.protocol(), v1::L7_PROTOCOL_GRPC);
  EXPECT_EQ(p.grpc_status(), 14);
  EXPECT_TRUE(p.has_request_tcp_seq());
  EXPECT_EQ(p.request_tcp_seq(), 77u);
  EXPECT_FALSE(p.has_response_tcp_seq());
  ASSERT_EQ(p.attributes_size(), 3);
  EXPECT_EQ(p.attributes(0).int_value(), 3);
  EXPECT_DOUBLE_EQ(p.attributes(1).double_value(), 1.5);
  EXPECT_TRUE(p.attributes(2).bool_value());
  EXPECT_EQ(p.request_headers(0).value(), "<script>");
  EXPECT_EQ(p.end_unix_ns() - p.start_unix_ns(), 500'000u);
}

TEST(Compression, ZlibAndGzipRoundTripThroughServerDecoder) {
  v1::Batch b;
  b.set_sequence(3);
  for (int i = 0; i < 50; ++i) SpanToProto(MakeSpan(static_cast<uint64_t>(i)), b.add_spans());
  const std::string raw = b.SerializeAsString();
  for (auto codec : {v1::COMPRESSION_ZLIB, v1::COMPRESSION_GZIP, v1::COMPRESSION_NONE}) {
    auto c = Compress(raw, codec);
    ASSERT_TRUE(c.ok());
    if (codec != v1::COMPRESSION_NONE) {
      EXPECT_LT(c->size(), raw.size() / 3);
    }
    v1::CompressedBatch cb;
    cb.set_compression(codec);
    cb.set_uncompressed_size(raw.size());
    cb.set_data(*c);
    auto back = server::DecodeCompressedBatch(cb);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->SerializeAsString(), raw);
    cb.set_data(c->substr(0, c->size() / 2));  // truncated
    if (codec != v1::COMPRESSION_NONE) {
      EXPECT_FALSE(server::DecodeCompressedBatch(cb).ok());
    }
  }
}

TEST(ServerExporter, DeliversEverySpanInBatches) {
  auto dir = TempDir();
  TestServer server(dir, FreePort());
  ServerExporter ex(Options(server.port()));
  ex.Start();
  for (uint64_t i = 0; i < 1050; ++i) ex.OnSpan(MakeSpan(i));
  ASSERT_TRUE(ex.Flush(10s));
  EXPECT_EQ(server.SpanCount(), 1050u);
  auto st = ex.stats();
  EXPECT_EQ(st.items_acked, 1050u);
  EXPECT_EQ(st.items_dropped_queue_full, 0u);
  EXPECT_GE(st.batches_acked, 11u);  // 100 per batch
  EXPECT_EQ(st.queued_items, 0u);
  EXPECT_GT(server.counters().bytes.load(), 0u);
  ex.Stop();
}

TEST(ServerExporter, TimeFlushSendsAPartialBatch) {
  auto dir = TempDir();
  TestServer server(dir, FreePort());
  ServerExporter ex(Options(server.port()));
  ex.Start();
  ex.OnSpan(MakeSpan(1));
  for (int i = 0; i < 100 && server.SpanCount() == 0; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(server.SpanCount(), 1u);  // no Flush(): the 50 ms timer sealed it
  ex.Stop();
}

TEST(ServerExporter, BoundedQueueDropsAndCounts) {
  ExporterOptions o = Options(FreePort());  // nobody listens
  o.max_queued_items = 100;
  ServerExporter ex(o);
  ex.Start();
  for (uint64_t i = 0; i < 150; ++i) ex.OnSpan(MakeSpan(i));
  std::this_thread::sleep_for(300ms);
  auto st = ex.stats();
  EXPECT_EQ(st.items_accepted, 100u);
  EXPECT_EQ(st.items_dropped_queue_full, 50u);
  EXPECT_EQ(st.queued_items, 100u);
  EXPECT_GE(st.connect_failures, 2u);   // kept retrying
  EXPECT_LE(st.connect_failures, 30u);  // but backed off (20 ms doubling, capped at 200 ms)
  ex.Stop(0ms);
}

// The queue's bytes in memory (the OTLP memory limiter's gauge): they grow
// with what waits and return to 0 once the server acknowledged everything.
TEST(ServerExporter, QueuedBytesFollowTheQueue) {
  auto dir = TempDir();
  const int port = FreePort();
  ExporterOptions o = Options(port);
  o.max_batch_items = 10;
  ServerExporter ex(o);
  ex.Start();
  for (uint64_t i = 0; i < 95; ++i) ex.OnSpan(MakeSpan(i));  // 9 sealed batches and an open one
  std::this_thread::sleep_for(200ms);
  const uint64_t waiting = ex.queued_bytes();
  EXPECT_GT(waiting, 95u * 20);  // compressed batches and the open batch's spans
  EXPECT_EQ(ex.stats().queued_bytes, waiting);
  TestServer server(dir, port);
  ASSERT_TRUE(ex.Flush(10s));
  EXPECT_EQ(server.SpanCount(), 95u);
  EXPECT_EQ(ex.queued_bytes(), 0u);
  ex.Stop(0ms);
}

TEST(ServerExporter, WrongTokenIsRefusedAndNothingIsLost) {
  auto dir = TempDir();
  const int port = FreePort();
  {
    TestServer server(dir, port, "secret");
    ExporterOptions o = Options(port);
    o.token = "wrong";
    ServerExporter ex(o);
    ex.Start();
    ex.OnSpan(MakeSpan(1));
    EXPECT_FALSE(ex.Flush(500ms));
    EXPECT_EQ(server.SpanCount(), 0u);
    EXPECT_EQ(ex.stats().queued_items, 1u);
    ex.Stop(0ms);
  }
  TestServer server(dir, port, "secret");
  ExporterOptions o = Options(port);
  o.token = "secret";
  ServerExporter ex(o);
  ex.Start();
  ex.OnSpan(MakeSpan(1));
  EXPECT_TRUE(ex.Flush(5s));
  EXPECT_EQ(server.SpanCount(), 1u);
}

TEST(ServerExporter, ServerRestartMidStreamLosesNothing) {
  auto dir = TempDir();
  const int port = FreePort();
  auto server = std::make_unique<TestServer>(dir, port);
  ServerExporter ex(Options(port));
  ex.Start();
  std::atomic<bool> done{false};
  std::atomic<uint64_t> produced{0};
  std::thread producer([&] {
    for (uint64_t i = 0; i < 20000; ++i) {
      ex.OnSpan(MakeSpan(i));
      produced = i + 1;
      if (i % 100 == 0) std::this_thread::sleep_for(2ms);
    }
    done = true;
  });
  std::this_thread::sleep_for(150ms);
  server->Stop();  // the server goes away mid-load ...
  std::this_thread::sleep_for(300ms);
  const uint64_t before_restart = produced.load();
  server = std::make_unique<TestServer>(dir, port);  // ... and comes back, same data dir
  producer.join();
  ASSERT_TRUE(ex.Flush(20s));
  auto st = ex.stats();
  EXPECT_GT(before_restart, 0u);
  EXPECT_EQ(st.items_dropped_queue_full, 0u);
  EXPECT_GE(st.connects, 2u);
  EXPECT_EQ(server->SpanCount(), 20000u);  // every span exactly once
  ex.Stop();
}

// Issue #17: the server is down, the agent restarts in between, the server
// comes back: with a spool directory nothing queued is lost, every span is
// stored exactly once (same instance id, same sequence space).
TEST(ServerExporter, SpoolSurvivesAnAgentRestartDuringAnOutage) {
  auto dir = TempDir();
  const int port = FreePort();
  ExporterOptions o = Options(port);
  o.spool_dir = (dir / "spool").string();
  std::string first_instance;
  {
    // Half of the spans reach the server before the outage.
    auto server = std::make_unique<TestServer>(dir, port);
    ServerExporter ex(o);
    ex.Start();
    first_instance = ex.instance_id();
    for (uint64_t i = 0; i < 500; ++i) ex.OnSpan(MakeSpan(i));
    ASSERT_TRUE(ex.Flush(10s));
    server.reset();  // outage
    for (uint64_t i = 500; i < 1000; ++i) ex.OnSpan(MakeSpan(i));
    EXPECT_FALSE(ex.Flush(300ms));
    ex.Stop(std::chrono::milliseconds(100));  // the agent restarts with 500 spans unacknowledged
  }
  ServerExporter restarted(o);
  EXPECT_EQ(restarted.instance_id(), first_instance);
  EXPECT_EQ(restarted.stats().items_restored, 500u);
  TestServer server(dir, port);  // the server is back
  restarted.Start();
  for (uint64_t i = 1000; i < 1100; ++i) restarted.OnSpan(MakeSpan(i));
  ASSERT_TRUE(restarted.Flush(20s));
  EXPECT_EQ(server.SpanCount(), 1100u);  // every span exactly once
  EXPECT_EQ(server.counters().rejected_batches.load(), 0u);
  restarted.Stop();
  // Everything acknowledged: the spool holds no batch any more.
  size_t batch_files = 0;
  for (const auto& e : std::filesystem::directory_iterator(o.spool_dir)) batch_files += e.path().extension() == ".batch";
  EXPECT_EQ(batch_files, 0u);
}

TEST(ServerExporter, FullSpoolCountsWhatItCannotKeep) {
  auto dir = TempDir();
  ExporterOptions o = Options(FreePort());  // nobody listens
  o.spool_dir = (dir / "spool").string();
  o.spool_max_bytes = 4096;
  ServerExporter ex(o);
  ex.Start();
  for (uint64_t i = 0; i < 1000; ++i) ex.OnSpan(MakeSpan(i));
  ex.Flush(200ms);
  auto st = ex.stats();
  EXPECT_GT(st.items_not_spooled, 0u);
  EXPECT_LE(st.spool_bytes, 4096u);
  EXPECT_EQ(st.items_accepted, 1000u);
  ex.Stop(std::chrono::milliseconds(0));
}

}  // namespace
}  // namespace sonde::exporter
