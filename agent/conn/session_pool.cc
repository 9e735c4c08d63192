#include "agent/conn/session_pool.h"

#include <algorithm>

namespace sonde::conn {

std::unique_ptr<protocols::ProtocolSession> SessionPool::Take(const protocols::ProtocolDefinition& def,
                                                              protocols::Role role, bool late_join) {
  const auto slot = static_cast<size_t>(def.protocol);
  if (slot < kSlots && !parked_[slot].empty()) {
    std::unique_ptr<protocols::ProtocolSession> s = std::move(parked_[slot].back());
    parked_[slot].pop_back();
    low_water_[slot] = std::min(low_water_[slot], parked_[slot].size());
    s->Reassign(role, late_join);  // Park renewed it
    ++renewed_;
    return s;
  }
  return def.make_session(role, late_join);
}

bool SessionPool::Park(protocols::L7Protocol protocol, std::unique_ptr<protocols::ProtocolSession>& session) {
  const auto slot = static_cast<size_t>(protocol);
  // Renewed now as well as when taken: a parked session holds no role or
  // records of its last connection, and one that cannot renew is not parked.
  if (slot >= kSlots || !session->Renew(protocols::Role::kUnknown, /*late_join=*/false)) return false;
  if (parked_[slot].size() < max_parked_) {
    parked_[slot].push_back(std::move(session));
  } else {
    session.reset();
  }
  return true;
}

size_t SessionPool::parked() const {
  size_t n = 0;
  for (const auto& v : parked_) n += v.size();
  return n;
}

void SessionPool::Clear() {
  for (auto& v : parked_) v.clear();
  low_water_.fill(0);
}

void SessionPool::Trim() {
  for (size_t i = 0; i < kSlots; ++i) {
    auto& v = parked_[i];
    v.resize(v.size() - std::min(v.size(), low_water_[i]));
    if (v.empty()) std::vector<std::unique_ptr<protocols::ProtocolSession>>().swap(v);
    low_water_[i] = v.size();
  }
}

}  // namespace sonde::conn
