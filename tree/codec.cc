#include "tree/codec.h"

#include <sys/stat.h>

#include <cereal/archives/portable_binary.hpp>

#include <algorithm>
#include <sstream>
#include <streambuf>

namespace hashfs {

bool IsValidFileType(uint8_t t) { return t >= 1 && t <= 7; }

char FileTypeChar(FileType t) {
  switch (t) {
    case FileType::kRegular: return 'f';
    case FileType::kDirectory: return 'd';
    case FileType::kSymlink: return 'l';
    case FileType::kFifo: return 'p';
    case FileType::kCharDevice: return 'c';
    case FileType::kBlockDevice: return 'b';
    case FileType::kSocket: return 's';
  }
  return '?';
}

uint32_t TypeBits(FileType t) {
  switch (t) {
    case FileType::kRegular: return S_IFREG;
    case FileType::kDirectory: return S_IFDIR;
    case FileType::kSymlink: return S_IFLNK;
    case FileType::kFifo: return S_IFIFO;
    case FileType::kCharDevice: return S_IFCHR;
    case FileType::kBlockDevice: return S_IFBLK;
    case FileType::kSocket: return S_IFSOCK;
  }
  return 0;
}

bool IsValidEntryName(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  if (name == "." || name == "..") return false;
  return name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

size_t XattrBytes(const std::vector<std::pair<std::string, std::string>>& xattrs) {
  size_t n = 0;
  for (const auto& [k, v] : xattrs) n += k.size() + v.size();
  return n;
}

namespace {

// Thrown inside decoding only; converted to Status::Corruption at the API edge.
struct DecodeError {
  std::string what;
};

class Encoder {
 public:
  Encoder() : ar_(os_, cereal::PortableBinaryOutputArchive::Options::LittleEndian()) {}
  void Header(ObjectType t) {
    char h[3] = {'f', static_cast<char>(t), kCodecVersion};
    // The archive already wrote its endianness byte (1 = little); the object
    // header follows it so every object starts 0x01 'f' <type> <version>.
    ar_(cereal::binary_data(h, 3));
  }
  template <typename T>
  void Num(T v) { ar_(v); }
  void Size(size_t n) { ar_(cereal::make_size_tag(static_cast<cereal::size_type>(n))); }
  void Str(const std::string& s) {
    Size(s.size());
    ar_(cereal::binary_data(s.data(), s.size()));
  }
  void Dig(const Digest& d) { ar_(cereal::binary_data(d.bytes.data(), d.bytes.size())); }
  std::string Take() { return os_.str(); }

 private:
  std::ostringstream os_;
  cereal::PortableBinaryOutputArchive ar_;
};

class MemBuf : public std::streambuf {
 public:
  MemBuf(std::string_view s) {
    char* p = const_cast<char*>(s.data());
    setg(p, p, p + s.size());
  }
  size_t Remaining() const { return static_cast<size_t>(egptr() - gptr()); }
};

class Decoder {
 public:
  explicit Decoder(std::string_view bytes)
      : buf_(bytes), is_(&buf_), ar_(is_, cereal::PortableBinaryInputArchive::Options::LittleEndian()) {
    // The archive has consumed its endianness byte. Any value but 1 would make
    // cereal byte-swap every later field (and the 3-byte header), so a second,
    // non-canonical encoding of the same value would decode.
    if (bytes.empty() || bytes[0] != 0x01) throw DecodeError{"bad endianness marker"};
  }
  void Header(ObjectType t) {
    char h[3];
    ar_(cereal::binary_data(h, 3));
    if (h[0] != 'f' || h[1] != static_cast<char>(t)) throw DecodeError{"wrong object type"};
    if (h[2] != kCodecVersion) throw DecodeError{"unsupported object version"};
  }
  template <typename T>
  T Num() {
    T v;
    ar_(v);
    return v;
  }
  // A count of items each at least min_item_bytes long, at most max.
  size_t Count(size_t min_item_bytes, size_t max) {
    cereal::size_type n;
    ar_(cereal::make_size_tag(n));
    if (n > max || n * min_item_bytes > buf_.Remaining()) throw DecodeError{"count out of range"};
    return static_cast<size_t>(n);
  }
  std::string Str(size_t max) {
    size_t n = Count(1, max);
    std::string s(n, '\0');
    ar_(cereal::binary_data(s.data(), n));
    return s;
  }
  Digest Dig() {
    Digest d;
    ar_(cereal::binary_data(d.bytes.data(), d.bytes.size()));
    return d;
  }
  void End() {
    if (buf_.Remaining() != 0) throw DecodeError{"trailing bytes"};
  }

 private:
  MemBuf buf_;
  std::istream is_;
  cereal::PortableBinaryInputArchive ar_;
};

constexpr size_t kMaxItemsPerNode = 1 << 20;

void EncodeInode(Encoder& e, const Inode& n) {
  e.Num(static_cast<uint8_t>(n.type));
  e.Num(n.mode);
  e.Num(n.uid);
  e.Num(n.gid);
  e.Num(n.mtime_ns);
  e.Num(n.ctime_ns);
  e.Num(n.size);
  e.Num(n.rdev);
  e.Num(n.source_ino);
  e.Str(n.symlink_target);
  if (n.type == FileType::kRegular) {
    e.Num(static_cast<uint8_t>(n.layout));
    if (n.layout == ContentLayout::kInline) {
      e.Size(n.chunks.size());
      for (const auto& c : n.chunks) {
        e.Dig(c.digest);
        e.Num(c.size);
      }
    } else {
      e.Dig(n.content);
    }
  } else if (n.type == FileType::kDirectory) {
    e.Dig(n.content);
  }
  e.Size(n.xattrs.size());
  for (const auto& [k, v] : n.xattrs) {
    e.Str(k);
    e.Str(v);
  }
}

Inode DecodeInode(Decoder& d) {
  Inode n;
  uint8_t t = d.Num<uint8_t>();
  if (!IsValidFileType(t)) throw DecodeError{"bad file type"};
  n.type = static_cast<FileType>(t);
  n.mode = d.Num<uint32_t>();
  if (n.mode & ~07777u) throw DecodeError{"bad mode bits"};
  n.uid = d.Num<uint32_t>();
  n.gid = d.Num<uint32_t>();
  n.mtime_ns = d.Num<int64_t>();
  n.ctime_ns = d.Num<int64_t>();
  n.size = d.Num<uint64_t>();
  n.rdev = d.Num<uint64_t>();
  n.source_ino = d.Num<uint64_t>();
  n.symlink_target = d.Str(kMaxSymlinkLength);
  if (n.type == FileType::kRegular) {
    uint8_t layout = d.Num<uint8_t>();
    if (layout > 1) throw DecodeError{"bad content layout"};
    n.layout = static_cast<ContentLayout>(layout);
    if (n.layout == ContentLayout::kInline) {
      size_t c = d.Count(40, kMaxInlineChunks);
      uint64_t total = 0;
      n.chunks.resize(c);
      for (auto& ch : n.chunks) {
        ch.digest = d.Dig();
        ch.size = d.Num<uint64_t>();
        if (ch.size == 0) throw DecodeError{"empty chunk reference"};
        if (__builtin_add_overflow(total, ch.size, &total)) throw DecodeError{"chunk sizes overflow"};
      }
      if (total != n.size) throw DecodeError{"chunk sizes do not add up to the file size"};
    } else {
      n.content = d.Dig();
    }
  } else if (n.type == FileType::kDirectory) {
    n.content = d.Dig();
  }
  if (n.type != FileType::kSymlink && !n.symlink_target.empty()) throw DecodeError{"target on a non-symlink"};
  size_t x = d.Count(2, kMaxXattrs);
  n.xattrs.reserve(x);
  for (size_t i = 0; i < x; i++) {
    std::string k = d.Str(kMaxXattrNameLength);
    std::string v = d.Str(kMaxXattrValueLength);
    if (k.empty() || (i > 0 && !(n.xattrs.back().first < k))) throw DecodeError{"xattrs not sorted"};
    n.xattrs.emplace_back(std::move(k), std::move(v));
  }
  return n;
}

void EncodeEntry(Encoder& e, const Entry& en) {
  e.Str(en.name);
  e.Num(en.link_id);
  if (en.link_id == 0)
    EncodeInode(e, en.inode);
  else
    e.Num(static_cast<uint8_t>(en.inode.type));
}

Entry DecodeEntry(Decoder& d) {
  Entry en;
  en.name = d.Str(kMaxNameLength);
  if (!IsValidEntryName(en.name)) throw DecodeError{"invalid entry name"};
  en.link_id = d.Num<uint64_t>();
  if (en.link_id == 0) {
    en.inode = DecodeInode(d);
  } else {
    uint8_t t = d.Num<uint8_t>();
    if (!IsValidFileType(t) || static_cast<FileType>(t) == FileType::kDirectory)
      throw DecodeError{"bad hardlink entry type"};
    en.inode.type = static_cast<FileType>(t);
  }
  return en;
}

void EncodeChildren(Encoder& e, uint16_t bitmap, const std::vector<std::pair<Digest, uint64_t>>& ch) {
  e.Num(bitmap);
  for (const auto& [dg, count] : ch) {
    e.Dig(dg);
    e.Num(count);
  }
}

void DecodeChildren(Decoder& d, uint16_t* bitmap, std::vector<std::pair<Digest, uint64_t>>* ch) {
  *bitmap = d.Num<uint16_t>();
  int n = std::popcount(*bitmap);
  if (n < 1) throw DecodeError{"internal node without children"};
  for (int i = 0; i < n; i++) {
    Digest dg = d.Dig();
    uint64_t count = d.Num<uint64_t>();
    if (count == 0) throw DecodeError{"empty child"};
    ch->emplace_back(dg, count);
  }
}

template <typename F>
auto Guard(F&& f) -> Result<decltype(f())> {
  try {
    return f();
  } catch (const DecodeError& e) {
    return Status::Corruption("malformed object: " + e.what);
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("malformed object: ") + e.what());
  }
}

}  // namespace

std::string EncodeDirNode(const DirNode& n) {
  Encoder e;
  e.Header(ObjectType::kDirNode);
  e.Num(static_cast<uint8_t>(n.leaf ? 0 : 1));
  if (n.leaf) {
    e.Size(n.entries.size());
    for (const auto& en : n.entries) EncodeEntry(e, en);
  } else {
    EncodeChildren(e, n.bitmap, n.children);
  }
  return e.Take();
}

Result<DirNode> DecodeDirNode(std::string_view bytes) {
  return Guard([&] {
    Decoder d(bytes);
    d.Header(ObjectType::kDirNode);
    DirNode n;
    uint8_t kind = d.Num<uint8_t>();
    if (kind > 1) throw DecodeError{"bad node kind"};
    n.leaf = kind == 0;
    if (n.leaf) {
      size_t c = d.Count(10, kMaxItemsPerNode);
      n.entries.reserve(c);
      for (size_t i = 0; i < c; i++) {
        n.entries.push_back(DecodeEntry(d));
        if (i > 0 && !(n.entries[i - 1].name < n.entries[i].name)) throw DecodeError{"entries not sorted"};
      }
    } else {
      DecodeChildren(d, &n.bitmap, &n.children);
    }
    d.End();
    return n;
  });
}

std::string EncodeLinkNode(const LinkNode& n) {
  Encoder e;
  e.Header(ObjectType::kLinkNode);
  e.Num(static_cast<uint8_t>(n.leaf ? 0 : 1));
  if (n.leaf) {
    e.Size(n.records.size());
    for (const auto& r : n.records) {
      e.Num(r.id);
      e.Num(r.nlink);
      EncodeInode(e, r.inode);
    }
  } else {
    EncodeChildren(e, n.bitmap, n.children);
  }
  return e.Take();
}

Result<LinkNode> DecodeLinkNode(std::string_view bytes) {
  return Guard([&] {
    Decoder d(bytes);
    d.Header(ObjectType::kLinkNode);
    LinkNode n;
    uint8_t kind = d.Num<uint8_t>();
    if (kind > 1) throw DecodeError{"bad node kind"};
    n.leaf = kind == 0;
    if (n.leaf) {
      size_t c = d.Count(20, kMaxItemsPerNode);
      n.records.reserve(c);
      for (size_t i = 0; i < c; i++) {
        LinkRecord r;
        r.id = d.Num<uint64_t>();
        r.nlink = d.Num<uint32_t>();
        r.inode = DecodeInode(d);
        if (r.id == 0) throw DecodeError{"link id 0"};
        if (r.inode.type == FileType::kDirectory) throw DecodeError{"hardlinked directory"};
        if (i > 0 && !(n.records.back().id < r.id)) throw DecodeError{"link records not sorted"};
        n.records.push_back(std::move(r));
      }
    } else {
      DecodeChildren(d, &n.bitmap, &n.children);
    }
    d.End();
    return n;
  });
}

std::string EncodeFileNode(const FileNode& n) {
  Encoder e;
  e.Header(ObjectType::kFileNode);
  e.Num(n.level);
  e.Size(n.refs.size());
  for (const auto& r : n.refs) {
    e.Dig(r.digest);
    e.Num(r.size);
  }
  return e.Take();
}

Result<FileNode> DecodeFileNode(std::string_view bytes) {
  return Guard([&] {
    Decoder d(bytes);
    d.Header(ObjectType::kFileNode);
    FileNode n;
    n.level = d.Num<uint8_t>();
    if (n.level > 8) throw DecodeError{"manifest too deep"};
    size_t c = d.Count(40, kMaxItemsPerNode);
    if (c == 0) throw DecodeError{"empty manifest node"};
    n.refs.resize(c);
    for (auto& r : n.refs) {
      r.digest = d.Dig();
      r.size = d.Num<uint64_t>();
      if (r.size == 0) throw DecodeError{"empty manifest reference"};
    }
    d.End();
    return n;
  });
}

std::string EncodeCommit(const Commit& c) {
  Encoder e;
  e.Header(ObjectType::kCommit);
  EncodeInode(e, c.root);
  e.Dig(c.links);
  e.Dig(c.parent);
  e.Num(c.time_ns);
  e.Str(c.description);
  return e.Take();
}

Result<Commit> DecodeCommit(std::string_view bytes) {
  return Guard([&] {
    Decoder d(bytes);
    d.Header(ObjectType::kCommit);
    Commit c;
    c.root = DecodeInode(d);
    if (c.root.type != FileType::kDirectory) throw DecodeError{"commit root is not a directory"};
    c.links = d.Dig();
    c.parent = d.Dig();
    c.time_ns = d.Num<int64_t>();
    c.description = d.Str(kMaxDescriptionLength);
    d.End();
    return c;
  });
}

}  // namespace hashfs
