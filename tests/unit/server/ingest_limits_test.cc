// Hostile ingest input (issue #17), against the real IngestService over
// SQLite on loopback gRPC: batches are refused on their wire bytes before
// they are inflated or built (peak RSS checked), one client cannot write into
// another agent's sequence space, and streams are bounded.
#include <gtest/gtest.h>

#include <grpcpp/grpcpp.h>
#include <zlib.h>

#include <fstream>
#include <thread>

#include "tests/testlib/peak_rss.h"
#include "server/ingest/batch_limits.h"
#include "server/ingest/ingest_grpc_server.h"
#include "server/ingest/ingest_service.h"
#include "server/store/storage.h"
#include "tests/testlib/grpc_wire.h"
#include "tests/unit/server/test_util.h"

namespace sonde::server {
namespace {

using namespace std::chrono_literals;

using sonde::testlib::PeakRssKiB;

std::string Deflate(const std::string& plain) {
  uLongf n = compressBound(plain.size());
  std::string out(n, '\0');
  compress2(reinterpret_cast<Bytef*>(out.data()), &n, reinterpret_cast<const Bytef*>(plain.data()), plain.size(), 9);
  out.resize(n);
  return out;
}

v1::CompressedBatch Compressed(const v1::Batch& b) {
  v1::CompressedBatch c;
  c.set_sequence(b.sequence());
  c.set_compression(v1::COMPRESSION_ZLIB);
  std::string plain = b.SerializeAsString();
  c.set_uncompressed_size(plain.size());
  c.set_data(Deflate(plain));
  return c;
}

TEST(BatchLimits, ClaimedSizeIsNotTrusted) {
  v1::CompressedBatch c;
  c.set_sequence(1);
  c.set_compression(v1::COMPRESSION_ZLIB);
  c.set_uncompressed_size(256u << 20);
  c.set_data(Deflate("0123456789").substr(0, 10));
  const long before = PeakRssKiB();
  auto decoded = DecodeCompressedBatch(c);
  const long after = PeakRssKiB();
  std::printf("10 bytes claiming 256 MiB: %s, peak RSS %ld -> %ld KiB\n", decoded.status().ToString().c_str(),
              before, after);
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_LT(after - before, 4 * 1024);
  // Without a claim the output still stops where zlib's ratio ends.
  c.set_uncompressed_size(0);
  EXPECT_FALSE(DecodeCompressedBatch(c).ok());
}

TEST(BatchLimits, MillionsOfEmptySpansAreRefusedBeforeTheyAreBuilt) {
  // 4M empty spans: field 2, length 0 -> "\x12\x00" each, 8 MB inflated.
  std::string plain;
  plain.reserve(8u << 20);
  for (int i = 0; i < 4'000'000; ++i) plain.append("\x12\x00", 2);
  v1::CompressedBatch c;
  c.set_sequence(1);
  c.set_compression(v1::COMPRESSION_ZLIB);
  c.set_uncompressed_size(plain.size());
  c.set_data(Deflate(plain));
  std::string().swap(plain);
  const long before = PeakRssKiB();
  auto decoded = DecodeCompressedBatch(c);
  const long after = PeakRssKiB();
  std::printf("4M empty spans in %zu bytes: %s, peak RSS %ld -> %ld KiB\n", c.data().size(),
              decoded.status().ToString().c_str(), before, after);
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_LT(after - before, 24 * 1024);  // the 8 MB inflated, not 1.26 GB of messages
}

TEST(BatchLimits, MessageCountCoversNestedMessages) {
  v1::Batch b;
  b.set_sequence(1);
  auto span = testing::MakeSpan({.trace = 1, .id = 1});
  for (int i = 0; i < 100; ++i) span.add_request_headers()->set_name("h");
  *b.add_spans() = span;
  BatchLimits limits;
  limits.max_messages = 50;
  auto st = CheckBatchShape(b.SerializeAsString(), limits);
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted) << st;
  limits.max_messages = 1000;
  EXPECT_TRUE(CheckBatchShape(b.SerializeAsString(), limits).ok());
  EXPECT_EQ(CheckBatchShape("\x12\x05\x01", limits).code(), absl::StatusCode::kInvalidArgument);
}

TEST(BatchLimits, RealBatchesDecode) {
  v1::Batch b;
  b.set_sequence(7);
  for (int i = 1; i <= 2000; ++i) *b.add_spans() = testing::MakeSpan({.trace = 1, .id = static_cast<uint64_t>(i)});
  auto decoded = DecodeCompressedBatch(Compressed(b));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->spans_size(), 2000);
  EXPECT_EQ(decoded->sequence(), 7u);
}

// In-process ingest endpoint.
class IngestLimitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StorageOptions o;
    o.path = (dir_.path() / "sonde.db").string();
    auto s = OpenStorage(o);
    ASSERT_TRUE(s.ok());
    storage_ = std::move(*s);
  }
  // The ingest gRPC server as sonde-server starts it (ingest_grpc_server.h).
  void Start(IngestOptions options, size_t max_message_bytes = 8u << 20) {
    IngestServerConfig config;
    config.listen = "127.0.0.1:0";
    config.max_message_bytes = max_message_bytes;
    config.max_streams = options.max_streams;
    service_ = std::make_unique<IngestService>(storage_.get(), std::move(options));
    server_ = StartIngestServer(service_.get(), config, &port_);
    ASSERT_TRUE(server_);
    stub_ = v1::Ingest::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                                                    grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + 500ms);
  }

  struct Client {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReaderWriter<v1::IngestRequest, v1::IngestResponse>> stream;
  };
  std::unique_ptr<Client> Connect(const std::string& instance) {
    auto c = std::make_unique<Client>();
    c->stream = stub_->Stream(&c->ctx);
    v1::IngestRequest hello;
    hello.mutable_hello()->mutable_agent()->set_instance_id(instance);
    hello.mutable_hello()->mutable_agent()->set_host_name(instance + "-host");
    c->stream->Write(hello);
    return c;
  }
  // Sends one span in batch `seq`; the ack's error ("" when stored), or
  // "<no ack: status>" when the stream ended.
  static std::string Send(Client& c, uint64_t seq, uint64_t span_id) {
    v1::Batch b;
    b.set_sequence(seq);
    *b.add_spans() = testing::MakeSpan({.trace = span_id, .id = span_id, .start_ns = testing::NowNs(),
                                        .end_ns = testing::NowNs() + 1000});
    v1::IngestRequest req;
    *req.mutable_compressed_batch() = Compressed(b);
    v1::IngestResponse resp;
    if (!c.stream->Write(req) || !c.stream->Read(&resp)) {
      c.stream->WritesDone();
      grpc::Status st = c.stream->Finish();
      return "<no ack: " + std::to_string(st.error_code()) + " " + st.error_message() + ">";
    }
    return resp.error();
  }
  static grpc::Status Close(Client& c) {
    c.stream->WritesDone();
    return c.stream->Finish();
  }
  uint64_t StoredSpans() { return storage_->Stats().spans; }

  testing::TempDir dir_;
  std::unique_ptr<Storage> storage_;
  std::unique_ptr<IngestService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::Ingest::Stub> stub_;
  int port_ = 0;
};

TEST_F(IngestLimitsTest, AnotherClientCannotTakeOverAnAgentsSequenceSpace) {
  Start({});
  auto victim = Connect("agent-a");
  ASSERT_EQ(Send(*victim, 1, 1), "");
  // While the agent is connected, its instance id cannot be used elsewhere.
  auto intruder = Connect("agent-a");
  std::string r = Send(*intruder, uint64_t{1} << 62, 99);
  EXPECT_NE(r.find("already connected"), std::string::npos) << r;
  // Once it is gone, an absurd jump is refused instead of making the real
  // agent's next batches look like duplicates.
  ASSERT_TRUE(Close(*victim).ok());
  std::this_thread::sleep_for(100ms);
  auto intruder2 = Connect("agent-a");
  r = Send(*intruder2, uint64_t{1} << 62, 98);
  EXPECT_NE(r.find("jumps"), std::string::npos) << r;
  Close(*intruder2);
  std::this_thread::sleep_for(100ms);
  auto back = Connect("agent-a");
  EXPECT_EQ(Send(*back, 2, 2), "");
  EXPECT_EQ(StoredSpans(), 2u);
  EXPECT_EQ(service_->counters().duplicate_batches.load(), 0u);
  EXPECT_GE(service_->counters().refused_streams.load(), 1u);
  EXPECT_EQ(service_->counters().rejected_batches.load(), 1u);
  Close(*back);
}

TEST_F(IngestLimitsTest, StreamsAreBounded) {
  IngestOptions o;
  o.max_streams = 2;
  Start(o);
  auto a = Connect("a"), b = Connect("b");
  ASSERT_EQ(Send(*a, 1, 1), "");
  ASSERT_EQ(Send(*b, 1, 2), "");
  auto c = Connect("c");
  std::string r = Send(*c, 1, 3);
  EXPECT_NE(r.find(std::to_string(grpc::StatusCode::RESOURCE_EXHAUSTED)), std::string::npos) << r;
  Close(*a);
  std::this_thread::sleep_for(100ms);
  auto d = Connect("d");
  EXPECT_EQ(Send(*d, 1, 4), "");
  Close(*b);
  Close(*d);
}

TEST_F(IngestLimitsTest, BelowTheFreeDiskWatermarkBatchesWaitInTheAgent) {
  std::atomic<uint64_t> free_bytes{100u << 20};
  IngestOptions o;
  o.min_free_disk_bytes = 512u << 20;
  o.free_disk_bytes = [&] { return free_bytes.load(); };
  Start(o);
  auto a = Connect("a");
  std::string r = Send(*a, 1, 1);
  EXPECT_NE(r.find("disk almost full"), std::string::npos) << r;
  EXPECT_NE(r.find(std::to_string(grpc::StatusCode::UNAVAILABLE)), std::string::npos) << r;
  EXPECT_EQ(StoredSpans(), 0u);
  EXPECT_EQ(service_->counters().refused_disk_full.load(), 1u);
  // Retention can still delete (the watermark left it room).
  EXPECT_TRUE(storage_->EnforceRetention(testing::NowNs(), RetentionPolicy{}).ok());
  free_bytes = 10u << 30;
  std::this_thread::sleep_for(1100ms);  // sampled once a second
  auto b = Connect("a");
  EXPECT_EQ(Send(*b, 1, 1), "");  // the resend is stored
  EXPECT_EQ(StoredSpans(), 1u);
  Close(*b);
}

TEST_F(IngestLimitsTest, IdleStreamsWithoutHelloDoNotHoldSlots) {
  IngestOptions o;
  o.max_streams = 2;
  o.hello_timeout = std::chrono::milliseconds(300);
  Start(o);
  // Two connections that never say hello take both slots ...
  Client idle1, idle2;
  idle1.stream = stub_->Stream(&idle1.ctx);
  idle2.stream = stub_->Stream(&idle2.ctx);
  std::this_thread::sleep_for(800ms);  // ... until their hello is late
  auto a = Connect("a");
  EXPECT_EQ(Send(*a, 1, 1), "");
  EXPECT_GE(service_->counters().refused_streams.load(), 2u);
  Close(*a);
  idle1.stream->WritesDone();
  idle2.stream->WritesDone();
  EXPECT_EQ(idle1.stream->Finish().error_code(), grpc::StatusCode::CANCELLED);  // cancelled by the server
  EXPECT_EQ(idle2.stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(IngestLimitsTest, OversizeBatchesAreAckedWithAnErrorNotStored) {
  IngestOptions o;
  o.batch.max_spans = 10;
  Start(o);
  auto a = Connect("a");
  v1::Batch b;
  b.set_sequence(1);
  for (int i = 1; i <= 11; ++i) *b.add_spans() = testing::MakeSpan({.trace = 1, .id = static_cast<uint64_t>(i)});
  v1::IngestRequest req;
  *req.mutable_compressed_batch() = Compressed(b);
  v1::IngestResponse resp;
  ASSERT_TRUE(a->stream->Write(req));
  ASSERT_TRUE(a->stream->Read(&resp));
  EXPECT_NE(resp.error().find("more than 10 spans"), std::string::npos) << resp.error();
  EXPECT_EQ(StoredSpans(), 0u);
  EXPECT_EQ(Send(*a, 2, 5), "");  // the stream goes on
  Close(*a);
}

// Checks before gRPC parses: an uncompressed batch over the message size is
// refused on its length, and a gRPC-compressed message is never inflated.
TEST_F(IngestLimitsTest, OversizeMessagesAreRefusedBeforeTheyAreParsed) {
  Start(IngestOptions{}, 1u << 20);
  auto a = Connect("a");
  v1::IngestRequest req;
  req.mutable_batch()->set_sequence(1);
  *req.mutable_batch()->add_spans() = testing::MakeSpan({.trace = 1, .id = 1});
  req.mutable_batch()->mutable_spans(0)->set_name(std::string(2u << 20, 'x'));
  a->stream->Write(req);
  a->stream->WritesDone();
  grpc::Status st = a->stream->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
  EXPECT_EQ(StoredSpans(), 0u);
}

TEST_F(IngestLimitsTest, GrpcCompressedBombIsNotInflated) {
  Start(IngestOptions{});
  const std::string path = (dir_.path() / "ingest_bomb.bin").string();
  {
    std::ofstream out(path, std::ios::binary);
    out << sonde::testing::GzipBombGrpcMessage(256u << 20);  // ~256 KiB on the wire
  }
  const long before = PeakRssKiB();
  const std::string head = sonde::testing::CurlGrpc(port_, "sonde.v1.Ingest/Stream", path);
  const long after = PeakRssKiB();
  std::printf("7070: gRPC message of 256 KiB gzip inflating to 256 MiB: %s peak RSS %ld -> %ld KiB\n",
              head.c_str(), before, after);
  if (head.find("HTTP/2") == std::string::npos) GTEST_SKIP() << "curl without HTTP/2: " << head;
  // The compressed bytes do not parse as a request: the stream ends there
  // (before any Hello, so with no error to report) and nothing is inflated.
  EXPECT_NE(head.find("grpc-status:"), std::string::npos) << head;
  EXPECT_LT(after - before, 16 * 1024);
  EXPECT_EQ(StoredSpans(), 0u);
}

}  // namespace
}  // namespace sonde::server
