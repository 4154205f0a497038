// libFuzzer target: CLI REF[:PATH] parsing — cli::SplitRefPath (cli/ref_path.cc),
// Repository::Resolve and LookupPath — on a fixed repository (fuzz_repo.h)
// whose content is known from an independent model.
//
// Checks, for any argument string:
//  * SplitRefPath splits at the first ':' and loses nothing.
//  * Resolve agrees exactly with the model: VOLUME, VOLUME~N (1..9 decimal
//    digits), snapshot names, and 8..64-hex-digit commit-id prefixes
//    (case-insensitive) resolve to the model's commit; malformed REFs are
//    InvalidArgument, unknown ones NotFound; nothing else.
//  * LookupPath agrees with the model tree: '/'-separated, empty and "."
//    components ignored, ".." refused (InvalidArgument), descending through a
//    non-directory or a missing name is NotFound, hardlinks come back
//    resolved; the entry returned equals the model's entry exactly.
#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>

#include "cli/cli.h"
#include "tests/fuzz/fuzz_repo.h"
#include "tree/restore.h"

namespace {

using namespace hashfs;
using fuzz::FuzzRepo;
using fuzz::ModelNode;

FuzzRepo& Repo() {
  static std::unique_ptr<FuzzRepo> r = fuzz::BuildFuzzRepo();
  return *r;
}

// The model's answer for a REF: a digest, or the status code Resolve must give.
struct Expect {
  std::optional<Digest> digest;
  Status::Code code = Status::Code::kOk;
};

Expect ModelResolve(const FuzzRepo& r, std::string_view ref) {
  if (ref.empty()) return {std::nullopt, Status::Code::kInvalidArgument};
  if (auto tilde = ref.find('~'); tilde != std::string_view::npos) {
    std::string vol(ref.substr(0, tilde));
    std::string_view num = ref.substr(tilde + 1);
    if (num.empty() || num.size() > 9 || !std::all_of(num.begin(), num.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return {std::nullopt, Status::Code::kInvalidArgument};
    auto it = r.volumes.find(vol);
    if (it == r.volumes.end()) return {std::nullopt, Status::Code::kNotFound};
    size_t n = std::stoul(std::string(num));
    if (n >= it->second.size()) return {std::nullopt, Status::Code::kNotFound};
    return {it->second[it->second.size() - 1 - n], Status::Code::kOk};
  }
  if (auto it = r.volumes.find(std::string(ref)); it != r.volumes.end()) return {it->second.back(), Status::Code::kOk};
  if (auto it = r.snapshots.find(std::string(ref)); it != r.snapshots.end()) return {it->second, Status::Code::kOk};
  bool hex = std::all_of(ref.begin(), ref.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; });
  if (ref.size() >= 8 && ref.size() <= 64 && hex) {
    std::string lower(ref);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::optional<Digest> found;
    for (const auto& [d, tree] : r.trees) {
      (void)tree;
      if (d.Hex().compare(0, lower.size(), lower) == 0) {
        if (found && *found != d) return {std::nullopt, Status::Code::kInvalidArgument};
        found = d;
      }
    }
    if (found) return {found, Status::Code::kOk};
  }
  return {std::nullopt, Status::Code::kNotFound};
}

// The model's answer for a path inside a commit.
struct PathExpect {
  const ModelNode* node = nullptr;
  Status::Code code = Status::Code::kOk;
};

PathExpect ModelLookup(const ModelNode& root, std::string_view path) {
  const ModelNode* cur = &root;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view comp = path.substr(pos, slash - pos);
    pos = slash + 1;
    if (comp.empty() || comp == ".") continue;
    if (comp == "..") return {nullptr, Status::Code::kInvalidArgument};
    if (cur->entry.inode.type != FileType::kDirectory) return {nullptr, Status::Code::kNotFound};
    auto it = cur->kids.find(std::string(comp));
    if (it == cur->kids.end()) return {nullptr, Status::Code::kNotFound};
    cur = &it->second;
  }
  return {cur, Status::Code::kOk};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzRepo& r = Repo();
  std::string arg(fuzz::AsView(data, size));

  auto [ref, path] = cli::SplitRefPath(arg);
  size_t colon = arg.find(':');
  FUZZ_CHECK(ref.find(':') == std::string::npos);
  if (colon == std::string::npos) {
    FUZZ_CHECK(ref == arg && path.empty());
  } else {
    FUZZ_CHECK(ref + ":" + path == arg);
  }

  Result<Digest> got = r.repo->Resolve(ref);
  Expect want = ModelResolve(r, ref);
  if (want.digest) {
    FUZZ_CHECK_MSG(got.ok(), "'" + ref + "': " + got.status().ToString());
    FUZZ_CHECK(*got == *want.digest);
  } else {
    FUZZ_CHECK_MSG(!got.ok(), "'" + ref + "' resolved to " + got->Hex());
    FUZZ_CHECK_MSG(got.status().code() == want.code, "'" + ref + "': " + got.status().ToString());
    return 0;
  }

  Result<Commit> commit = r.repo->LoadCommit(*got);
  FUZZ_CHECK(commit.ok());
  const ModelNode& root = r.trees.at(*got);
  Result<Entry> e = LookupPath(*r.repo, *commit, path);
  PathExpect pw = ModelLookup(root, path);
  if (pw.node) {
    FUZZ_CHECK_MSG(e.ok(), "'" + path + "': " + e.status().ToString());
    FUZZ_CHECK(e->link_id == 0);
    FUZZ_CHECK(e->name == pw.node->entry.name);
    FUZZ_CHECK(e->inode == pw.node->entry.inode);
  } else {
    FUZZ_CHECK_MSG(!e.ok(), "'" + path + "' found " + e->name);
    FUZZ_CHECK_MSG(e.status().code() == pw.code, "'" + path + "': " + e.status().ToString());
  }
  return 0;
}
