// One input sequence as a text file (`compressm classify --input FILE`):
//
//   # comment lines and blank lines are skipped
//   0.0, 0.5, 1.0        <- step 0: input_dim numbers, separated by commas and/or spaces
//   0.1  0.4  0.9        <- step 1
//
// L lines of input_dim numbers (a token model: one integer token id per line;
// an empty field between commas, or at either end of a line, is an error);
// the values are used as given, so apply the dataset's scaling (e.g. pixels / 255)
// first. Untrusted input: every problem throws SequenceFileError naming the
// file and the line.
#pragma once

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace compressm::runtime {

class SequenceFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline constexpr uint64_t kMaxSequenceFileBytes = uint64_t{1} << 30;

struct Sequence {
  std::vector<float> values;  // {length, channels} row-major
  int64_t length = 0;
  int64_t channels = 0;
};

// Parses the text of a sequence file with `channels` numbers per step; `source`
// prefixes the errors. At least one step; every value finite.
Sequence parse_sequence_text(const std::string& text, int64_t channels, const std::string& source);

// Reads `path` (at most kMaxSequenceFileBytes) and parses it.
Sequence read_sequence_file(const std::filesystem::path& path, int64_t channels);

}  // namespace compressm::runtime
