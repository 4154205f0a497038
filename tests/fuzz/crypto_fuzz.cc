// libFuzzer target: decryption framing of the remote (remote/crypto.h) with
// fixed keys, and what is parsed right after decryption.
//
// Input: mode (1 byte) % 4, then:
//   0 framing: the bytes as a sealed blob (Unseal), and as a plaintext that
//     is sealed and opened again;
//   1 wrapped-key records: the bytes as a wrapped master key (Unwrap), and as
//     a master key that is wrapped with a fixed passphrase key and unwrapped;
//   2 post-decrypt parsing: the bytes are sealed with the fixed key as a
//     refs-<seq>.bin attachment is, then opened and parsed (RemoteRefs::FromJson),
//     as LatestRefs does; and opened as is;
//   3 encodings and KDF parameters: Base64Decode, HexDecode, and
//     CheckScryptParams/DeriveKey on parameters read from the bytes.
//
// Checks:
//  * Unseal agrees exactly with an independent AES-256-GCM implementation of
//    design.md's layout (nonce 12 | ciphertext | tag 16) on any bytes:
//    accepts the same blobs with the same plaintext; refusals are
//    Corruption. Seal output is 28 bytes longer, opens with both
//    implementations to the plaintext, and is refused under another aad,
//    another key, with any one bit flipped, or one byte short.
//  * Unwrap: a refusal is Permission (does not authenticate) or Corruption
//    (authenticates but is not 64 bytes); it accepts exactly a 64-byte key
//    sealed under the passphrase key and aad "hashfs-remote-key-v1" and gives
//    those bytes back (encryption key = first half, id key = second half,
//    keyed ids = HMAC-SHA256(id key, digest)); Wrap then Unwrap round-trips.
//  * Decrypted refs: the checks of fuzz_remote_format (limits, round trip).
//  * Base64: Base64Decode(Base64Encode(x)) == x, and an accepted input is the
//    canonical encoding of what it decodes to. Hex: round trip, and an
//    accepted input is the lower-case encoding up to case.
//  * KDF: accepted parameters are in the documented ranges and need at most
//    1 GiB; DeriveKey refuses exactly what CheckScryptParams refuses
//    (InvalidArgument) and is deterministic (run only for cheap parameters).
#include <cctype>
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/remote_fuzz.h"

namespace {

using namespace hashfs;
using namespace hashfs::remote;

std::string_view EncKey() { return fuzz::FixedKey().enc_key(); }

void CheckUnseal(std::string_view key, std::string_view blob, std::string_view aad) {
  auto got = Unseal(key, blob, aad);
  auto ref = fuzz::RefUnseal(key, blob, aad);
  FUZZ_CHECK(got.ok() == ref.has_value());
  if (got.ok()) {
    FUZZ_CHECK(*got == *ref);
    FUZZ_CHECK(got->size() + kSealOverhead == blob.size());
  } else {
    fuzz::CheckRefusal(got.status());
  }
}

void Framing(std::string_view in) {
  const std::string aads[] = {"", std::string(kRefsAadV1), "hfi1" + fuzz::Pattern(16, 5, 9)};
  for (const auto& aad : aads) CheckUnseal(EncKey(), in, aad);
  CheckUnseal(fuzz::OtherKey().enc_key(), in, "");

  const std::string& aad = aads[in.size() % 3];
  std::string sealed = Seal(EncKey(), in, aad);
  FUZZ_CHECK(sealed.size() == in.size() + kSealOverhead);
  auto open = Unseal(EncKey(), sealed, aad);
  FUZZ_CHECK(open.ok() && *open == in);
  auto ref = fuzz::RefUnseal(EncKey(), sealed, aad);
  FUZZ_CHECK_MSG(ref.has_value() && *ref == in, "Seal does not produce design.md's layout");
  FUZZ_CHECK(!Unseal(EncKey(), sealed, aad + "x").ok());
  FUZZ_CHECK(!Unseal(fuzz::OtherKey().enc_key(), sealed, aad).ok());
  size_t bit = Sha256Of(in).Prefix64() % (sealed.size() * 8);
  std::string flipped = sealed;
  flipped[bit / 8] = static_cast<char>(flipped[bit / 8] ^ (1 << (bit % 8)));
  auto f = Unseal(EncKey(), flipped, aad);
  FUZZ_CHECK_MSG(!f.ok(), "a sealed blob with bit " + std::to_string(bit) + " flipped opened");
  fuzz::CheckRefusal(f.status());
  FUZZ_CHECK(!Unseal(EncKey(), std::string_view(sealed).substr(0, sealed.size() - 1), aad).ok());
  FUZZ_CHECK(!Unseal(EncKey(), std::string_view(sealed).substr(1), aad).ok());
  // The reference's sealing (another nonce) opens too.
  auto det = Unseal(EncKey(), fuzz::DetSeal(EncKey(), in, aad), aad);
  FUZZ_CHECK(det.ok() && *det == in);
}

void CheckUnwrapped(const MasterKey& mk, std::string_view raw) {
  FUZZ_CHECK(mk.raw() == raw);
  FUZZ_CHECK(mk.enc_key() == raw.substr(0, 32) && mk.id_key() == raw.substr(32, 32));
  Digest d = Sha256Of(raw);
  auto h = HmacSha256(raw.substr(32, 32), d.AsBytes());
  FUZZ_CHECK(mk.KeyedId(d).bytes == h);
  auto again = MasterKey::Unwrap(fuzz::FixedKek(), mk.Wrap(fuzz::FixedKek()));
  FUZZ_CHECK(again.ok() && again->raw() == raw);
}

void WrappedKeys(std::string_view in) {
  const std::string kek = fuzz::FixedKek();
  // As a wrapped key read from a manifest.
  auto u = MasterKey::Unwrap(kek, in);
  auto ref = fuzz::RefUnseal(kek, in, kWrapAad);
  if (u.ok()) {
    FUZZ_CHECK(ref.has_value() && ref->size() == MasterKey::kSize);
    CheckUnwrapped(*u, *ref);
  } else {
    fuzz::CheckRefusalIn(u.status(), {Status::Code::kPermission, Status::Code::kCorruption});
    FUZZ_CHECK((u.status().code() == Status::Code::kPermission) == !ref.has_value());
  }
  // As the master key inside a record sealed with the passphrase key.
  std::string wrapped = fuzz::DetSeal(kek, in, kWrapAad);
  auto w = MasterKey::Unwrap(kek, wrapped);
  FUZZ_CHECK(w.ok() == (in.size() == MasterKey::kSize));
  if (w.ok()) {
    CheckUnwrapped(*w, in);
  } else {
    fuzz::CheckRefusal(w.status());  // authentic, but not a master key
  }
  auto other = MasterKey::Unwrap(fuzz::Pattern(32, 7, 7), wrapped);
  FUZZ_CHECK(!other.ok() && other.status().code() == Status::Code::kPermission);
  auto other_aad = MasterKey::Unwrap(kek, fuzz::DetSeal(kek, in, kRefsAadV1));
  FUZZ_CHECK(!other_aad.ok() && other_aad.status().code() == Status::Code::kPermission);
}

void DecryptedRefs(std::string_view in) {
  CheckUnseal(EncKey(), in, kRefsAadV1);
  std::string sealed = fuzz::DetSeal(EncKey(), in, kRefsAadV1);
  auto plain = Unseal(EncKey(), sealed, kRefsAadV1);
  FUZZ_CHECK(plain.ok() && *plain == in);
  auto r = RemoteRefs::FromJson(*plain);
  if (!r.ok()) {
    fuzz::CheckRefusal(r.status());
    return;
  }
  fuzz::CheckRemoteRefs(*r);
  fuzz::CheckRefsRoundTrip(*r);
}

void Encodings(std::string_view in) {
  auto b = Base64Decode(in);
  if (b.ok()) {
    FUZZ_CHECK_MSG(Base64Encode(*b) == in, "non-canonical base64 accepted");
    FUZZ_CHECK(b->size() == in.size() / 4 * 3 - (in.ends_with("==") ? 2 : in.ends_with("=") ? 1 : 0));
  } else {
    fuzz::CheckRefusal(b.status());
  }
  auto b2 = Base64Decode(Base64Encode(in));
  FUZZ_CHECK(b2.ok() && *b2 == in);

  auto h = HexDecode(in);
  if (h.ok()) {
    std::string lower(in);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    FUZZ_CHECK(HexEncode(*h) == lower);
  } else {
    fuzz::CheckRefusal(h.status());
  }
  auto h2 = HexDecode(HexEncode(in));
  FUZZ_CHECK(h2.ok() && *h2 == in);

  // KDF parameters as a manifest could carry them.
  fuzz::Reader rd(in);
  ScryptParams p;
  uint8_t shift = rd.U8();
  p.n = shift < 64 ? 1ull << shift : rd.LE(8);
  p.r = rd.U8();
  p.p = rd.U8();
  p.salt = std::string(rd.Bytes(rd.U8() % 80));
  fuzz::CheckAcceptedKdf(p);
  Status cs = CheckScryptParams(p);
  // Only cheap parameters are run (the limits are what the above checks).
  if (p.n * p.r * p.p <= 4096 || !cs.ok()) {
    auto k = DeriveKey("passphrase", p);
    FUZZ_CHECK(k.ok() == cs.ok());
    if (k.ok()) {
      FUZZ_CHECK(k->size() == 32);
      auto k2 = DeriveKey("passphrase", p);
      FUZZ_CHECK(k2.ok() && k2->view() == k->view());
    } else {
      FUZZ_CHECK(k.status().code() == Status::Code::kInvalidArgument);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view in = fuzz::AsView(data + 1, size - 1);
  switch (data[0] % 4) {
    case 0: Framing(in); break;
    case 1: WrappedKeys(in); break;
    case 2: DecryptedRefs(in); break;
    default: Encodings(in); break;
  }
  return 0;
}
