#include "server/ingest/ingest_service.h"

#include <zlib.h>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"

namespace sonde::server {

absl::StatusOr<v1::Batch> DecodeCompressedBatch(const v1::CompressedBatch& c,
                                                uint64_t max_uncompressed) {
  v1::Batch batch;
  if (c.compression() == v1::COMPRESSION_NONE) {
    if (!batch.ParseFromString(c.data())) return absl::InvalidArgumentError("batch does not parse");
    return batch;
  }
  if (c.compression() != v1::COMPRESSION_ZLIB && c.compression() != v1::COMPRESSION_GZIP)
    return absl::InvalidArgumentError(absl::StrCat("unknown compression ", c.compression()));
  if (c.uncompressed_size() > max_uncompressed)
    return absl::InvalidArgumentError("batch too large");
  std::string out;
  out.resize(c.uncompressed_size() ? c.uncompressed_size() : c.data().size() * 4 + 64);
  z_stream zs{};
  // 15 + 32: accept both zlib and gzip headers.
  if (inflateInit2(&zs, 15 + 32) != Z_OK) return absl::InternalError("inflateInit2");
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(c.data().data()));
  zs.avail_in = static_cast<uInt>(c.data().size());
  size_t produced = 0;
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    if (produced == out.size()) {
      if (out.size() >= max_uncompressed) {
        inflateEnd(&zs);
        return absl::InvalidArgumentError("batch too large");
      }
      out.resize(std::min<size_t>(out.size() * 2, max_uncompressed));
    }
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
    zs.avail_out = static_cast<uInt>(out.size() - produced);
    rc = inflate(&zs, Z_NO_FLUSH);
    produced = out.size() - zs.avail_out;
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&zs);
      return absl::InvalidArgumentError(absl::StrCat("inflate failed: ", rc));
    }
    if (rc == Z_OK && zs.avail_in == 0 && zs.avail_out != 0) {
      inflateEnd(&zs);
      return absl::InvalidArgumentError("truncated compressed batch");
    }
  }
  inflateEnd(&zs);
  if (!batch.ParseFromArray(out.data(), static_cast<int>(produced)))
    return absl::InvalidArgumentError("batch does not parse");
  return batch;
}

grpc::Status IngestService::Stream(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::IngestResponse, v1::IngestRequest>* stream) {
  ++counters_.streams;
  v1::IngestRequest req;
  if (!stream->Read(&req)) return grpc::Status::OK;
  if (!req.has_hello()) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "first message must be hello");
  }
  if (!token_.empty() && req.hello().token() != token_) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "bad token");
  }
  IngestContext ctx;
  ctx.host = req.hello().agent().host_name();
  ctx.node_id = req.hello().agent().node_id();
  ctx.instance_id = req.hello().agent().instance_id();
  if (ctx.host.empty()) ctx.host = context->peer();
  spdlog::info("ingest: agent {} ({}) connected from {}", ctx.host, ctx.instance_id, context->peer());

  while (stream->Read(&req)) {
    absl::StatusOr<v1::Batch> decoded;
    uint64_t seq = 0;
    if (req.has_batch()) {
      seq = req.batch().sequence();
      counters_.bytes += req.batch().ByteSizeLong();
      decoded = std::move(*req.mutable_batch());
    } else if (req.has_compressed_batch()) {
      seq = req.compressed_batch().sequence();
      counters_.bytes += req.compressed_batch().data().size();
      decoded = DecodeCompressedBatch(req.compressed_batch());
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
      auto stored = storage_->WriteBatch(ctx, *decoded);
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
