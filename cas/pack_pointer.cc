#include "cas/pack_pointer.h"

namespace hashfs {

namespace {
void PutLE(char* p, uint64_t v, int n) {
  for (int i = 0; i < n; i++) p[i] = static_cast<char>(v >> (8 * i));
}
uint64_t GetLE(const char* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--) v = v << 8 | static_cast<uint8_t>(p[i]);
  return v;
}
}  // namespace

std::string EncodePackPointer(const PackPointer& p) {
  std::string out(kPackPointerSize, '\0');
  out[0] = static_cast<char>(kPackedCodec);
  PutLE(out.data() + 2, p.pack, 8);
  PutLE(out.data() + 10, p.offset, 4);
  PutLE(out.data() + 14, p.length, 4);
  return out;
}

Result<PackPointer> DecodePackPointer(std::string_view value) {
  if (value.size() != kPackPointerSize || static_cast<uint8_t>(value[0]) != kPackedCodec || value[1] != 0)
    return Status::Corruption("malformed pack pointer");
  PackPointer p;
  p.pack = GetLE(value.data() + 2, 8);
  p.offset = static_cast<uint32_t>(GetLE(value.data() + 10, 4));
  p.length = static_cast<uint32_t>(GetLE(value.data() + 14, 4));
  return p;
}

std::string PackKey(uint64_t id) {
  std::string k(8, '\0');
  for (int i = 0; i < 8; i++) k[i] = static_cast<char>(id >> (8 * (7 - i)));
  return k;
}

std::optional<uint64_t> PackIdOfKey(std::string_view key) {
  if (key.size() != 8) return std::nullopt;
  uint64_t v = 0;
  for (char c : key) v = v << 8 | static_cast<uint8_t>(c);
  return v;
}

}  // namespace hashfs
