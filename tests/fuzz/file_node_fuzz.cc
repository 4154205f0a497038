// libFuzzer target: DecodeFileNode (tree/codec.h) on arbitrary bytes.
// Checks: never crashes, leaks or over-allocates (ASan/UBSan, -malloc_limit_mb);
// a refusal is Corruption with a message; an accepted value satisfies every
// documented limit (fuzz_util.h CheckFileNode); decode -> encode is the identity
// (canonical encoding), re-decoding gives an equal value, no proper prefix is
// accepted, and no decoder of another object type accepts the same bytes.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/fuzz_util.h"
#include "tree/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hashfs;
  fuzz::CheckTreeDecoder<FileNode>(
      fuzz::AsView(data, size), ObjectType::kFileNode, [](std::string_view b) { return DecodeFileNode(b); },
      [](const FileNode& v) { return EncodeFileNode(v); }, [](const FileNode& v) { fuzz::CheckFileNode(v); });
  return 0;
}
