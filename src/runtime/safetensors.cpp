#include "runtime/safetensors.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <system_error>
#include <tuple>

namespace compressm::runtime {
namespace {

using nlohmann::json;

constexpr uint64_t kFloatBytes = 4;

[[noreturn]] void fail(const std::string& source, const std::string& what) {
  throw ModelFileError(source + ": " + what);
}

uint64_t read_u64_le(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

void append_u64_le(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

float read_f32_le(const char* p) {
  uint32_t bits = 0;
  for (int i = 3; i >= 0; --i) bits = (bits << 8) | static_cast<unsigned char>(p[i]);
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

void append_f32_le(std::string& out, float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
}

// The header as JSON. The callback refuses nesting deeper than a tensor's
// shape array (depth 3) and duplicate top-level keys, which the DOM would
// otherwise silently merge.
json parse_header(const std::string& text, const std::string& source) {
  std::set<std::string> top_level_keys;
  const json::parser_callback_t check = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth > 3) fail(source, "header JSON is nested deeper than a safetensors header");
    if (event == json::parse_event_t::key && depth == 1 && !top_level_keys.insert(parsed.get<std::string>()).second)
      fail(source, "header names '" + parsed.get<std::string>() + "' twice");
    return true;
  };
  try {
    json header = json::parse(text, check);
    if (!header.is_object()) fail(source, "header is not a JSON object");
    return header;
  } catch (const json::exception& e) {
    fail(source, std::string("header is not valid JSON (") + e.what() + ")");
  }
}

uint64_t unsigned_value(const json& value, const std::string& source, const std::string& what) {
  if (!value.is_number_unsigned()) fail(source, what + " is not a non-negative integer");
  return value.get<uint64_t>();
}

struct Entry {
  std::string name;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

// One tensor's header entry, checked on its own; sizes are bounded by
// `data_bytes` before any product can overflow.
Entry parse_entry(const std::string& name, const json& info, uint64_t data_bytes, const std::string& source) {
  const std::string where = "tensor '" + name + "'";
  if (name.empty()) fail(source, "a tensor has an empty name");
  if (!info.is_object()) fail(source, where + " is not a JSON object");
  for (const auto& item : info.items())
    if (item.key() != "dtype" && item.key() != "shape" && item.key() != "data_offsets")
      fail(source, where + " has unknown field '" + item.key() + "'");
  if (!info.contains("dtype") || !info["dtype"].is_string()) fail(source, where + " has no dtype string");
  const std::string dtype = info["dtype"].get<std::string>();
  if (dtype != "F32") fail(source, where + " has dtype " + dtype + ", expected F32");
  if (!info.contains("shape") || !info["shape"].is_array()) fail(source, where + " has no shape array");
  if (info["shape"].size() > static_cast<size_t>(kMaxTensorRank)) fail(source, where + " has too many dimensions");
  Entry e{name, {}, 0, 0};
  uint64_t count = 1;
  for (const json& d : info["shape"]) {
    const uint64_t dim = unsigned_value(d, source, where + " shape entry");
    if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail(source, where + " shape entry " + std::to_string(dim) + " is too large");
    // count * dim * 4 must stay within the data area (and far from overflow).
    if (dim != 0 && count > data_bytes / kFloatBytes / dim)
      fail(source, where + " shape " + info["shape"].dump() + " is larger than the data area (" +
                       std::to_string(data_bytes) + " bytes)");
    count *= dim;
    e.shape.push_back(static_cast<int64_t>(dim));
  }
  const json& offsets = info.contains("data_offsets") ? info["data_offsets"] : json();
  if (!offsets.is_array() || offsets.size() != 2) fail(source, where + " has no data_offsets [begin, end]");
  e.begin = unsigned_value(offsets[0], source, where + " data_offsets[0]");
  e.end = unsigned_value(offsets[1], source, where + " data_offsets[1]");
  if (e.begin > e.end || e.end > data_bytes)
    fail(source, where + " data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                     "] lie outside the data area (" + std::to_string(data_bytes) + " bytes)");
  if (e.end - e.begin != count * kFloatBytes)
    fail(source, where + " has " + std::to_string(e.end - e.begin) + " data bytes, its shape needs " +
                     std::to_string(count * kFloatBytes));
  return e;
}

std::map<std::string, std::string> parse_metadata(const json& value, const std::string& source) {
  if (!value.is_object()) fail(source, "__metadata__ is not a JSON object");
  std::map<std::string, std::string> metadata;
  for (const auto& item : value.items()) {
    if (!item.value().is_string()) fail(source, "__metadata__ value '" + item.key() + "' is not a string");
    metadata[item.key()] = item.value().get<std::string>();
  }
  return metadata;
}

// Tensors must tile [0, data_bytes) exactly, as the reference reader requires.
void check_tiling(std::vector<Entry> entries, uint64_t data_bytes, const std::string& source) {
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return std::tie(a.begin, a.end) < std::tie(b.begin, b.end); });
  uint64_t position = 0;
  for (const Entry& e : entries) {
    if (e.begin < position) fail(source, "tensor '" + e.name + "' overlaps the tensor before it");
    if (e.begin > position)
      fail(source, "data area has unused bytes [" + std::to_string(position) + ", " + std::to_string(e.begin) +
                       ") before tensor '" + e.name + "'");
    position = e.end;
  }
  if (position != data_bytes)
    fail(source, "data area has " + std::to_string(data_bytes - position) + " bytes after the last tensor");
}

}  // namespace

TensorFile parse_safetensors(const std::string& bytes, const std::string& source) {
  if (bytes.size() < 8)
    fail(source, "file is " + std::to_string(bytes.size()) + " bytes, too short for the 8-byte header length");
  const uint64_t header_bytes = read_u64_le(bytes.data());
  if (header_bytes > bytes.size() - 8)
    fail(source, "header length " + std::to_string(header_bytes) + " is larger than the file (" +
                     std::to_string(bytes.size()) + " bytes): truncated or not a safetensors file");
  if (header_bytes > kMaxHeaderBytes) fail(source, "header length " + std::to_string(header_bytes) + " is too large");
  const json header = parse_header(bytes.substr(8, header_bytes), source);
  const uint64_t data_bytes = bytes.size() - 8 - header_bytes;
  const char* data = bytes.data() + 8 + header_bytes;

  TensorFile file;
  std::vector<Entry> entries;
  for (const auto& item : header.items()) {
    if (item.key() == "__metadata__") {
      file.metadata = parse_metadata(item.value(), source);
    } else {
      entries.push_back(parse_entry(item.key(), item.value(), data_bytes, source));
    }
  }
  check_tiling(entries, data_bytes, source);
  for (const Entry& e : entries) {
    FloatTensor& t = file.tensors[e.name];
    t.shape = e.shape;
    t.values.resize((e.end - e.begin) / kFloatBytes);
    for (size_t i = 0; i < t.values.size(); ++i) t.values[i] = read_f32_le(data + e.begin + kFloatBytes * i);
  }
  return file;
}

TensorFile read_safetensors(const std::filesystem::path& path) {
  const std::string source = path.string();
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error))
    fail(source, std::filesystem::is_directory(path, error) ? "a folder, not a model file" : "no such file");
  const uint64_t size = std::filesystem::file_size(path, error);
  if (error) fail(source, "cannot read the file size (" + error.message() + ")");
  if (size > kMaxFileBytes) fail(source, "file is " + std::to_string(size) + " bytes, more than a model file may be");
  std::ifstream in(path, std::ios::binary);
  std::string bytes(size, '\0');
  if (!in || !in.read(bytes.data(), static_cast<std::streamsize>(size)))
    fail(source, "cannot read the file");
  return parse_safetensors(bytes, source);
}

std::string encode_safetensors(const TensorFile& file) {
  nlohmann::json header = nlohmann::json::object();
  if (!file.metadata.empty()) header["__metadata__"] = file.metadata;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : file.tensors) {
    uint64_t count = 1;
    for (int64_t d : tensor.shape) count *= static_cast<uint64_t>(d);
    if (count != tensor.values.size())
      throw std::invalid_argument("encode_safetensors: tensor '" + name + "' has " +
                                  std::to_string(tensor.values.size()) + " values for its shape");
    header[name] = {{"dtype", "F32"}, {"shape", tensor.shape}, {"data_offsets", {offset, offset + 4 * count}}};
    offset += 4 * count;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data area aligned to 8 bytes
  std::string out;
  out.reserve(8 + text.size() + offset);
  append_u64_le(out, text.size());
  out += text;
  for (const auto& item : file.tensors)
    for (float v : item.second.values) append_f32_le(out, v);
  return out;
}

}  // namespace compressm::runtime
