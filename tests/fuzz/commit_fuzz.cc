// libFuzzer target: DecodeCommit (tree/codec.h) on arbitrary bytes.
// Checks: never crashes, leaks or over-allocates (ASan/UBSan, -malloc_limit_mb);
// a refusal is Corruption with a message; an accepted value satisfies every
// documented limit (fuzz_util.h CheckCommit); decode -> encode is the identity
// (canonical encoding), re-decoding gives an equal value, no proper prefix is
// accepted, and no decoder of another object type accepts the same bytes.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/fuzz_util.h"
#include "tree/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hashfs;
  fuzz::CheckTreeDecoder<Commit>(
      fuzz::AsView(data, size), ObjectType::kCommit, [](std::string_view b) { return DecodeCommit(b); },
      [](const Commit& v) { return EncodeCommit(v); }, [](const Commit& v) { fuzz::CheckCommit(v); });
  return 0;
}
