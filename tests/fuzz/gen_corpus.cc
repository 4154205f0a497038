// Writes the checked-in seed corpora of the fuzz targets:
//   fuzz_corpus_gen OUT_DIR     (OUT_DIR/<target>/seed-*; tests/fuzz/corpus)
// Seeds are real encodings: objects of the deterministic repository of
// fuzz_repo.h as stored and as plain tree objects, hand-built objects using
// every format feature, the repository's ref table, and REF[:PATH] strings;
// for the remote targets, packs of the repository's objects sealed with the
// fixed key (deterministic nonces) and as plaintext plans, the messages and
// records the remote writes, and Discord answers as Discord sends them.
// Hand-placed regression inputs (regress-*) in the corpus are not touched.
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "cas/object_codec.h"
#include "remote/discord_api.h"
#include "remote/split.h"
#include "tests/fuzz/fuzz_repo.h"
#include "tests/fuzz/remote_fuzz.h"

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


// ---------------------------------------------------------------------------
// Remote targets

std::string Mode(uint8_t m, std::string_view rest) { return std::string(1, static_cast<char>(m)) + std::string(rest); }

struct Obj {
  Digest d;
  ObjectKind kind;
  std::string frame;  // as uploaded: write time zeroed (a piece's or descriptor's bytes)
  remote::EntryType type = remote::EntryType::kObject;
};

// The plaintext plan pack_fuzz.cc reads: pack id | u8 n | n x (u16 len | frame) | index plaintext.
std::string PlanBytes(const fuzz::PackPlan& plan) {
  std::string s = plan.pack_id;
  s.push_back(static_cast<char>(plan.frames.size()));
  for (const auto& f : plan.frames) {
    if (f.size() > 0xffff) {
      std::cerr << "frame too large for a plan\n";
      std::exit(1);
    }
    fuzz::PutLE(&s, f.size(), 2);
    s += f;
  }
  return s + plan.index_plain;
}

// A pack of `objs` as PackWriter lays it out, sealed with the fixed key; the
// result is checked against PackWriter and DecodePack.
std::pair<fuzz::PackPlan, std::string> MakePack(const std::vector<Obj>& objs, uint8_t id_seed,
                                                std::vector<remote::PackEntry>* entries) {
  const remote::MasterKey& key = fuzz::FixedKey();
  fuzz::PackPlan plan;
  plan.pack_id = fuzz::Pattern(remote::kPackIdSize, 13, id_seed);
  uint64_t at = remote::kPackHeaderSize;
  entries->clear();
  remote::PackWriter w(key, remote::kDefaultPackLimit);
  for (const auto& o : objs) {
    remote::PackEntry e;
    e.keyed_id = o.type == remote::EntryType::kPiece ? key.PieceKeyedId(o.d) : key.KeyedId(o.d);
    e.digest = o.d;
    e.offset = at;
    e.length = static_cast<uint32_t>(o.frame.size() + remote::kSealOverhead);
    e.kind = o.kind;
    e.type = o.type;
    at += e.length;
    entries->push_back(e);
    plan.frames.push_back(o.frame);
    plan.aad_ids.push_back(e.keyed_id);
    w.Add(e.keyed_id, e.digest, e.kind, o.frame, e.type);
  }
  plan.index_plain = fuzz::EncodeIndexPlain(*entries);
  std::vector<fuzz::Placed> placed;
  std::string pack = fuzz::AssemblePack(key, plan, &placed);
  auto [wbytes, widx] = w.Finish();
  auto idx = remote::DecodePack(key, pack);
  if (!idx.ok() || wbytes.size() != pack.size() || !fuzz::SameEntries(idx->entries, *entries) ||
      widx.entries.size() != entries->size()) {
    std::cerr << "assembled pack does not match PackWriter's: " << idx.status().ToString() << "\n";
    std::exit(1);
  }
  for (size_t i = 0; i < entries->size(); i++)
    if (widx.entries[i].offset != (*entries)[i].offset || widx.entries[i].length != (*entries)[i].length) {
      std::cerr << "assembled pack layout differs from PackWriter's\n";
      std::exit(1);
    }
  return {plan, pack};
}

std::string Kdf(uint64_t n, uint64_t r, uint64_t p) {
  const std::string salt = remote::Base64Encode(fuzz::Pattern(16, 29, 5));
  return nlohmann::json({{"alg", "scrypt"}, {"n", n}, {"r", r}, {"p", p}, {"salt", salt}}).dump();
}

std::string Response(int status, const std::vector<std::pair<std::string, std::string>>& headers, std::string_view body) {
  std::string s = std::to_string(status) + "\n";
  for (const auto& [k, v] : headers) s += k + ": " + v + "\n";
  return s + "\n" + std::string(body);
}

void RemoteSeeds() {
  using remote::PackEntry;
  const remote::MasterKey& key = fuzz::FixedKey();
  auto r = fuzz::BuildFuzzRepo();

  // Objects: hand-made ones (raw, compressed, meta) and the repository's smallest of each type.
  std::vector<Obj> objs;
  auto add = [&](std::string_view plain, ObjectKind kind, int level) {
    Digest d = Sha256Of(plain);
    objs.push_back({d, kind, remote::FrameForUpload(d, plain, kind, level).stored});
  };
  add("hello, hashfs", ObjectKind::kData, 0);
  add(std::string(4096, 'z'), ObjectKind::kData, 3);
  add(EncodeDirNode(RichLeaf()), ObjectKind::kMeta, 3);
  std::map<char, std::pair<std::string, Digest>> smallest;
  Must(r->store.ForEachObject([&](const Digest& d, std::string_view stored) -> Status {
    std::string plain = Must(DecodeStoredObject(d, stored));
    char type = plain.size() >= 4 && plain[0] == 1 && plain[1] == 'f' ? plain[2] : '?';
    auto it = smallest.find(type);
    if (it == smallest.end() || plain.size() < it->second.first.size() ||
        (plain.size() == it->second.first.size() && d < it->second.second))
      smallest[type] = {plain, d};
    return Status::Ok();
  }));
  for (const auto& [type, pd] : smallest)
    add(pd.first, type == '?' ? ObjectKind::kData : ObjectKind::kMeta, 3);

  std::vector<PackEntry> entries, entries2, none;
  auto [plan, pack] = MakePack(objs, 1, &entries);
  std::vector<Obj> two(objs.begin(), objs.begin() + 2);
  auto [plan2, pack2] = MakePack(two, 2, &entries2);
  auto [plan0, pack0] = MakePack({}, 3, &none);
  Write("pack", "sealed-objects", Mode(0, pack));
  Write("pack", "sealed-two", Mode(0, pack2));
  Write("pack", "sealed-empty", Mode(0, pack0));
  Write("pack", "plan-objects", Mode(1, PlanBytes(plan)));
  Write("pack", "plan-two", Mode(1, PlanBytes(plan2)));
  Write("pack", "plan-empty", Mode(1, PlanBytes(plan0)));
  // An object split into three pieces plus its descriptor (split.h).
  {
    const std::string plain = fuzz::Pattern(3000, 7, 3);
    const Digest d = Sha256Of(plain);
    const std::string frame = remote::FrameForUpload(d, plain, ObjectKind::kData, 0).stored;
    auto pieces = remote::CutFrame(frame, 1100);
    remote::SplitDescriptor desc = remote::DescribeSplit(ObjectKind::kData, pieces);
    std::vector<Obj> split;
    for (size_t i = 0; i < pieces.size(); i++)
      split.push_back({desc.pieces[i].digest, ObjectKind::kData, std::string(pieces[i]), remote::EntryType::kPiece});
    split.push_back({d, ObjectKind::kData, remote::EncodeSplitDescriptor(desc), remote::EntryType::kSplit});
    std::vector<PackEntry> es;
    auto [plan3, pack3] = MakePack(split, 4, &es);
    Write("pack", "sealed-split", Mode(0, pack3));
    Write("pack", "plan-split", Mode(1, PlanBytes(plan3)));
  }
  // Fix-up mode: a raw frame whose record the target completes.
  fuzz::PackPlan loose = plan2;
  std::memset(loose.index_plain.data() + 8, 0, 32);       // keyed id
  std::memset(loose.index_plain.data() + 8 + 64, 0, 12);  // offset, length
  Write("pack", "plan-fixup", Mode(2, PlanBytes(loose)));
  // Hostile sizes and tails, as IngestPack meets them.
  auto sized = [&](int32_t delta, uint16_t tail, const fuzz::PackPlan& p) {
    std::string s;
    fuzz::PutLE(&s, static_cast<uint32_t>(delta), 4);
    fuzz::PutLE(&s, tail, 2);
    return Mode(3, s + PlanBytes(p));
  };
  Write("pack", "tail-8k", sized(0, 8192, plan));
  Write("pack", "tail-short", sized(0, 40, plan2));
  Write("pack", "size-smaller", sized(-100, 8192, plan2));
  Write("pack", "size-larger", sized(1 << 20, 8192, plan2));

  // Manifest, ref-log header, refs, config, index records.
  remote::Manifest m;
  m.kdf.salt = fuzz::Pattern(16, 29, 5);
  m.wrapped_key = fuzz::DetSeal(fuzz::FixedKek(), key.raw(), remote::kWrapAad);
  m.channels = {1100000000000000001ull, 1100000000000000002ull};
  Write("remote_format", "manifest-new", Mode(0, m.Content()));
  m.refs_channel = 1100000000000000001ull;
  m.refs_message = 1100000000000000777ull;
  m.refs_seq = 7;
  Write("remote_format", "manifest", Mode(0, m.Content()));
  remote::RefLogHeader h;
  h.seq = 7;
  h.gc_generation = 2;
  h.kdf = m.kdf;
  h.wrapped_key = m.wrapped_key;
  Write("remote_format", "reflog-header-v1", Mode(1, h.Content()));
  h.parts = 3;
  Write("remote_format", "reflog-header", Mode(1, h.Content()));
  Write("remote_format", "manifest-kdf-max",
        Mode(0, std::string(remote::kManifestPrefix) + R"({"format":1,"kdf":)" + Kdf(1u << 22, 32, 16) + R"(,"key":")" +
                    remote::Base64Encode(m.wrapped_key) + R"(","channels":["1"]})"));

  remote::RemoteRefs refs;
  refs.seq = 7;
  refs.gc_generation = 2;
  refs.time_ns = 1763800000000000000;
  refs.repo = r->repo->config();
  for (const auto& [name, commits] : r->volumes) {
    auto hist = Must(r->repo->History(name));
    remote::RemoteVolume rv;
    rv.head = hist.front().commit;
    rv.head_seq = hist.front().seq;
    for (auto it = hist.rbegin(); it != hist.rend(); ++it) rv.history.emplace_back(it->seq, it->commit);
    refs.volumes[name] = rv;
  }
  refs.snapshots = r->snapshots;
  Write("remote_format", "refs", Mode(2, refs.ToJson()));
  Write("remote_format", "refs-empty", Mode(2, remote::RemoteRefs{}.ToJson()));
  Write("remote_format", "refs-compressed", Mode(8, Must(remote::CompressRefs(refs))));
  Write("remote_format", "refs-compressed-empty", Mode(8, Must(remote::CompressRefs(remote::RemoteRefs{}))));
  remote::RemoteConfig cfg{"origin", "discord", {1100000000000000001ull, 1100000000000000002ull}};
  Write("remote_format", "config", Mode(3, cfg.ToJson()));
  remote::PackIndex pidx;
  pidx.pack_id = plan.pack_id;
  pidx.entries = entries;
  pidx.pack_size = pack.size();
  Write("remote_format", "pack-record", Mode(4, remote::EncodePackRecord({{1100000000000000001ull, 1100000000000000123ull,
                                                                          1100000000000000124ull, pack.size()}, pidx})));
  Write("remote_format", "location", Mode(5, remote::EncodeLocation({plan.pack_id, entries[1].offset, entries[1].length})));
  Write("remote_format", "sync-mark", Mode(6, "1100000000000000123"));
  Write("remote_format", "gc-generation", Mode(6, "2"));
  Write("remote_format", "refs-pointer",
        Mode(7, remote::EncodeRefsPointer({1100000000000000001ull, 1100000000000000777ull, 7, 2})));

  // Crypto: sealed blobs, wrapped keys, decrypted refs, encodings, KDF parameters.
  Write("crypto", "sealed-refs-aad", Mode(0, fuzz::DetSeal(key.enc_key(), "hello, hashfs", remote::kRefsAadV1)));
  Write("crypto", "sealed-no-aad", Mode(0, fuzz::DetSeal(key.enc_key(), "", "")));
  Write("crypto", "plaintext", Mode(0, "a plaintext to seal"));
  Write("crypto", "wrapped-key", Mode(1, m.wrapped_key));
  Write("crypto", "master-key", Mode(1, key.raw()));
  Write("crypto", "refs-json", Mode(2, refs.ToJson()));
  Write("crypto", "refs-attachment", Mode(2, fuzz::DetSeal(key.enc_key(), refs.ToJson(), remote::kRefsAadV1)));
  Write("crypto", "base64-key", Mode(3, remote::Base64Encode(m.wrapped_key)));
  Write("crypto", "hex-id", Mode(3, remote::HexEncode(plan.pack_id)));
  Write("crypto", "kdf-cheap", Mode(3, std::string("\x0a\x01\x01\x10", 4) + fuzz::Pattern(16, 29, 5)));
  Write("crypto", "kdf-default", Mode(3, std::string("\x0f\x08\x01\x10", 4) + fuzz::Pattern(16, 29, 5)));

  // Discord answers, shaped like Discord's (and the emulator's).
  auto att = [](uint64_t id, const std::string& name, uint64_t size) {
    return nlohmann::json({{"id", std::to_string(id)},
                           {"filename", name},
                           {"size", size},
                           {"url", "https://cdn.discordapp.com/attachments/1100000000000000001/" + std::to_string(id) +
                                       "/" + name + "?ex=6921a0b0&is=69204f30&hm=0123456789abcdef"},
                           {"content_type", "application/octet-stream"}});
  };
  auto msg = [&](uint64_t id, const std::string& content, nlohmann::json atts, bool pinned) {
    return nlohmann::json({{"id", std::to_string(id)},
                           {"type", 0},
                           {"channel_id", "1100000000000000001"},
                           {"author", {{"id", "1000000000000000042"}, {"username", "hashfs-bot"}, {"bot", true}}},
                           {"content", content},
                           {"timestamp", "2025-11-22T10:00:00.000000+00:00"},
                           {"edited_timestamp", nullptr},
                           {"pinned", pinned},
                           {"nonce", "0123456789abcdef01234567"},
                           {"attachments", atts}});
  };
  std::string pack_name = remote::HexEncode(plan.pack_id) + ".hfp";
  const std::string pack2_name = remote::HexEncode(plan2.pack_id) + ".hfp";
  auto packs_msg = msg(1100000000000000123ull, std::string(remote::kPacksContent),
                       nlohmann::json::array({att(1100000000000000124ull, pack_name, pack.size()),
                                              att(1100000000000000125ull, pack2_name, pack2.size())}),
                       false);
  auto manifest_msg = msg(1100000000000000100ull, m.Content(), nlohmann::json::array(), true);
  auto refs_msg = msg(1100000000000000777ull, h.Content(),
                      nlohmann::json::array({att(1100000000000000778ull, "refs-7.bin", 4242)}), false);
  Write("discord_api", "message-packs", Mode(0, packs_msg.dump()));
  Write("discord_api", "message-manifest", Mode(0, manifest_msg.dump()));
  Write("discord_api", "message-reflog", Mode(0, refs_msg.dump()));
  Write("discord_api", "list", Mode(1, nlohmann::json::array({refs_msg, packs_msg, manifest_msg}).dump()));
  Write("discord_api", "list-empty", Mode(1, "[]"));
  Write("discord_api", "error-unknown-channel", Mode(2, R"({"message": "Unknown Channel", "code": 10003})"));
  Write("discord_api", "error-too-large", Mode(2, R"({"message": "Request entity too large", "code": 40005})"));
  Write("discord_api", "error-form",
        Mode(2, R"({"message": "Invalid Form Body", "code": 50035, "errors": {"content": {"_errors": )"
                R"([{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}]}}})"));
  Write("discord_api", "error-html", Mode(2, "<html><body>502 Bad Gateway</body></html>"));
  auto refreshed = [](const std::string& from, const std::string& to) {
    return nlohmann::json({{"refreshed_urls", nlohmann::json::array({{{"original", from}, {"refreshed", to}}})}}).dump();
  };
  Write("discord_api", "refresh",
        Mode(3, refreshed("https://cdn.discordapp.com/a?ex=1", "https://cdn.discordapp.com/a?ex=2")));
  const std::vector<std::pair<std::string, std::string>> rl = {{"x-ratelimit-bucket", "d4d1d5c1b0a3e7f2"},
                                                                {"x-ratelimit-limit", "5"},
                                                                {"x-ratelimit-remaining", "4"},
                                                                {"x-ratelimit-reset", "1763800000.123"},
                                                                {"x-ratelimit-reset-after", "1.250"}};
  Write("discord_api", "ratelimit-ok", Mode(4, Response(200, rl, packs_msg.dump())));
  Write("discord_api", "ratelimit-exhausted",
        Mode(4, Response(200, {{"x-ratelimit-bucket", "d4d1d5c1b0a3e7f2"}, {"x-ratelimit-limit", "5"},
                               {"x-ratelimit-remaining", "0"}, {"x-ratelimit-reset-after", "0.750"}}, "")));
  Write("discord_api", "ratelimit-429",
        Mode(4, Response(429, {{"retry-after", "1"}, {"x-ratelimit-scope", "user"}, {"x-ratelimit-bucket", "d4d1d5c1b0a3e7f2"},
                               {"x-ratelimit-remaining", "0"}, {"x-ratelimit-reset-after", "0.351"}},
                         R"({"message": "You are being rate limited.", "retry_after": 0.351, "global": false})")));
  Write("discord_api", "ratelimit-429-global",
        Mode(4, Response(429, {{"retry-after", "2"}, {"x-ratelimit-global", "true"}, {"x-ratelimit-scope", "global"}},
                         R"({"message": "You are being rate limited.", "retry_after": 1.5, "global": true})")));
  // One API call each (call selector, then the answer).
  auto call = [](uint8_t c, const std::string& resp) { return Mode(5, std::string(1, static_cast<char>(c)) + resp); };
  auto created = msg(1100000000000000130ull, std::string(remote::kPacksContent),
                     nlohmann::json::array({att(1100000000000000131ull, "a.hfp", 3),
                                            att(1100000000000000132ull, "b.hfp", 5)}),
                     false);
  Write("discord_api", "call-create", call(0, Response(200, rl, created.dump())));
  Write("discord_api", "call-get", call(1, Response(200, rl, packs_msg.dump())));
  Write("discord_api", "call-list", call(2, Response(200, rl, nlohmann::json::array({packs_msg, refs_msg}).dump())));
  Write("discord_api", "call-delete", call(3, Response(204, rl, "")));
  Write("discord_api", "call-delete-gone", call(3, Response(404, {}, R"({"message": "Unknown Message", "code": 10008})")));
  Write("discord_api", "call-refresh",
        call(4, Response(200, {}, refreshed("https://cdn.test/a", "https://cdn.test/a?ex=2"))));
  Write("discord_api", "call-pins", call(6, Response(200, rl, nlohmann::json::array({manifest_msg}).dump())));
  Write("discord_api", "call-401", call(1, Response(401, {}, R"({"message": "401: Unauthorized", "code": 0})")));
  Write("discord_api", "call-403", call(2, Response(403, {}, R"({"message": "Missing Access", "code": 50001})")));
  Write("discord_api", "call-413", call(0, Response(413, {}, R"({"message": "Request entity too large", "code": 40005})")));
  Write("discord_api", "call-500", call(1, Response(500, {}, R"({"message": "Try again a little later", "code": 130000})")));
  // Downloads: the selector's parity (input length) decides ranged or not.
  std::string body10 = "0123456789";
  for (std::string extra : {"", " "}) {
    std::string tag = extra.empty() ? "even" : "odd";
    Write("discord_api", "download-206-" + tag,
          call(5, Response(206, {{"content-range", "bytes 10-19/100"}}, body10 + extra)));
    Write("discord_api", "download-200-" + tag, call(5, Response(200, {}, std::string(100, 'x') + extra)));
    Write("discord_api", "download-410-" + tag, call(5, Response(410, {}, "gone" + extra)));
  }
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
  RemoteSeeds();
  std::cout << "wrote " << g_written << " seed files under " << g_out << "\n";
  return 0;
}
