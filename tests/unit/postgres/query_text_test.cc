// db.query.text normalisation, operation and table extraction.
#include <gtest/gtest.h>

#include "agent/protocols/postgres/query_text.h"

namespace sonde::protocols::postgres {
namespace {

TEST(PostgresQueryText, LiteralsBecomePlaceholders) {
  EXPECT_EQ(NormalizeQuery("SELECT * FROM users WHERE name = 'O''Brien' AND id = 42"),
            "SELECT * FROM users WHERE name = ? AND id = ?");
  EXPECT_EQ(NormalizeQuery("select 1.5e-3, -7, 0x1F, .5"), "select ?, -?, ?, ?");
  EXPECT_EQ(NormalizeQuery("SELECT E'a\\'b', B'0101', X'ff', $$body 'x'$$, $tag$ 1 $tag$"),
            "SELECT ?, ?, ?, ?, ?");
  EXPECT_EQ(NormalizeQuery("UPDATE t SET v = v + $1 WHERE id = $2"), "UPDATE t SET v = v + $1 WHERE id = $2");
  EXPECT_EQ(NormalizeQuery("SELECT col1, \"Weird 'col'\" FROM t2"), "SELECT col1, \"Weird 'col'\" FROM t2");
}

TEST(PostgresQueryText, CommentsAndWhitespaceCollapse) {
  EXPECT_EQ(NormalizeQuery("  SELECT  a -- the password is 'hunter2'\n FROM\t/* 'x' */ t ;"), "SELECT a FROM t");
  EXPECT_EQ(NormalizeQuery("INSERT INTO t (a, b) VALUES (1, 'x');"), "INSERT INTO t (a, b) VALUES (?, ?)");
}

TEST(PostgresQueryText, UnterminatedLiteralsAndBoundedLength) {
  EXPECT_EQ(NormalizeQuery("SELECT 'never closed"), "SELECT ?");
  EXPECT_EQ(NormalizeQuery("SELECT $$never closed"), "SELECT ?");
  const std::string long_sql = "SELECT " + std::string(10000, 'a');
  EXPECT_EQ(NormalizeQuery(long_sql, 100).size(), 100u);
}

TEST(PostgresQueryText, OperationAndCollection) {
  struct Case {
    const char* sql;
    const char* op;
    const char* table;
  };
  for (const Case& c : {Case{"select abalance from pgbench_accounts where aid = $1", "SELECT", "pgbench_accounts"},
                        Case{"UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2", "UPDATE",
                             "pgbench_tellers"},
                        Case{"INSERT INTO pgbench_history (tid) VALUES ($1)", "INSERT", "pgbench_history"},
                        Case{"DELETE FROM ONLY public.t WHERE x = 1", "DELETE", "public.t"},
                        Case{"SELECT (SELECT max(a) FROM inner_t) FROM outer_t", "SELECT", "outer_t"},
                        Case{"WITH x AS (SELECT 1 FROM a) UPDATE b SET c = 1", "UPDATE", "b"},
                        Case{"BEGIN", "BEGIN", ""},
                        Case{"end", "END", ""},
                        Case{"SELECT 1", "SELECT", ""},
                        Case{"", "", ""},
                        Case{"(SELECT 1)", "", ""}}) {
    const std::string n = NormalizeQuery(c.sql);
    EXPECT_EQ(OperationName(n), c.op) << c.sql;
    EXPECT_EQ(CollectionName(n, OperationName(n)), c.table) << c.sql;
  }
}

TEST(PostgresQueryText, GarbageNeverThrows) {
  std::string junk;
  for (int i = 0; i < 4096; ++i) junk.push_back(static_cast<char>((i * 131 + 7) % 256));
  for (size_t n = 0; n < junk.size(); n += 97) {
    const std::string q = NormalizeQuery(std::string_view(junk).substr(n));
    EXPECT_LE(q.size(), kMaxQueryText);
    (void)CollectionName(q, OperationName(q));
  }
}

}  // namespace
}  // namespace sonde::protocols::postgres
