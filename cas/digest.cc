#include "cas/digest.h"

#include <openssl/evp.h>

#include <stdexcept>

namespace hashfs {

bool Digest::IsZero() const {
  for (uint8_t b : bytes)
    if (b) return false;
  return true;
}

std::string Digest::Hex() const {
  static const char* kHex = "0123456789abcdef";
  std::string s(kSize * 2, '0');
  for (size_t i = 0; i < kSize; i++) {
    s[2 * i] = kHex[bytes[i] >> 4];
    s[2 * i + 1] = kHex[bytes[i] & 15];
  }
  return s;
}

static int HexVal(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Result<Digest> Digest::FromHex(std::string_view hex) {
  if (hex.size() != kSize * 2) return Status::InvalidArgument("digest must be 64 hex digits");
  Digest d;
  for (size_t i = 0; i < kSize; i++) {
    int hi = HexVal(hex[2 * i]), lo = HexVal(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return Status::InvalidArgument("digest has a non-hex character");
    d.bytes[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return d;
}

Result<Digest> Digest::FromBytes(std::string_view raw) {
  if (raw.size() != kSize) return Status::Corruption("digest must be 32 bytes");
  Digest d;
  std::memcpy(d.bytes.data(), raw.data(), kSize);
  return d;
}

uint64_t Digest::Prefix64() const {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | bytes[i];
  return v;
}

Digest Sha256Of(std::string_view data) {
  Digest d;
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), d.bytes.data(), &len, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("EVP_Digest(sha256) failed");
  return d;
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_ || EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("EVP_DigestInit(sha256) failed");
}

Sha256::~Sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }

void Sha256::Update(std::string_view data) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data.data(), data.size());
}

Digest Sha256::Finish() {
  Digest d;
  unsigned int len = 0;
  auto* c = static_cast<EVP_MD_CTX*>(ctx_);
  EVP_DigestFinal_ex(c, d.bytes.data(), &len);
  EVP_DigestInit_ex(c, EVP_sha256(), nullptr);
  return d;
}

}  // namespace hashfs
