#include "cas/pack_pointer.h"

#include "cas/little_endian.h"

namespace hashfs {

std::string EncodePackPointer(const PackPointer& p) {
  std::string out(kPackPointerSize, '\0');
  out[0] = static_cast<char>(kPackedCodec);
  StoreLE(out.data() + 2, p.pack, 8);
  StoreLE(out.data() + 10, p.offset, 4);
  StoreLE(out.data() + 14, p.length, 4);
  return out;
}

Result<PackPointer> DecodePackPointer(std::string_view value) {
  if (value.size() != kPackPointerSize || static_cast<uint8_t>(value[0]) != kPackedCodec || value[1] != 0)
    return Status::Corruption("malformed pack pointer");
  PackPointer p;
  p.pack = LoadLE(value.data() + 2, 8);
  p.offset = static_cast<uint32_t>(LoadLE(value.data() + 10, 4));
  p.length = static_cast<uint32_t>(LoadLE(value.data() + 14, 4));
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
