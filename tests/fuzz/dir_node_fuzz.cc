// libFuzzer target: DecodeDirNode (tree/codec.h) on arbitrary bytes.
// Checks: never crashes, leaks or over-allocates (ASan/UBSan, -malloc_limit_mb);
// a refusal is Corruption with a message; an accepted value satisfies every
// documented limit (fuzz_util.h CheckDirNode); decode -> encode is the identity
// (canonical encoding), re-decoding gives an equal value, no proper prefix is
// accepted, and no decoder of another object type accepts the same bytes.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/fuzz_util.h"
#include "tree/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hashfs;
  fuzz::CheckTreeDecoder<DirNode>(
      fuzz::AsView(data, size), ObjectType::kDirNode, [](std::string_view b) { return DecodeDirNode(b); },
      [](const DirNode& v) { return EncodeDirNode(v); }, [](const DirNode& v) { fuzz::CheckDirNode(v); });
  return 0;
}
