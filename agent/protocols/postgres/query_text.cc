#include "agent/protocols/postgres/query_text.h"

namespace sonde::protocols::postgres {
namespace {

bool IsIdentStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (c & 0x80); }
bool IsIdentChar(char c) { return IsIdentStart(c) || (c >= '0' && c <= '9') || c == '$'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
char Upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; }

// Index past a quoted run starting at `i` (the opening quote), '' (or "")
// doubled quotes staying inside; `backslash`: E'' strings escape with '\'.
size_t SkipQuoted(std::string_view s, size_t i, char quote, bool backslash) {
  ++i;
  while (i < s.size()) {
    if (backslash && s[i] == '\\') {
      i += 2;
      continue;
    }
    if (s[i] == quote) {
      if (i + 1 < s.size() && s[i + 1] == quote) {
        i += 2;
        continue;
      }
      return i + 1;
    }
    ++i;
  }
  return s.size();
}

// A dollar-quote opening tag at `i` ("$$" or "$tag$"): its length, 0 when none.
size_t DollarTag(std::string_view s, size_t i) {
  if (s[i] != '$') return 0;
  size_t j = i + 1;
  if (j < s.size() && IsDigit(s[j])) return 0;  // $1: a parameter
  while (j < s.size() && IsIdentChar(s[j]) && s[j] != '$') ++j;
  if (j < s.size() && s[j] == '$') return j - i + 1;
  return 0;
}

bool EqualsWord(std::string_view word, std::string_view upper) {
  if (word.size() != upper.size()) return false;
  for (size_t i = 0; i < word.size(); ++i) {
    if (Upper(word[i]) != upper[i]) return false;
  }
  return true;
}

// Words of normalised text one by one (identifiers, keywords; quoted identifiers kept whole).
class Words {
 public:
  explicit Words(std::string_view s) : s_(s) {}
  // The next word, or "" at the end. Punctuation is skipped, except that
  // `stop_at_paren` reports "(" as a word.
  std::string_view Next() {
    while (pos_ < s_.size()) {
      const char c = s_[pos_];
      if (c == '"') {
        const size_t start = pos_;
        pos_ = SkipQuoted(s_, pos_, '"', false);
        return s_.substr(start, pos_ - start);
      }
      if (IsIdentStart(c)) {
        const size_t start = pos_;
        while (pos_ < s_.size() && (IsIdentChar(s_[pos_]) || s_[pos_] == '.' || s_[pos_] == '"')) {
          if (s_[pos_] == '"') {
            pos_ = SkipQuoted(s_, pos_, '"', false);
          } else {
            ++pos_;
          }
        }
        return s_.substr(start, pos_ - start);
      }
      if (c == '(') {
        ++pos_;
        return "(";
      }
      if (c == ')') {
        ++pos_;
        return ")";
      }
      ++pos_;
    }
    return {};
  }

 private:
  std::string_view s_;
  size_t pos_ = 0;
};

}  // namespace

std::string NormalizeQuery(std::string_view s, size_t max_length) {
  std::string out;
  out.reserve(std::min(s.size(), max_length));
  bool pending_space = false;
  auto put = [&](std::string_view text) {
    if (pending_space && !out.empty()) out.push_back(' ');
    pending_space = false;
    out.append(text);
  };
  size_t i = 0;
  while (i < s.size() && out.size() < max_length) {
    const char c = s[i];
    if (IsSpace(c)) {
      pending_space = true;
      ++i;
      continue;
    }
    if (c == '-' && i + 1 < s.size() && s[i + 1] == '-') {  // -- comment
      const size_t nl = s.find('\n', i);
      i = nl == std::string_view::npos ? s.size() : nl + 1;
      pending_space = true;
      continue;
    }
    if (c == '/' && i + 1 < s.size() && s[i + 1] == '*') {  // /* comment */
      const size_t end = s.find("*/", i + 2);
      i = end == std::string_view::npos ? s.size() : end + 2;
      pending_space = true;
      continue;
    }
    if (c == '\'') {
      i = SkipQuoted(s, i, '\'', false);
      put("?");
      continue;
    }
    if ((c == 'E' || c == 'e' || c == 'B' || c == 'b' || c == 'X' || c == 'x' || c == 'N' || c == 'n') &&
        i + 1 < s.size() && s[i + 1] == '\'' && (i == 0 || !IsIdentChar(s[i - 1]))) {
      i = SkipQuoted(s, i + 1, '\'', c == 'E' || c == 'e');
      put("?");
      continue;
    }
    if (c == '"') {
      const size_t end = SkipQuoted(s, i, '"', false);
      put(s.substr(i, end - i));
      i = end;
      continue;
    }
    if (c == '$') {
      if (const size_t tag = DollarTag(s, i); tag != 0) {
        const size_t close = s.find(s.substr(i, tag), i + tag);
        i = close == std::string_view::npos ? s.size() : close + tag;
        put("?");
        continue;
      }
      // $1: a parameter stays.
      size_t j = i + 1;
      while (j < s.size() && IsDigit(s[j])) ++j;
      put(s.substr(i, j - i));
      i = j;
      continue;
    }
    if (IsDigit(c) || (c == '.' && i + 1 < s.size() && IsDigit(s[i + 1]))) {
      // A number (not part of an identifier: those are consumed whole below).
      size_t j = i;
      while (j < s.size() && (IsDigit(s[j]) || s[j] == '.' || s[j] == '_' ||
                              ((s[j] == 'e' || s[j] == 'E') && j + 1 < s.size() &&
                               (IsDigit(s[j + 1]) || s[j + 1] == '-' || s[j + 1] == '+')) ||
                              ((s[j] == '-' || s[j] == '+') && j > i && (s[j - 1] == 'e' || s[j - 1] == 'E')) ||
                              (j == i + 1 && s[i] == '0' && (s[j] == 'x' || s[j] == 'X')) ||
                              (j > i + 1 && (s[i + 1] == 'x' || s[i + 1] == 'X') &&
                               ((s[j] >= 'a' && s[j] <= 'f') || (s[j] >= 'A' && s[j] <= 'F'))))) {
        ++j;
      }
      put("?");
      i = j;
      continue;
    }
    if (IsIdentStart(c)) {
      size_t j = i;
      while (j < s.size() && IsIdentChar(s[j])) ++j;
      put(s.substr(i, j - i));
      i = j;
      continue;
    }
    // Punctuation / operators: one character, no space before ',', ')', ';' or after '('.
    if (c == ',' || c == ')' || c == ';' || c == '.') pending_space = false;
    put(std::string_view(&s[i], 1));
    if (c == '(' || c == '.') pending_space = false;
    ++i;
  }
  if (out.size() > max_length) out.resize(max_length);
  while (!out.empty() && (out.back() == ' ' || out.back() == ';')) out.pop_back();
  return out;
}

std::string OperationName(std::string_view normalized) {
  Words words(normalized);
  std::string_view w = words.Next();
  if (EqualsWord(w, "WITH")) {
    // WITH [RECURSIVE] name [(cols)] AS [NOT] [MATERIALIZED] ( ... ) [, ...] <statement>
    int depth = 0;
    for (std::string_view x = words.Next(); !x.empty(); x = words.Next()) {
      if (x == "(") {
        ++depth;
      } else if (x == ")") {
        --depth;
      } else if (depth == 0 && (EqualsWord(x, "SELECT") || EqualsWord(x, "INSERT") || EqualsWord(x, "UPDATE") ||
                                EqualsWord(x, "DELETE") || EqualsWord(x, "MERGE"))) {
        w = x;
        break;
      }
    }
  }
  if (w.empty() || w == "(" || w == ")" || w[0] == '"') return {};
  std::string op;
  op.reserve(w.size());
  for (char c : w) {
    if (c == '.') return {};
    op.push_back(Upper(c));
  }
  return op;
}

std::string CollectionName(std::string_view normalized, std::string_view operation) {
  std::string_view after;  // keyword that precedes the table
  if (operation == "SELECT" || operation == "DELETE") {
    after = "FROM";
  } else if (operation == "INSERT" || operation == "MERGE") {
    after = "INTO";
  } else if (operation == "UPDATE" || operation == "COPY" || operation == "TRUNCATE" || operation == "LOCK") {
    after = operation;
  } else {
    return {};
  }
  Words words(normalized);
  int depth = 0;
  bool found_operation = operation == after ? false : true;
  for (std::string_view w = words.Next(); !w.empty(); w = words.Next()) {
    if (w == "(") {
      ++depth;
      continue;
    }
    if (w == ")") {
      --depth;
      continue;
    }
    if (depth != 0) continue;
    if (!found_operation) {
      found_operation = EqualsWord(w, operation);
      if (!found_operation) continue;
      after = operation;
    }
    if (!EqualsWord(w, after)) continue;
    std::string_view table = words.Next();
    if (EqualsWord(table, "ONLY") || EqualsWord(table, "TABLE")) table = words.Next();
    if (table.empty() || table == "(" || table == ")") return {};
    return std::string(table);
  }
  return {};
}

}  // namespace sonde::protocols::postgres
