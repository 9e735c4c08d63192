#include "agent/profile/folded.h"

#include <gtest/gtest.h>

namespace sonde::profile {
namespace {

TEST(Folded, FoldsUserThenKernelOutermostFirst) {
  EXPECT_EQ(FoldStack({"leaf", "mid", "main"}, {"schedule", "do_sys"}),
            "main;mid;leaf;do_sys_[k];schedule_[k]");
  EXPECT_EQ(FoldStack({}, {}), "[no stack]");
  EXPECT_EQ(FoldStack({"a;b\n"}, {}), "a:b");
}

ProfileWindow Window(uint64_t start, std::vector<ProcessProfile> p) {
  ProfileWindow w;
  w.start_unix_ns = start;
  w.end_unix_ns = start + 10;
  w.processes = std::move(p);
  return w;
}

TEST(Folded, NormalizeMergesIdenticalStacks) {
  ProfileWindow w = Window(0, {{7, "nginx", 0,
                                {{1, "w", 0, 1, "main;a", 3},
                                 {1, "w", 0, 1, "main;b", 1},
                                 {1, "w", 0, 1, "main;a", 2},
                                 {2, "w", 0, 1, "main;a", 5}}},
                               {3, "curl", 0, {{3, "c", 0, 1, "main", 4}}},
                               {7, "", 0, {{1, "w", 0, 1, "main;b", 9}}}});
  Normalize(w);
  ASSERT_EQ(w.processes.size(), 2u);
  EXPECT_EQ(w.processes[0].pid, 3u);
  const ProcessProfile& nginx = w.processes[1];
  EXPECT_EQ(nginx.process_name, "nginx");
  EXPECT_EQ(nginx.total, 20u);
  ASSERT_EQ(nginx.stacks.size(), 3u);
  EXPECT_EQ(nginx.stacks[0].stack, "main;b");  // 1 + 9, largest first
  EXPECT_EQ(nginx.stacks[0].value, 10u);
  EXPECT_EQ(nginx.stacks[1].value, 5u);  // tid 1 main;a = 3 + 2 (ties keep tid order)
  EXPECT_EQ(nginx.stacks[1].tid, 1u);
  EXPECT_EQ(nginx.stacks[2].value, 5u);  // tid 2 kept apart from tid 1
  EXPECT_EQ(nginx.stacks[2].tid, 2u);
}

TEST(Folded, MergeAcrossWindowsWithThreadAndTimeFilter) {
  std::vector<ProfileWindow> ws = {
      Window(0, {{7, "nginx", 0, {{1, "w", 0, 100, "main;a", 3}, {2, "w", 0, 100, "main;a", 4}}}}),
      Window(100, {{7, "nginx", 0, {{1, "w", 100, 200, "main;a", 5}, {1, "w", 100, 200, "main;c", 1}}},
                   {8, "other", 0, {{8, "o", 100, 200, "main;a", 50}}}})};
  auto all = MergeFolded(ws, {});
  EXPECT_EQ(all["main;a"], 62u);
  EXPECT_EQ(all["main;c"], 1u);

  FoldedQuery q;
  q.pid = 7;
  q.tid = 1;
  auto t1 = MergeFolded(ws, q);
  EXPECT_EQ(t1["main;a"], 8u);
  q.from_unix_ns = 150;  // "CPU during this span": only the second slot overlaps
  q.to_unix_ns = 160;
  auto span = MergeFolded(ws, q);
  EXPECT_EQ(span["main;a"], 5u);
  EXPECT_EQ(span["main;c"], 1u);

  FoldedQuery named;
  named.prefix_process_name = true;
  named.pid = 8;
  auto n = MergeFolded(ws, named);
  EXPECT_EQ(n.begin()->first, "other (8);main;a");
}

TEST(Folded, TextRoundTrip) {
  std::map<std::string, uint64_t> m = {{"main;a b;c", 3}, {"main", 7}};
  std::string text = ToFoldedText(m);
  EXPECT_EQ(text, "main 7\nmain;a b;c 3\n");
  auto back = ParseFoldedText(text + "junk\nmain 1\n");
  EXPECT_EQ(back["main"], 8u);
  EXPECT_EQ(back["main;a b;c"], 3u);
}

}  // namespace
}  // namespace sonde::profile
