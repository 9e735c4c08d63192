#include "server/ingest/ingest_service.h"

#include <openssl/crypto.h>
#include <zlib.h>

#include <sys/statvfs.h>

#include <algorithm>
#include <chrono>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"

namespace sonde::server {

absl::StatusOr<v1::Batch> DecodeCompressedBatch(const v1::CompressedBatch& c, const BatchLimits& limits) {
  v1::Batch batch;
  if (c.compression() == v1::COMPRESSION_NONE) {
    if (c.data().size() > limits.max_uncompressed_bytes) return absl::ResourceExhaustedError("batch too large");
    if (auto shape = CheckBatchShape(c.data(), limits); !shape.ok()) return shape;
    if (!batch.ParseFromString(c.data())) return absl::InvalidArgumentError("batch does not parse");
    return batch;
  }
  if (c.compression() != v1::COMPRESSION_ZLIB && c.compression() != v1::COMPRESSION_GZIP)
    return absl::InvalidArgumentError(absl::StrCat("unknown compression ", c.compression()));
  // What the compressed bytes can possibly inflate to bounds the output, not
  // the sender's claim: 10 bytes claiming 256 MiB get a 10 KiB budget.
  const uint64_t cap = std::min<uint64_t>(limits.max_uncompressed_bytes,
                                          static_cast<uint64_t>(c.data().size()) * kMaxInflateRatio + 64);
  if (c.uncompressed_size() > cap)
    return absl::ResourceExhaustedError(absl::StrCat("batch claims ", c.uncompressed_size(),
                                                     " uncompressed bytes, more than the limit of ", cap));
  std::string out;
  // Grown as inflate produces: a claim is only a hint for the first step.
  out.resize(std::min<uint64_t>(std::max<uint64_t>(c.uncompressed_size(), c.data().size() * 4 + 64),
                                std::min<uint64_t>(cap, 1u << 20)));
  z_stream zs{};
  // 15 + 32: accept both zlib and gzip headers.
  if (inflateInit2(&zs, 15 + 32) != Z_OK) return absl::InternalError("inflateInit2");
  struct End {
    z_stream* z;
    ~End() { inflateEnd(z); }
  } end{&zs};
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(c.data().data()));
  zs.avail_in = static_cast<uInt>(c.data().size());
  size_t produced = 0;
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    if (produced == out.size()) {
      if (out.size() >= cap)
        return absl::ResourceExhaustedError(absl::StrCat("batch inflates past ", cap, " bytes"));
      out.resize(std::min<size_t>(out.size() * 2, cap));
    }
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
    zs.avail_out = static_cast<uInt>(out.size() - produced);
    rc = inflate(&zs, Z_NO_FLUSH);
    produced = out.size() - zs.avail_out;
    if (rc != Z_OK && rc != Z_STREAM_END) return absl::InvalidArgumentError(absl::StrCat("inflate failed: ", rc));
    if (rc == Z_OK && zs.avail_in == 0 && zs.avail_out != 0)
      return absl::InvalidArgumentError("truncated compressed batch");
  }
  std::string_view inflated(out.data(), produced);
  if (auto shape = CheckBatchShape(inflated, limits); !shape.ok()) return shape;
  if (!batch.ParseFromArray(inflated.data(), static_cast<int>(inflated.size())))
    return absl::InvalidArgumentError("batch does not parse");
  return batch;
}

grpc::Status IngestService::ClaimInstance(const std::string& instance_id, const std::string& peer_identity) {
  if (instance_id.empty()) return grpc::Status::OK;
  std::lock_guard<std::mutex> lock(instances_mu_);
  Instance& inst = instances_[instance_id];
  if (inst.connected)
    return grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                        "agent instance " + instance_id + " is already connected");
  if (inst.peer_identity.empty()) inst.peer_identity = peer_identity;
  else if (inst.peer_identity != peer_identity)
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        "agent instance " + instance_id + " belongs to another client certificate");
  inst.connected = true;
  return grpc::Status::OK;
}

IngestService::IngestService(Storage* storage, IngestOptions options)
    : storage_(storage), options_(std::move(options)) {
  hello_watch_ = std::thread([this] { WatchHellos(); });
}

IngestService::~IngestService() {
  {
    std::lock_guard<std::mutex> lock(hello_mu_);
    stopping_ = true;
  }
  hello_cv_.notify_all();
  hello_watch_.join();
}

void IngestService::WatchHellos() {
  std::unique_lock<std::mutex> lock(hello_mu_);
  while (!stopping_) {
    hello_cv_.wait_for(lock, std::chrono::milliseconds(200));
    const auto now = std::chrono::steady_clock::now();
    for (auto& [ctx, deadline] : awaiting_hello_) {
      if (deadline <= now) {
        ctx->TryCancel();  // the blocked Read returns false
        deadline = std::chrono::steady_clock::time_point::max();
      }
    }
  }
}

bool IngestService::DiskLow() {
  if (options_.disk_path.empty() && !options_.free_disk_bytes) return false;
  const int64_t now = std::chrono::steady_clock::now().time_since_epoch().count();
  int64_t last = disk_checked_ns_.load();
  if (now - last >= 1'000'000'000 && disk_checked_ns_.compare_exchange_strong(last, now)) {
    uint64_t free_bytes = UINT64_MAX;
    if (options_.free_disk_bytes) {
      free_bytes = options_.free_disk_bytes();
    } else if (struct statvfs vfs{}; statvfs(options_.disk_path.c_str(), &vfs) == 0) {
      free_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
    }
    const bool low = free_bytes < options_.min_free_disk_bytes;
    if (low != disk_low_.exchange(low)) {
      if (low) spdlog::error("ingest: {} bytes free under {}, below the watermark of {}: not storing batches",
                             free_bytes, options_.disk_path, options_.min_free_disk_bytes);
      else spdlog::info("ingest: free disk back above the watermark, storing again");
    }
  }
  return disk_low_.load();
}

void IngestService::ReleaseInstance(const std::string& instance_id) {
  if (instance_id.empty()) return;
  std::lock_guard<std::mutex> lock(instances_mu_);
  instances_[instance_id].connected = false;
}

grpc::Status IngestService::Stream(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::IngestResponse, v1::IngestRequest>* stream) {
  ++counters_.streams;
  // Each sync stream holds a server thread while open: bounded (issue #17).
  struct Slot {
    std::atomic<uint32_t>& n;
    ~Slot() { --n; }
  } slot{active_streams_};
  if (++active_streams_ > options_.max_streams) {
    ++counters_.refused_streams;
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "too many agent streams, retry later");
  }
  v1::IngestRequest req;
  {
    std::lock_guard<std::mutex> lock(hello_mu_);
    awaiting_hello_[context] = std::chrono::steady_clock::now() + options_.hello_timeout;
  }
  const bool got_first = stream->Read(&req);
  {
    std::lock_guard<std::mutex> lock(hello_mu_);
    awaiting_hello_.erase(context);
  }
  if (!got_first) {
    if (context->IsCancelled()) {
      ++counters_.refused_streams;
      return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "no hello in time");
    }
    return grpc::Status::OK;
  }
  if (!req.has_hello()) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "first message must be hello");
  }
  if (!options_.token.empty() &&
      (req.hello().token().size() != options_.token.size() ||
       CRYPTO_memcmp(req.hello().token().data(), options_.token.data(), options_.token.size()) != 0)) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "bad token");
  }
  IngestContext ctx;
  ctx.host = req.hello().agent().host_name();
  ctx.node_id = req.hello().agent().node_id();
  ctx.instance_id = req.hello().agent().instance_id();
  if (ctx.host.empty()) ctx.host = context->peer();
  ctx.max_sequence_jump = options_.batch.max_sequence_jump;
  std::string peer_identity;
  for (const auto& name : context->auth_context()->GetPeerIdentity()) peer_identity.append(name.data(), name.size());
  if (grpc::Status claimed = ClaimInstance(ctx.instance_id, peer_identity); !claimed.ok()) {
    ++counters_.refused_streams;
    spdlog::warn("ingest: refused {} from {}: {}", ctx.instance_id, context->peer(), claimed.error_message());
    return claimed;
  }
  struct Release {
    IngestService* self;
    const std::string& id;
    ~Release() { self->ReleaseInstance(id); }
  } release{this, ctx.instance_id};
  spdlog::info("ingest: agent {} ({}) connected from {}", ctx.host, ctx.instance_id, context->peer());

  while (stream->Read(&req)) {
    absl::StatusOr<v1::Batch> decoded;
    uint64_t seq = 0;
    if (req.has_batch()) {
      seq = req.batch().sequence();
      counters_.bytes += req.batch().ByteSizeLong();
      // Already parsed by gRPC (bounded by the max message size): counts only.
      if (static_cast<uint64_t>(req.batch().spans_size()) > options_.batch.max_spans)
        decoded = absl::ResourceExhaustedError("batch holds too many spans");
      else
        decoded = std::move(*req.mutable_batch());
    } else if (req.has_compressed_batch()) {
      seq = req.compressed_batch().sequence();
      counters_.bytes += req.compressed_batch().data().size();
      decoded = DecodeCompressedBatch(req.compressed_batch(), options_.batch);
    } else {
      continue;  // a repeated hello: ignore
    }
    v1::IngestResponse resp;
    resp.set_acked_sequence(seq);
    if (!decoded.ok()) {
      // A batch that can never be stored is acknowledged with an error so the
      // agent does not resend it forever.
      ++counters_.rejected_batches;
      resp.set_error(std::string(decoded.status().message()));
    } else {
      const auto spans = static_cast<uint64_t>(decoded->spans_size());
      if (DiskLow()) {
        ++counters_.refused_disk_full;
        // Not acknowledged: the agent keeps the batch and resends it later.
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "server disk almost full, retry later");
      }
      auto stored = storage_->WriteBatch(ctx, *decoded);
      if (!stored.ok() && stored.status().code() == absl::StatusCode::kInvalidArgument) {
        // Can never be stored (e.g. an absurd sequence jump): rejected, not retried.
        ++counters_.rejected_batches;
        resp.set_error(std::string(stored.status().message()));
        if (!stream->Write(resp)) break;
        continue;
      }
      if (!stored.ok()) {
        spdlog::error("ingest: storing batch {} from {}: {}", seq, ctx.host, stored.status().ToString());
        // Not acknowledged: the agent keeps it and resends after reconnecting.
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, std::string(stored.status().message()));
      }
      if (*stored) {
        ++counters_.batches;
        counters_.spans += spans;
      } else {
        ++counters_.duplicate_batches;
      }
    }
    if (!stream->Write(resp)) break;
  }
  spdlog::info("ingest: agent {} disconnected", ctx.host);
  return grpc::Status::OK;
}

}  // namespace sonde::server
