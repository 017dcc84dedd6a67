#include "runtime/sequence_file.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "runtime/input_file.h"

namespace compressm::runtime {
namespace {

[[noreturn]] void fail(const std::string& source, int64_t line, const std::string& what) {
  throw SequenceFileError(source + (line > 0 ? ":" + std::to_string(line) : std::string()) + ": " + what);
}

// The start of a field for a message: at most 40 bytes, control bytes as '?'.
std::string shown(const std::string& field) {
  std::string out = field.substr(0, 40);
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return out;
}

// The numbers of one line; separators are commas, spaces and tabs. A comma
// separates two numbers: an empty field (",,", or a comma that starts or ends
// the line) is an error, not skipped, so a missing value never shifts the others.
std::vector<float> parse_line(const std::string& line, int64_t number, const std::string& source) {
  std::vector<float> values;
  bool after_comma = false;  // a comma since the last number
  const auto empty_field = [&] { fail(source, number, "field " + std::to_string(values.size() + 1) + " is empty"); };
  size_t i = 0;
  while (i < line.size()) {
    if (line[i] == ' ' || line[i] == '\t' || line[i] == '\r') {
      ++i;
      continue;
    }
    if (line[i] == ',') {
      if (values.empty() || after_comma) empty_field();
      after_comma = true;
      ++i;
      continue;
    }
    after_comma = false;
    const size_t end = line.find_first_of(", \t\r", i);
    const std::string field = line.substr(i, end == std::string::npos ? std::string::npos : end - i);
    char* stop = nullptr;
    const float v = std::strtof(field.c_str(), &stop);
    // The whole field (an embedded NUL byte ends strtof's reading, not the field's).
    if (stop == field.c_str() || stop != field.c_str() + field.size())
      fail(source, number, "'" + shown(field) + "' is not a number");
    // Overflow gives +-inf; an underflow (ERANGE too) is a valid tiny or zero float.
    if (!std::isfinite(v)) fail(source, number, "value '" + shown(field) + "' is not a finite float");
    values.push_back(v);
    i = end == std::string::npos ? line.size() : end;
  }
  if (after_comma) empty_field();
  return values;
}

}  // namespace

Sequence parse_sequence_text(const std::string& text, int64_t channels, const std::string& source) {
  Sequence s;
  s.channels = channels;
  std::istringstream in(text);
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    const size_t first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    const std::vector<float> values = parse_line(line, number, source);
    if (static_cast<int64_t>(values.size()) != channels)
      fail(source, number, "has " + std::to_string(values.size()) + " values, the model takes " +
                               std::to_string(channels) + " per step");
    s.values.insert(s.values.end(), values.begin(), values.end());
    s.length += 1;
  }
  if (s.length == 0) fail(source, 0, "no time steps (one line of values per step)");
  return s;
}

Sequence read_sequence_file(const std::filesystem::path& path, int64_t channels) {
  const std::string source = path.string();
  std::error_code error;
  if (const std::string problem = input_file_problem(path, "sequence file"); !problem.empty()) fail(source, 0, problem);
  if (std::filesystem::file_size(path, error) > kMaxSequenceFileBytes) fail(source, 0, "file is too large");
  std::ifstream in(path, std::ios::binary);
  if (!in.is_open()) fail(source, 0, "cannot open the file");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) fail(source, 0, "cannot read the file");
  return parse_sequence_text(text.str(), channels, source);
}

}  // namespace compressm::runtime
