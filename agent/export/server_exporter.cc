#include "agent/export/server_exporter.h"

#include <fstream>

#include <random>

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include "agent/export/compression.h"
#include "agent/export/span_convert.h"

namespace sonde::exporter {
namespace {

std::string RandomInstanceId() {
  std::random_device rd;
  std::mt19937_64 gen((static_cast<uint64_t>(rd()) << 32) ^ rd() ^
                      static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(gen()),
                static_cast<unsigned long long>(gen()));
  return buf;
}

}  // namespace

ServerExporter::ServerExporter(ExporterOptions options) : options_(std::move(options)) {
  if (!options_.spool_dir.empty()) {
    auto spool = DiskSpool::Open(options_.spool_dir, options_.spool_max_bytes);
    if (spool.ok()) {
      spool_ = std::move(*spool);
    } else {
      spdlog::error("export: {}; queueing in memory only", spool.status().ToString());
    }
  }
  if (spool_ && !spool_->instance_id().empty()) {
    // The same sequence space as before the restart: the server drops what
    // it already stored, stores the rest.
    options_.identity.set_instance_id(spool_->instance_id());
    next_sequence_ = spool_->next_sequence();
    for (auto& b : spool_->TakeStored()) {
      Pending p;
      p.sequence = b.sequence;
      p.items = b.items;
      p.request = std::move(b.request);
      held_bytes_.fetch_add(p.request.ByteSizeLong(), std::memory_order_relaxed);
      queued_items_ += p.items;
      stats_.items_restored += p.items;
      queue_.push_back(std::move(p));
    }
    if (!queue_.empty())
      spdlog::info("export: {} batches ({} items) restored from {}", queue_.size(), queued_items_, options_.spool_dir);
  }
  if (options_.identity.instance_id().empty()) options_.identity.set_instance_id(RandomInstanceId());
  if (spool_ && spool_->instance_id().empty()) spool_->SetInstanceId(options_.identity.instance_id());
  if (options_.max_batch_items == 0) options_.max_batch_items = 1;
  open_since_ = std::chrono::steady_clock::now();
}

ServerExporter::~ServerExporter() { Stop(std::chrono::milliseconds(0)); }

void ServerExporter::Start() {
  std::lock_guard lock(mu_);
  if (sender_.joinable()) return;
  stopping_ = false;
  sender_ = std::thread([this] { SenderLoop(); });
}

void ServerExporter::Stop(std::chrono::milliseconds drain) {
  if (drain.count() > 0) Flush(drain);
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    if (auto* ctx = active_context_.load()) ctx->TryCancel();
  }
  cv_.notify_all();
  if (sender_.joinable()) sender_.join();
}

template <typename Fill>
bool ServerExporter::Append(size_t items, size_t bytes, Fill&& fill) {
  bool full;
  {
    std::lock_guard lock(mu_);
    if (queued_items_ + items > options_.max_queued_items) {
      stats_.items_dropped_queue_full += items;
      return false;
    }
    if (open_items_ == 0) open_since_ = std::chrono::steady_clock::now();
    fill(open_);
    open_items_ += items;
    open_bytes_ += bytes;
    held_bytes_.fetch_add(bytes, std::memory_order_relaxed);
    queued_items_ += items;
    stats_.items_accepted += items;
    full = open_items_ >= options_.max_batch_items || open_bytes_ >= options_.max_batch_bytes;
    if (full) {
      // Hand the full batch to the sender thread: serialising and compressing
      // it stay off the producer (the pipeline thread).
      Unsealed& u = to_seal_.emplace_back();
      u.batch.Swap(&open_);
      u.items = open_items_;
      u.bytes = open_bytes_;
      open_items_ = 0;
      open_bytes_ = 0;
    }
  }
  if (full) cv_.notify_all();
  return true;
}

void ServerExporter::OnSpan(const trace::Span& span) {
  v1::Span p;
  SpanToProto(span, &p);
  AddSpan(std::move(p));
}

bool ServerExporter::AddSpan(v1::Span span) {
  const size_t bytes = span.ByteSizeLong();
  return Append(1, bytes, [&](v1::Batch& b) { b.add_spans()->Swap(&span); });
}
bool ServerExporter::AddRedWindow(v1::RedWindow w) {
  const size_t bytes = w.ByteSizeLong();
  return Append(1, bytes, [&](v1::Batch& b) { b.add_red()->Swap(&w); });
}
bool ServerExporter::AddTcpWindow(v1::TcpWindow w) {
  const size_t bytes = w.ByteSizeLong();
  return Append(1, bytes, [&](v1::Batch& b) { b.add_tcp()->Swap(&w); });
}
bool ServerExporter::AddProfileStacks(const v1::ProfileBatch& profile) {
  const size_t bytes = profile.ByteSizeLong();
  return Append(static_cast<size_t>(profile.stacks_size()), bytes, [&](v1::Batch& b) {
    b.mutable_profile()->MergeFrom(profile);
  });
}
void ServerExporter::SetHostInfo(v1::HostInfo host) {
  std::lock_guard lock(mu_);
  host_ = std::move(host);
  host_pending_ = true;
}

void ServerExporter::Seal(bool include_open) {
  std::lock_guard seal_lock(seal_mu_);
  for (;;) {
    v1::Batch batch;
    size_t items;
    size_t unsealed_bytes;
    uint64_t seq;
    {
      std::lock_guard lock(mu_);
      if (!to_seal_.empty()) {
        batch.Swap(&to_seal_.front().batch);
        items = to_seal_.front().items;
        unsealed_bytes = to_seal_.front().bytes;
        to_seal_.pop_front();
      } else if (include_open && (open_items_ > 0 || host_pending_)) {
        batch.Swap(&open_);
        items = open_items_;
        unsealed_bytes = open_bytes_;
        open_items_ = 0;
        open_bytes_ = 0;
        include_open = false;
      } else {
        return;
      }
      if (host_pending_) {
        *batch.mutable_host() = host_;
        host_pending_ = false;
      }
      seq = next_sequence_++;
    }
    batch.set_sequence(seq);
    Pending p;
    p.sequence = seq;
    p.items = items;
    std::string raw = batch.SerializeAsString();
    auto compressed = Compress(raw, options_.compression, options_.compression_level);
    auto* cb = p.request.mutable_compressed_batch();
    cb->set_sequence(seq);
    cb->set_uncompressed_size(raw.size());
    if (compressed.ok()) {
      cb->set_compression(options_.compression);
      cb->set_data(std::move(*compressed));
    } else {
      cb->set_compression(v1::COMPRESSION_NONE);
      cb->set_data(std::move(raw));
    }
    // On disk before it is sendable: an ack can only remove a stored file.
    std::vector<DiskSpool::Batch> evicted;
    if (spool_) evicted = spool_->Store(seq, items, p.request);
    {
      std::lock_guard lock(mu_);
      // The batch is now its compressed request.
      held_bytes_.fetch_add(p.request.ByteSizeLong(), std::memory_order_relaxed);
      held_bytes_.fetch_sub(std::min<uint64_t>(unsealed_bytes, held_bytes_.load(std::memory_order_relaxed)),
                            std::memory_order_relaxed);
      queue_.push_back(std::move(p));
      ++stats_.batches_sealed;
      for (const auto& e : evicted) stats_.items_not_spooled += e.items;
      if (spool_) stats_.spool_bytes = spool_->bytes();
    }
    cv_.notify_all();
  }
}

bool ServerExporter::Flush(std::chrono::milliseconds timeout) {
  Seal(/*include_open=*/true);
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return queue_.empty() && open_items_ == 0 && to_seal_.empty(); });
}

ExporterStats ServerExporter::stats() const {
  std::lock_guard lock(mu_);
  ExporterStats s = stats_;
  s.queued_items = queued_items_;
  s.queued_bytes = held_bytes_.load(std::memory_order_relaxed);
  s.queued_batches = queue_.size();
  return s;
}

void ServerExporter::SleepBackoff(std::chrono::milliseconds* backoff) {
  // Full jitter in [backoff/2, backoff]: agents restarted together spread out.
  static thread_local std::mt19937 rng{std::random_device{}()};
  const auto ms = backoff->count();
  std::uniform_int_distribution<long> dist(ms / 2, std::max<long>(ms, 1));
  const auto wait = std::chrono::milliseconds(dist(rng));
  *backoff = std::min(options_.backoff_max, *backoff * 2);
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, wait, [&] { return stopping_; });
}

void ServerExporter::SenderLoop() {
  auto backoff = options_.backoff_initial;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    const bool progressed = RunStream();
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    if (progressed) backoff = options_.backoff_initial;
    SleepBackoff(&backoff);
  }
}

std::shared_ptr<grpc::ChannelCredentials> ServerExporter::Credentials() const {
  if (!options_.tls()) return grpc::InsecureChannelCredentials();
  auto read = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  };
  grpc::SslCredentialsOptions ssl;
  if (!options_.tls_ca_file.empty()) ssl.pem_root_certs = read(options_.tls_ca_file);
  if (!options_.tls_cert_file.empty()) {
    ssl.pem_cert_chain = read(options_.tls_cert_file);
    ssl.pem_private_key = read(options_.tls_key_file);
  }
  return grpc::SslCredentials(ssl);
}

bool ServerExporter::RunStream() {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 3000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetMaxSendMessageSize(64 << 20);
  // A fresh channel per attempt: our back-off decides when to retry, not
  // the channel's own (much longer) reconnect back-off.
  auto channel = grpc::CreateCustomChannel(options_.target, Credentials(), args);
  auto stub = v1::Ingest::NewStub(channel);
  grpc::ClientContext ctx;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return false;
    active_context_ = &ctx;
    stream_broken_ = false;
    for (auto& p : queue_) p.written = false;
  }
  auto clear_ctx = [&] {
    std::lock_guard lock(mu_);
    active_context_ = nullptr;
  };
  auto stream = stub->Stream(&ctx);
  v1::IngestRequest hello;
  *hello.mutable_hello()->mutable_agent() = options_.identity;
  hello.mutable_hello()->set_token(options_.token);
  if (!stream->Write(hello)) {
    auto st = stream->Finish();
    clear_ctx();
    std::lock_guard lock(mu_);
    ++stats_.connect_failures;
    spdlog::debug("export: connect {} failed: {}", options_.target, st.error_message());
    return false;
  }
  {
    std::lock_guard lock(mu_);
    ++stats_.connects;
    stats_.connected = true;
  }
  spdlog::info("export: connected to {}", options_.target);

  std::atomic<bool> acked_any{false};
  std::thread reader([&] {
    v1::IngestResponse resp;
    while (stream->Read(&resp)) {
      std::lock_guard lock(mu_);
      if (!resp.error().empty()) {
        ++stats_.batches_rejected;
        spdlog::warn("export: server rejected batch {}: {}", resp.acked_sequence(), resp.error());
      }
      while (!queue_.empty() && queue_.front().sequence <= resp.acked_sequence()) {
        if (spool_) spool_->Remove(queue_.front().sequence);
        held_bytes_.fetch_sub(std::min<uint64_t>(queue_.front().request.ByteSizeLong(),
                                                 held_bytes_.load(std::memory_order_relaxed)),
                              std::memory_order_relaxed);
        queued_items_ -= queue_.front().items;
        stats_.items_acked += queue_.front().items;
        ++stats_.batches_acked;
        queue_.pop_front();
      }
      acked_any = true;
      cv_.notify_all();
    }
    std::lock_guard lock(mu_);
    stream_broken_ = true;
    cv_.notify_all();
  });

  bool ok = true;
  while (ok) {
    const v1::IngestRequest* next = nullptr;
    Pending* pending = nullptr;
    {
      std::unique_lock lock(mu_);
      auto deadline = open_since_ + options_.flush_interval;
      cv_.wait_until(lock, deadline, [&] {
        if (stopping_ || stream_broken_) return true;
        if (!to_seal_.empty()) return true;
        size_t in_flight = 0;
        for (auto& p : queue_) {
          if (!p.written) return in_flight < options_.max_in_flight;
          ++in_flight;
        }
        return false;
      });
      if (stopping_ || stream_broken_) break;
      size_t in_flight = 0;
      for (auto& p : queue_) {
        if (!p.written) {
          if (in_flight < options_.max_in_flight) pending = &p;
          break;
        }
        ++in_flight;
      }
      if (!pending) {
        const bool due = open_items_ > 0 && std::chrono::steady_clock::now() >= open_since_ + options_.flush_interval;
        const bool full_waiting = !to_seal_.empty();
        if (!due && open_items_ == 0) open_since_ = std::chrono::steady_clock::now();
        lock.unlock();
        if (due || full_waiting) Seal(/*include_open=*/due);
        continue;
      }
      pending->written = true;
      next = &pending->request;
      ++stats_.batches_written;
      stats_.bytes_written += next->compressed_batch().data().size();
    }
    // The queue's deque never moves its elements on push_back/pop_front of
    // other elements, and only the reader pops (after this batch is acked,
    // which cannot happen before it is written), so `next` stays valid.
    ok = stream->Write(*next);
    if (!ok) {
      std::lock_guard lock(mu_);
      pending->written = false;
    }
  }
  ctx.TryCancel();
  reader.join();
  stream->Finish();
  clear_ctx();
  {
    std::lock_guard lock(mu_);
    stats_.connected = false;
    ++stats_.stream_failures;
    // Everything not acked goes out again on the next stream.
    for (auto& p : queue_) {
      if (p.written) ++stats_.batches_resent;
      p.written = false;
    }
  }
  spdlog::info("export: stream to {} ended", options_.target);
  return acked_any;
}

}  // namespace sonde::exporter
