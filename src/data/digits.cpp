#include "data/digits.h"

#include <charconv>
#include <string_view>
#include <vector>

#include "data/file_bytes.h"
#include "data/split.h"

namespace compressm::data {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kPixels = 64;
constexpr int kMaxPixel = 16;
constexpr int kClasses = 10;

class RowParser {
 public:
  RowParser(const fs::path& path, Dataset& out) : path_(path), out_(out) {}

  // Parses one line (without its newline) into `out_`.
  void parse(std::string_view line, size_t line_number) {
    line_ = line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    std::vector<std::string_view> fields = split(line);
    if (fields.size() != kPixels + 1) {
      fail("expected 65 comma-separated fields (64 pixels and a label), found " + std::to_string(fields.size()));
    }
    for (int64_t k = 0; k < kPixels; ++k) {
      const int pixel = integer(fields[k], k);
      if (pixel < 0 || pixel > kMaxPixel) {
        fail("pixel " + std::to_string(k) + " is " + std::to_string(pixel) + ", outside [0, 16]");
      }
      out_.inputs.push_back(static_cast<float>(pixel) / kMaxPixel);
    }
    const int label = integer(fields[kPixels], kPixels);
    if (label < 0 || label >= kClasses) fail("label " + std::to_string(label) + " is outside [0, 10)");
    out_.labels.push_back(label);
  }

 private:
  [[noreturn]] void fail(const std::string& problem) const {
    throw DataError(path_.string() + ": line " + std::to_string(line_) + ": " + problem);
  }

  static std::vector<std::string_view> split(std::string_view line) {
    std::vector<std::string_view> fields;
    for (size_t start = 0;;) {
      const size_t comma = line.find(',', start);
      fields.push_back(line.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
      if (comma == std::string_view::npos) return fields;
      start = comma + 1;
    }
  }

  int integer(std::string_view field, int64_t index) const {
    int value = 0;
    const auto [end, error] = std::from_chars(field.data(), field.data() + field.size(), value);
    if (field.empty() || error != std::errc() || end != field.data() + field.size()) {
      fail("field " + std::to_string(index) + " \"" + std::string(field.substr(0, 20)) + "\" is not an integer");
    }
    return value;
  }

  const fs::path& path_;
  Dataset& out_;
  size_t line_ = 0;
};

}  // namespace

Dataset read_digits_csv(const fs::path& path) {
  const std::vector<uint8_t> bytes = read_file_bytes(path, uint64_t{64} << 20);  // the real file: 265 KB
  std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // a UTF-8 byte-order mark (saved by some editors)
  Dataset out;
  out.seq_len = kPixels;
  out.channels = 1;
  out.num_classes = kClasses;
  RowParser parser(path, out);
  size_t line_number = 0;
  for (size_t start = 0; start < text.size();) {
    const size_t newline = text.find('\n', start);
    const size_t end = newline == std::string_view::npos ? text.size() : newline;
    parser.parse(text.substr(start, end - start), ++line_number);  // an empty line fails: 1 field
    start = end + 1;
  }
  if (out.count() == 0) throw DataError(path.string() + ": file has no rows");
  return out;
}

Splits load_digits(const fs::path& dir, uint64_t seed) {
  const fs::path path = first_existing({dir / "digits.csv.gz", dir / "digits.csv"});
  Dataset all = read_digits_csv(path);
  const int64_t n = all.count();
  if (n <= kDigitsTestRows) {
    throw DataError(path.string() + ": has " + std::to_string(n) + " rows, need more than the 360 test rows");
  }
  std::vector<int64_t> test_rows, train_rows;
  for (int64_t i = 0; i < n; ++i) (i < n - kDigitsTestRows ? train_rows : test_rows).push_back(i);
  Splits splits;
  splits.test = take_examples(all, test_rows);
  split_train_val(take_examples(all, train_rows), seed, splits.train, splits.val);
  return splits;
}

}  // namespace compressm::data
