#include "agent/capture/recording.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace sonde::capture {
namespace {

class RecordingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (std::filesystem::temp_directory_path() /
             ("sonde_rec_" + std::to_string(getpid()) + "_" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name()))
                .string();
  }
  void TearDown() override { std::filesystem::remove(path_); }

  static std::vector<uint8_t> MakeData(const std::string& payload, uint64_t sock_id) {
    std::vector<uint8_t> buf(sizeof(sonde_data_event) + payload.size());
    auto* ev = reinterpret_cast<sonde_data_event*>(buf.data());
    ev->hdr.type = SONDE_EVENT_DATA;
    ev->hdr.size = static_cast<uint32_t>(buf.size());
    ev->hdr.pid = 42;
    ev->sock_id = sock_id;
    ev->bytes = payload.size();
    ev->payload_len = static_cast<uint32_t>(payload.size());
    std::memcpy(ev->payload, payload.data(), payload.size());
    return buf;
  }

  std::vector<std::vector<uint8_t>> ReadAll(RecordedFileSource& src) {
    std::vector<std::vector<uint8_t>> out;
    for (;;) {
      auto st = src.Poll(0, [&](RawEvent ev) { out.emplace_back(ev.begin(), ev.end()); });
      if (absl::IsOutOfRange(st)) break;
      EXPECT_TRUE(st.ok()) << st;
    }
    return out;
  }

  std::string path_;
};

TEST_F(RecordingTest, RoundTripKeepsEveryByteAndTheHeader) {
  std::vector<std::vector<uint8_t>> written;
  {
    auto w = RecordingWriter::Create(path_, {.monotonic_to_realtime_ns = 123456789, .capture_bytes = 4096});
    ASSERT_TRUE(w.ok()) << w.status();
    for (int i = 0; i < 1000; ++i) {
      written.push_back(MakeData("GET /item/" + std::to_string(i) + " HTTP/1.1\r\n\r\n", 7 + i % 3));
      ASSERT_TRUE((*w)->Write(written.back()).ok());
    }
    ASSERT_TRUE((*w)->Flush().ok());
    EXPECT_EQ((*w)->records(), 1000u);
  }
  auto src = RecordedFileSource::Open(path_);
  ASSERT_TRUE(src.ok()) << src.status();
  (*src)->set_batch(64);  // several polls
  EXPECT_EQ((*src)->header().monotonic_to_realtime_ns, 123456789u);
  EXPECT_EQ((*src)->header().capture_bytes, 4096u);
  auto read = ReadAll(**src);
  ASSERT_EQ(read.size(), written.size());
  EXPECT_EQ(read, written);
  EXPECT_EQ((*src)->counters().events, 1000u);
  EXPECT_EQ((*src)->counters().malformed, 0u);
}

TEST_F(RecordingTest, TornTailIsCountedNotFatal) {
  {
    auto w = RecordingWriter::Create(path_, {});
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Write(MakeData("first", 1)).ok());
    ASSERT_TRUE((*w)->Write(MakeData("second", 1)).ok());
    ASSERT_TRUE((*w)->Flush().ok());
  }
  const auto full = std::filesystem::file_size(path_);
  std::filesystem::resize_file(path_, full - 3);  // recorder killed mid-record
  auto src = RecordedFileSource::Open(path_);
  ASSERT_TRUE(src.ok());
  auto read = ReadAll(**src);
  EXPECT_EQ(read.size(), 1u);
  EXPECT_EQ((*src)->counters().malformed, 1u);
}

TEST_F(RecordingTest, GarbageLengthIsCounted) {
  {
    auto w = RecordingWriter::Create(path_, {});
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Write(MakeData("ok", 1)).ok());
    ASSERT_TRUE((*w)->Flush().ok());
  }
  {
    std::ofstream f(path_, std::ios::app | std::ios::binary);
    const uint32_t huge = 0x7fffffff;
    f.write(reinterpret_cast<const char*>(&huge), 4);
    f << "garbage";
  }
  auto src = RecordedFileSource::Open(path_);
  ASSERT_TRUE(src.ok());
  EXPECT_EQ(ReadAll(**src).size(), 1u);
  EXPECT_EQ((*src)->counters().malformed, 1u);
}

TEST_F(RecordingTest, RejectsFilesThatAreNotRecordings) {
  { std::ofstream(path_) << "definitely not a recording"; }
  auto src = RecordedFileSource::Open(path_);
  ASSERT_FALSE(src.ok());
  EXPECT_NE(src.status().message().find("bad magic"), absl::string_view::npos);
  EXPECT_TRUE(absl::IsNotFound(RecordedFileSource::Open(path_ + ".missing").status()));
}

}  // namespace
}  // namespace sonde::capture
