// Text the agent reads from /proc or the kernel (process names, argv, symbol
// names) may be any octets. It travels in bytes fields: proto3 rejects a
// string field holding invalid UTF-8 when parsing, which lost the whole batch
// at the server (found by fuzzing the server's batch decoder).
#include <gtest/gtest.h>

#include "sonde/v1/ingest.pb.h"
#include "sonde/v1/profile.pb.h"

namespace sonde {
namespace {

TEST(WireText, InvalidUtf8ProcessAndProfileTextSurvivesTheWire) {
  const std::string odd = std::string("ngx\xff\xfe", 5) + std::string("\xc3", 1);  // not UTF-8
  v1::Batch batch;
  v1::ProcessInfo* p = batch.add_processes();
  p->set_pid(7);
  p->set_comm(odd);
  p->set_cmdline(odd + " --flag");
  p->set_service_name(odd);
  v1::ProfileBatch profile;
  v1::FoldedStack* s = profile.add_stacks();
  s->set_stack(odd + ";main");
  s->set_comm(odd);
  s->set_thread_name(odd);

  v1::Batch batch_back;
  ASSERT_TRUE(batch_back.ParseFromString(batch.SerializeAsString()));
  EXPECT_EQ(batch_back.processes(0).comm(), odd);
  EXPECT_EQ(batch_back.processes(0).cmdline(), odd + " --flag");
  v1::ProfileBatch profile_back;
  ASSERT_TRUE(profile_back.ParseFromString(profile.SerializeAsString()));
  EXPECT_EQ(profile_back.stacks(0).stack(), odd + ";main");
  EXPECT_EQ(profile_back.stacks(0).thread_name(), odd);
}

}  // namespace
}  // namespace sonde
