// REF[:PATH] argument parsing: pure, no store access (the libFuzzer target
// tests/fuzz/ref_resolve_fuzz.cc links this file alone).
#include "cli/cli.h"

namespace hashfs::cli {

std::pair<std::string, std::string> SplitRefPath(const std::string& arg) {
  auto colon = arg.find(':');
  if (colon == std::string::npos) return {arg, ""};
  return {arg.substr(0, colon), arg.substr(colon + 1)};
}

}  // namespace hashfs::cli
