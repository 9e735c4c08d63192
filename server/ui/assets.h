#pragma once
// The web UI's files, embedded into the sonde-server binary at build time
// (server/ui/CMakeLists.txt: npm ci, copy, .incbin). Embedding keeps the
// server one self-contained file: an installed or copied binary always serves
// the UI it was built with, with no install-dir lookup that can go stale.
#include <cstddef>
#include <string_view>

namespace sonde::server {

struct UiAsset {
  const char* path;  // "index.html", "vendor/d3.min.js"
  const char* content_type;
  const unsigned char* data;
  size_t size;
};

const UiAsset* FindUiAsset(std::string_view path);
size_t UiAssetCount();
const char* UiContentType(std::string_view path);

}  // namespace sonde::server
