// Writes the checked-in seed corpora of the fuzz targets:
//   fuzz_corpus_gen OUT_DIR     (OUT_DIR/<target>/seed-*; tests/fuzz/corpus)
// Seeds are real encodings: objects of the deterministic repository of
// fuzz_repo.h as stored and as plain tree objects, hand-built objects using
// every format feature, the repository's ref table, and REF[:PATH] strings.
// Hand-placed regression inputs (regress-*) in the corpus are not touched.
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>

#include "cas/object_codec.h"
#include "tests/fuzz/fuzz_repo.h"

namespace {

using namespace hashfs;
using fuzz::repo_detail::Must;

std::string g_out;
int g_written = 0;

void MkDir(const std::string& p) {
  if (mkdir(p.c_str(), 0755) != 0 && errno != EEXIST) {
    std::perror(p.c_str());
    std::exit(1);
  }
}

void Write(const std::string& target, const std::string& name, std::string_view bytes) {
  MkDir(g_out + "/" + target);
  std::string path = g_out + "/" + target + "/seed-" + name;
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) {
    std::cerr << "cannot write " << path << "\n";
    std::exit(1);
  }
  g_written++;
}

// A fixed write time, so regenerating gives the same files.
void FixWriteTime(std::string* stored) {
  for (size_t i = 0; i < 8; i++) (*stored)[10 + i] = static_cast<char>((1763800000ull >> (8 * i)) & 0xff);
}

const char* kFixedConfig =
    R"({"chunk_avg":16384,"chunk_max":65536,"chunk_min":4096,"created_ns":1763800000000000000,)"
    R"("format":"hashfs-repo-1","id":"0123456789abcdef0123456789abcdef","zstd_level":3})";

Inode Typed(FileType t) {
  Inode n;
  n.type = t;
  n.mode = 0644;
  n.uid = 1000;
  n.gid = 100;
  n.mtime_ns = 1700000000123456789;
  n.ctime_ns = -1;
  n.source_ino = 4242;
  switch (t) {
    case FileType::kRegular:
      n.chunks = {{Sha256Of("c1"), 100}, {Sha256Of("c2"), 200}};
      n.size = 300;
      break;
    case FileType::kDirectory: n.content = Sha256Of("dir"); break;
    case FileType::kSymlink:
      n.mode = 0777;
      n.symlink_target = "../target";
      n.size = n.symlink_target.size();
      break;
    case FileType::kCharDevice:
    case FileType::kBlockDevice: n.rdev = 0x0801; break;
    default: break;
  }
  return n;
}

DirNode RichLeaf() {
  DirNode n;
  auto add = [&](std::string name, Inode in, uint64_t link = 0) {
    Entry e;
    e.name = std::move(name);
    e.link_id = link;
    e.inode = std::move(in);
    n.entries.push_back(std::move(e));
  };
  add("blk", Typed(FileType::kBlockDevice));
  add("chr", Typed(FileType::kCharDevice));
  add("dir", Typed(FileType::kDirectory));
  add("fifo", Typed(FileType::kFifo));
  Inode hard;
  hard.type = FileType::kRegular;
  add("hard", hard, 7);
  Inode man = Typed(FileType::kRegular);
  man.chunks.clear();
  man.layout = ContentLayout::kManifest;
  man.content = Sha256Of("manifest");
  man.size = 1ull << 40;
  add("manifest", man);
  add("sock", Typed(FileType::kSocket));
  add("symlink", Typed(FileType::kSymlink));
  Inode x = Typed(FileType::kRegular);
  x.mode = 07755;
  x.xattrs = {{"security.selinux", "system_u:object_r:etc_t:s0"}, {"user.bin", std::string("\0\x01\xff", 3)},
              {"user.empty", ""}};
  add("xattrs", x);
  Inode zero = Typed(FileType::kRegular);
  zero.chunks.clear();
  zero.size = 0;
  add("zero", zero);
  return n;
}

void TreeSeeds() {
  Write("dir_node", "rich-leaf", EncodeDirNode(RichLeaf()));
  Write("dir_node", "empty-leaf", EncodeDirNode(DirNode{}));
  DirNode internal;
  internal.leaf = false;
  internal.bitmap = 0x8005;
  internal.children = {{Sha256Of("a"), 600}, {Sha256Of("b"), 1}, {Sha256Of("c"), 513}};
  Write("dir_node", "internal", EncodeDirNode(internal));

  LinkNode links;
  for (uint64_t id : {1ull, 2ull, ~0ull}) {
    Inode in = Typed(id == 2 ? FileType::kSymlink : FileType::kRegular);
    links.records.push_back({id, static_cast<uint32_t>(id == 1 ? 2 : 3), in});
  }
  Write("link_node", "leaf", EncodeLinkNode(links));
  LinkNode link_internal;
  link_internal.leaf = false;
  link_internal.bitmap = 0x0101;
  link_internal.children = {{Sha256Of("x"), 513}, {Sha256Of("y"), 2}};
  Write("link_node", "internal", EncodeLinkNode(link_internal));
  Write("link_node", "empty-leaf", EncodeLinkNode(LinkNode{}));

  FileNode f0;
  f0.refs = {{Sha256Of("k1"), 1 << 20}, {Sha256Of("k2"), 4096}};
  Write("file_node", "level0", EncodeFileNode(f0));
  FileNode f2;
  f2.level = 2;
  f2.refs = {{Sha256Of("m1"), 1ull << 33}};
  Write("file_node", "level2", EncodeFileNode(f2));

  Commit c;
  c.root = Typed(FileType::kDirectory);
  c.root.xattrs = {{"user.k", "v"}};
  c.links = Sha256Of("links");
  c.parent = Sha256Of("parent");
  c.time_ns = 1763800000000000000;
  c.description = "backup of /home\nsecond line";
  Write("commit", "rich", EncodeCommit(c));
  Commit first;
  first.root = Typed(FileType::kDirectory);
  Write("commit", "first", EncodeCommit(first));
}

void StoredSeeds() {
  std::string random;
  for (int i = 0; i < 300; i++) random.push_back(static_cast<char>((i * 7919 + 13) % 251));
  std::map<std::string, std::string> plains = {
      {"empty", ""},
      {"text", "hello, hashfs"},
      {"zeros", std::string(4096, '\0')},
      {"random", random},
      {"compressible", std::string(2000, 'a') + random + std::string(2000, 'b')},
      {"dir-node", EncodeDirNode(RichLeaf())},
  };
  for (const auto& [name, plain] : plains) {
    for (int level : {0, 3}) {
      for (ObjectKind kind : {ObjectKind::kData, ObjectKind::kMeta}) {
        PreparedObject p = PrepareObject(plain, kind, level);
        FixWriteTime(&p.stored);
        if (level == 0 && kind == ObjectKind::kMeta && name != "dir-node") continue;
        Write("stored_object", name + "-l" + std::to_string(level) + (kind == ObjectKind::kMeta ? "-meta" : "-data"),
              p.stored);
      }
    }
  }
}

void RepoSeeds() {
  auto r = fuzz::BuildFuzzRepo();
  // A few objects of each type, the smallest first (a big leaf of 600
  // entries would only slow the fuzzer down).
  std::map<char, std::vector<std::pair<std::string, std::string>>> by_type;  // type -> (plain, stored)
  Must(r->store.ForEachObject([&](const Digest& d, std::string_view stored) -> Status {
    std::string plain = Must(DecodeStoredObject(d, stored));
    char type = plain.size() >= 4 && plain[0] == 1 && plain[1] == 'f' ? plain[2] : '?';
    std::string fixed(stored);
    FixWriteTime(&fixed);
    by_type[type].emplace_back(plain, fixed);
    return Status::Ok();
  }));
  const std::map<char, std::string> target = {{'D', "dir_node"}, {'L', "link_node"}, {'F', "file_node"}, {'C', "commit"}};
  for (auto& [type, objs] : by_type) {
    std::sort(objs.begin(), objs.end(), [](const auto& a, const auto& b) { return a.first.size() < b.first.size(); });
    for (size_t i = 0; i < objs.size() && i < 3; i++) {
      std::string name = std::string("repo-") + type + std::to_string(i);
      if (auto it = target.find(type); it != target.end()) Write(it->second, name, objs[i].first);
      Write("stored_object", name, objs[i].second);
    }
  }

  // The whole ref table as records, and variations of it.
  std::vector<std::pair<std::string, std::string>> refs;
  Must(r->store.View([&](RefTxn& t) -> Status {
    HASHFS_ASSIGN_OR_RETURN(refs, t.List(""));
    return Status::Ok();
  }));
  for (auto& [k, v] : refs)
    if (k == "config") v = kFixedConfig;  // Init's is random (id, time)
  auto records = [](const std::vector<std::pair<std::string, std::string>>& kv) {
    std::string out;
    for (const auto& [k, v] : kv) {
      out.push_back(static_cast<char>(k.size()));
      out += k;
      out.push_back(static_cast<char>(v.size() & 0xff));
      out.push_back(static_cast<char>(v.size() >> 8));
      out += v;
    }
    return out;
  };
  Write("ref_records", "repo", records(refs));
  std::vector<std::pair<std::string, std::string>> no_config;
  for (const auto& kv : refs)
    if (kv.first != "config") no_config.push_back(kv);
  no_config.emplace_back("sess/00aa", R"({"pid":1,"host":"elsewhere","start":1763800000,"what":"backup"})");
  no_config.emplace_back("sess/00bb", R"({"pid":2147483646,"host":"localhost","start":1763800000,"what":"mount"})");
  no_config.emplace_back("sess/00cc", "not json");
  Write("ref_records", "sessions", records(no_config));
  Write("ref_records", "config",
        records({{"config", R"({"format":"hashfs-repo-1","id":"00ff","created_ns":1,"chunk_min":4096,)"
                            R"("chunk_avg":16384,"chunk_max":65536,"zstd_level":3})"},
                 {"gc/epoch", EncodeBE64(3)}}));
  std::string head = std::string(Digest::kSize, '\x11');
  Write("ref_records", "short-head",
        records({{"vol/a", head.substr(0, 31)}, {"hist/a/" + EncodeBE64(0), head}, {"snap/s", head}}));
  Write("ref_records", "history",
        records({{"vol/a", head + EncodeBE64(2)},
                 {"hist/a/" + EncodeBE64(0), head},
                 {"hist/a/" + EncodeBE64(2), std::string(Digest::kSize, '\x22')},
                 {"hist/ab/" + EncodeBE64(1), head},
                 {"gc/epoch", EncodeBE64(7)}}));

  // REF[:PATH] arguments.
  const std::string h0 = r->volumes["home"][0].Hex(), w0 = r->volumes["work"][0].Hex();
  std::string upper = h0.substr(0, 12);
  for (char& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  const std::vector<std::pair<std::string, std::string>> args = {
      {"volume", "home"},
      {"tilde", "home~2"},
      {"tilde-too-far", "home~3"},
      {"tilde-bad", "home~x"},
      {"snapshot-path", "snap-1:docs/a.txt"},
      {"abs-path", "keep:/big/f17"},
      {"hex-prefix", h0.substr(0, 8) + ":docs"},
      {"hex-full", w0 + ":with xattrs"},
      {"hex-upper", upper},
      {"through-symlink", "work:link/x"},
      {"dotdot", "home:docs/../big"},
      {"hardlink", "home~1:h2"},
      {"dots", "v.2-x_y~0:./docs//manual.pdf"},
      {"root", "home:"},
      {"empty", ""},
      {"tilde-only", "~1"},
      {"colons", "home:docs:a.txt"},
  };
  for (const auto& [name, a] : args) Write("ref_resolve", name, a);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz_corpus_gen OUT_DIR\n";
    return 2;
  }
  g_out = argv[1];
  MkDir(g_out);
  TreeSeeds();
  StoredSeeds();
  RepoSeeds();
  std::cout << "wrote " << g_written << " seed files under " << g_out << "\n";
  return 0;
}
