#include "remote/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cstring>
#include <memory>

namespace hashfs::remote {
namespace {

struct CipherCtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;

const unsigned char* U(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

}  // namespace

SecretBytes::~SecretBytes() {
  if (!b_.empty()) OPENSSL_cleanse(b_.data(), b_.size());
}

std::string RandomBytes(size_t n) {
  std::string s(n, '\0');
  if (n > 0 && RAND_bytes(reinterpret_cast<unsigned char*>(s.data()), static_cast<int>(n)) != 1) abort();
  return s;
}

Status CheckScryptParams(const ScryptParams& p) {
  if (p.n < (1u << 10) || p.n > (1u << 22) || (p.n & (p.n - 1)) != 0)
    return Status::InvalidArgument("scrypt N must be a power of two in [2^10, 2^22]");
  if (p.r < 1 || p.r > 32 || p.p < 1 || p.p > 16) return Status::InvalidArgument("scrypt r or p out of range");
  if (p.salt.empty() || p.salt.size() > 64) return Status::InvalidArgument("scrypt salt must be 1..64 bytes");
  if (128 * p.n * p.r > kMaxScryptMemory) return Status::InvalidArgument("scrypt N and r need more than 1 GiB");
  return Status::Ok();
}

Result<SecretBytes> DeriveKey(std::string_view passphrase, const ScryptParams& p) {
  HASHFS_RETURN_IF_ERROR(CheckScryptParams(p));
  std::string key(32, '\0');
  // Memory needed is about 128 * N * r bytes (plus p * 128 * r); allow it.
  uint64_t maxmem = 128 * p.n * p.r * 2 + 128 * p.r * p.p + (1u << 20);
  if (EVP_PBE_scrypt(passphrase.data(), passphrase.size(), U(p.salt), p.salt.size(), p.n, p.r, p.p, maxmem,
                     reinterpret_cast<unsigned char*>(key.data()), key.size()) != 1)
    return Status::IOError("scrypt key derivation failed");
  return SecretBytes(std::move(key));
}

std::string Seal(std::string_view key, std::string_view plaintext, std::string_view aad) {
  if (key.size() != 32) abort();
  std::string out(kSealNonceSize + plaintext.size() + kSealTagSize, '\0');
  std::string nonce = RandomBytes(kSealNonceSize);
  std::memcpy(out.data(), nonce.data(), kSealNonceSize);
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  bool ok = ctx && EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, U(key), U(nonce)) == 1 &&
            (aad.empty() || EVP_EncryptUpdate(ctx.get(), nullptr, &len, U(aad), static_cast<int>(aad.size())) == 1) &&
            (plaintext.empty() || EVP_EncryptUpdate(ctx.get(), o + kSealNonceSize, &len, U(plaintext),
                                                    static_cast<int>(plaintext.size())) == 1) &&
            EVP_EncryptFinal_ex(ctx.get(), o + kSealNonceSize + plaintext.size(), &len) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kSealTagSize,
                                o + kSealNonceSize + plaintext.size()) == 1;
  if (!ok) abort();  // only on allocation failure or a broken OpenSSL
  return out;
}

Result<std::string> Unseal(std::string_view key, std::string_view sealed, std::string_view aad) {
  if (key.size() != 32) return Status::InvalidArgument("AES-256-GCM key must be 32 bytes");
  if (sealed.size() < kSealOverhead) return Status::Corruption("sealed data is shorter than its nonce and tag");
  size_t n = sealed.size() - kSealOverhead;
  if (n > static_cast<size_t>(INT32_MAX)) return Status::Corruption("sealed data too large");
  std::string out(n, '\0');
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return Status::IOError("EVP_CIPHER_CTX_new failed");
  int len = 0;
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  std::string tag(sealed.substr(kSealNonceSize + n));
  bool ok = EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, U(key), U(sealed)) == 1 &&
            (aad.empty() || EVP_DecryptUpdate(ctx.get(), nullptr, &len, U(aad), static_cast<int>(aad.size())) == 1) &&
            (n == 0 || EVP_DecryptUpdate(ctx.get(), o, &len, U(sealed.substr(kSealNonceSize)), static_cast<int>(n)) == 1) &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kSealTagSize, tag.data()) == 1 &&
            EVP_DecryptFinal_ex(ctx.get(), o + n, &len) == 1;
  if (!ok) {
    OPENSSL_cleanse(out.data(), out.size());
    return Status::Corruption("authentication failed (tampered, truncated or wrong key)");
  }
  return out;
}

std::array<uint8_t, 32> HmacSha256(std::string_view key, std::string_view data) {
  std::array<uint8_t, 32> out{};
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), U(data), data.size(), out.data(), &len) ||
      len != 32)
    abort();
  return out;
}

MasterKey MasterKey::Generate() { return MasterKey(SecretBytes(RandomBytes(kSize))); }

Result<MasterKey> MasterKey::FromBytes(std::string_view raw) {
  if (raw.size() != kSize) return Status::Corruption("master key has the wrong size");
  return MasterKey(SecretBytes(std::string(raw)));
}

Digest MasterKey::KeyedId(const Digest& d) const {
  Digest out;
  out.bytes = HmacSha256(id_key(), d.AsBytes());
  return out;
}

Digest MasterKey::PieceKeyedId(const Digest& d) const {
  Digest out;
  out.bytes = HmacSha256(id_key(), "hfpiece1" + std::string(d.AsBytes()));
  return out;
}

std::string MasterKey::Wrap(std::string_view kek) const { return Seal(kek, raw(), kWrapAad); }

Result<MasterKey> MasterKey::Unwrap(std::string_view kek, std::string_view wrapped) {
  auto r = Unseal(kek, wrapped, kWrapAad);
  if (!r.ok()) return Status::Permission("wrong passphrase: the remote's master key does not open with it");
  SecretBytes raw(std::move(r).value());
  return FromBytes(raw.view());
}

std::string Base64Encode(std::string_view in) {
  static const char* kAlpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v = uint32_t(uint8_t(in[i])) << 16 | uint32_t(uint8_t(in[i + 1])) << 8 | uint8_t(in[i + 2]);
    out += kAlpha[v >> 18];
    out += kAlpha[(v >> 12) & 63];
    out += kAlpha[(v >> 6) & 63];
    out += kAlpha[v & 63];
  }
  if (i < in.size()) {
    uint32_t v = uint32_t(uint8_t(in[i])) << 16;
    if (i + 1 < in.size()) v |= uint32_t(uint8_t(in[i + 1])) << 8;
    out += kAlpha[v >> 18];
    out += kAlpha[(v >> 12) & 63];
    out += i + 1 < in.size() ? kAlpha[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

Result<std::string> Base64Decode(std::string_view in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  if (in.size() % 4 != 0) return Status::Corruption("bad base64 length");
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (size_t i = 0; i < in.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; k++) {
      char c = in[i + k];
      if (c == '=' && i + 4 == in.size() && k >= 2) {
        v[k] = 0;
        pad++;
      } else {
        if (pad) return Status::Corruption("bad base64 padding");
        v[k] = val(c);
        if (v[k] < 0) return Status::Corruption("bad base64 character");
      }
    }
    uint32_t x = uint32_t(v[0]) << 18 | uint32_t(v[1]) << 12 | uint32_t(v[2]) << 6 | uint32_t(v[3]);
    if ((pad == 1 && (x & 0xff) != 0) || (pad == 2 && (x & 0xffff) != 0))
      return Status::Corruption("non-canonical base64 (padding bits set)");
    out += char(x >> 16);
    if (pad < 2) out += char((x >> 8) & 0xff);
    if (pad < 1) out += char(x & 0xff);
  }
  return out;
}

std::string HexEncode(std::string_view in) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(in.size() * 2);
  for (unsigned char c : in) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

Result<std::string> HexDecode(std::string_view in) {
  auto val = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (in.size() % 2) return Status::Corruption("odd hex length");
  std::string out(in.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); i++) {
    int a = val(in[2 * i]), b = val(in[2 * i + 1]);
    if (a < 0 || b < 0) return Status::Corruption("bad hex digit");
    out[i] = static_cast<char>(a << 4 | b);
  }
  return out;
}

std::optional<uint64_t> ParseDecimalId(std::string_view s) {
  if (s.empty() || s.size() > 20 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, static_cast<uint64_t>(c - '0'), &v))
      return std::nullopt;
  }
  return v;
}

}  // namespace hashfs::remote
