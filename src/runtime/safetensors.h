// The safetensors file format (https://github.com/huggingface/safetensors),
// read as untrusted input and written for `compressm export`:
//
//   u64 header_len (little-endian) | JSON header (header_len bytes) | data area
//   header: {"__metadata__": {"key": "string", ...},
//            "name": {"dtype": "F32", "shape": [d0, d1], "data_offsets": [begin, end]}, ...}
//   offsets are relative to the data area; tensors are row-major, little-endian,
//   and (as the reference implementation demands) tile the data area exactly:
//   no gaps, no overlaps, nothing after the last tensor.
//
// No LibTorch: Eigen-free too, plain bytes and floats.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace compressm::runtime {

// A model file that cannot be used. The message is one line that starts with
// the file name, e.g. `m.safetensors: tensor 'head.weight' has dtype F16, expected F32`.
class ModelFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Limits checked before anything is allocated from a declared size.
inline constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;  // as the reference reader
inline constexpr uint64_t kMaxFileBytes = uint64_t{4} << 30;
inline constexpr int kMaxTensorRank = 8;
// Top-level header entries (tensors and __metadata__). A model file has 14
// tensors per block (model_file.h: at most kMaxBlocks = 1024 blocks) and a few
// more; 16 per block plus 64 is generous and keeps a hostile header from
// costing more than a real one (test_safetensors.cpp checks it against kMaxBlocks).
inline constexpr uint64_t kMaxHeaderEntries = 16 * 1024 + 64;
// An entry is at most 14 JSON values (object, dtype, shape with up to
// kMaxTensorRank dimensions, data_offsets with 2); __metadata__ about 20.
inline constexpr uint64_t kMaxHeaderValues = 16 * kMaxHeaderEntries;

struct FloatTensor {
  std::vector<int64_t> shape;
  std::vector<float> values;  // row-major, product(shape) entries
};

struct TensorFile {
  std::map<std::string, std::string> metadata;  // "__metadata__" (string values only)
  std::map<std::string, FloatTensor> tensors;
};

// Parses the bytes of a safetensors file whose tensors are all F32. Every
// structural problem (short file, header length past the end, broken JSON or a
// header that does not start with '{' (a byte-order mark included), more than
// kMaxHeaderEntries entries, a key twice in any object, unknown keys,
// non-string metadata, dtype other than F32, bad shapes, offsets outside the
// data area, overlapping or gapped tensors) throws ModelFileError prefixed by
// `source`. Values are not checked here (NaN is a valid float); the model
// loader checks them.
TensorFile parse_safetensors(const std::string& bytes, const std::string& source);

// A name or value from a header as it appears in a message: control
// characters escaped as \xNN, so the message stays one line.
std::string shown_in_message(const std::string& text);

// Reads `path` (at most kMaxFileBytes) and parses it. Throws ModelFileError.
TensorFile read_safetensors(const std::filesystem::path& path);

// The bytes of a safetensors file holding `file`'s tensors (F32, in name order)
// and metadata; the header is padded with spaces to a multiple of 8 bytes so
// the data area is aligned. Throws std::invalid_argument if a tensor's value
// count does not match its shape.
std::string encode_safetensors(const TensorFile& file);

}  // namespace compressm::runtime
