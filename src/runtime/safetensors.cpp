#include "runtime/safetensors.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <system_error>
#include <tuple>

#include "runtime/input_file.h"

namespace compressm::runtime {
namespace {

using nlohmann::json;

constexpr uint64_t kFloatBytes = 4;
constexpr char kHexDigits[] = "0123456789abcdef";

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


// Checks the header's structure in one linear SAX pass before the DOM is
// built: at most kMaxHeaderEntries entries, no key twice in any object (the
// DOM would silently keep the last one) and no nesting deeper than a tensor's
// shape array (depth 3). Each problem throws ModelFileError. A parser callback
// could check the same, but nlohmann's callback parser rescans the earlier
// entries whenever an object closes: quadratic in the number of entries.
class HeaderChecker final : public nlohmann::json_sax<json> {
 public:
  explicit HeaderChecker(const std::string& source) : source_(source) {}

  bool null() override { return value(); }
  bool boolean(bool) override { return value(); }
  bool number_integer(number_integer_t) override { return value(); }
  bool number_unsigned(number_unsigned_t) override { return value(); }
  bool number_float(number_float_t, const string_t&) override { return value(); }
  bool string(string_t&) override { return value(); }
  bool binary(binary_t&) override { return value(); }
  bool start_object(std::size_t) override {
    open();
    object_keys_.emplace_back();
    return true;
  }
  // A key's object is the innermost open container: object_keys_.back().
  bool key(string_t& key) override {
    const bool top_level = open_containers_ == 1;
    if (!object_keys_.back().insert(key).second) {
      std::string owner = "header";
      if (!top_level) owner = entry_ == "__metadata__" ? entry_ : "tensor '" + shown_in_message(entry_) + "'";
      fail(source_, owner + " names '" + shown_in_message(key) + "' twice");
    }
    if (top_level) {
      if (object_keys_.back().size() > kMaxHeaderEntries)
        fail(source_, "header has more than " + std::to_string(kMaxHeaderEntries) +
                          " entries, more than a model file may have");
      entry_ = key;
    }
    return true;
  }
  bool end_object() override {
    object_keys_.pop_back();
    --open_containers_;
    return true;
  }
  bool start_array(std::size_t) override {
    open();
    return true;
  }
  bool end_array() override {
    --open_containers_;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    fail(source_, std::string("header is not valid JSON (") + e.what() + ")");
  }

 private:
  void open() {
    value();
    if (++open_containers_ > 3) fail(source_, "header JSON is nested deeper than a safetensors header");
  }
  // The DOM parsed next costs tens of bytes per value: a header of long
  // arrays within the file-size cap must not cost gigabytes first.
  bool value() {
    if (++values_ > kMaxHeaderValues)
      fail(source_, "header has more than " + std::to_string(kMaxHeaderValues) +
                        " JSON values, more than a model file may have");
    return true;
  }

  const std::string& source_;
  size_t open_containers_ = 0;
  size_t values_ = 0;
  std::vector<std::set<std::string>> object_keys_;  // one set per open object, innermost last
  std::string entry_;                                // the current top-level key
};

// The header as JSON: checked by HeaderChecker, then parsed into a DOM
// without a callback (linear).
json parse_header(const std::string& text, const std::string& source) {
  // As the reference reader: the JSON object starts at the header's first
  // byte (nlohmann alone would skip a UTF-8 byte-order mark or whitespace).
  if (text.empty()) fail(source, "header is empty, not a JSON object");
  const auto first = static_cast<unsigned char>(text[0]);
  if (first != '{') {
    std::string start = std::string("byte 0x") + kHexDigits[first >> 4] + kHexDigits[first & 0xf];
    if (text.rfind("\xef\xbb\xbf", 0) == 0) start = "a UTF-8 byte-order mark";
    else if (first > 0x20 && first < 0x7f) start = "'" + text.substr(0, 1) + "'";
    fail(source, "header is not a JSON object: it starts with " + start + ", not '{'");
  }
  HeaderChecker checker(source);
  json::sax_parse(text, &checker);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {  // the checker has seen the same text: not expected
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
  const std::string where = "tensor '" + shown_in_message(name) + "'";
  if (name.empty()) fail(source, "a tensor has an empty name");
  if (!info.is_object()) fail(source, where + " is not a JSON object");
  for (const auto& item : info.items())
    if (item.key() != "dtype" && item.key() != "shape" && item.key() != "data_offsets")
      fail(source, where + " has unknown field '" + shown_in_message(item.key()) + "'");
  if (!info.contains("dtype") || !info["dtype"].is_string()) fail(source, where + " has no dtype string");
  const std::string dtype = info["dtype"].get<std::string>();
  if (dtype != "F32") fail(source, where + " has dtype " + shown_in_message(dtype) + ", expected F32");
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
    if (!item.value().is_string())
      fail(source, "__metadata__ value '" + shown_in_message(item.key()) + "' is not a string");
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
    if (e.begin < position) fail(source, "tensor '" + shown_in_message(e.name) + "' overlaps the tensor before it");
    if (e.begin > position)
      fail(source, "data area has unused bytes [" + std::to_string(position) + ", " + std::to_string(e.begin) +
                       ") before tensor '" + shown_in_message(e.name) + "'");
    position = e.end;
  }
  if (position != data_bytes)
    fail(source, "data area has " + std::to_string(data_bytes - position) + " bytes after the last tensor");
}

}  // namespace

std::string shown_in_message(const std::string& text) {
  std::string out;
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte != 0x7f) {
      out.push_back(c);
    } else {
      out += "\\x";
      out.push_back(kHexDigits[byte >> 4]);
      out.push_back(kHexDigits[byte & 0xf]);
    }
  }
  return out;
}

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
  // The checks above should leave no JSON access that can throw; should one
  // slip through, it is still this file's error, not a json::exception.
  try {
    for (const auto& item : header.items()) {
      if (item.key() == "__metadata__") {
        file.metadata = parse_metadata(item.value(), source);
      } else {
        entries.push_back(parse_entry(item.key(), item.value(), data_bytes, source));
      }
    }
  } catch (const json::exception& e) {
    fail(source, std::string("header cannot be read (") + e.what() + ")");
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
  if (const std::string problem = input_file_problem(path, "model file"); !problem.empty()) fail(source, problem);
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
