#include "runtime/sequence_file.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace compressm::runtime {
namespace {

[[noreturn]] void fail(const std::string& source, int64_t line, const std::string& what) {
  throw SequenceFileError(source + (line > 0 ? ":" + std::to_string(line) : std::string()) + ": " + what);
}

// The numbers of one line; separators are commas, spaces and tabs.
std::vector<float> parse_line(const std::string& line, int64_t number, const std::string& source) {
  std::vector<float> values;
  size_t i = 0;
  while (i < line.size()) {
    if (line[i] == ',' || line[i] == ' ' || line[i] == '\t' || line[i] == '\r') {
      ++i;
      continue;
    }
    const size_t end = line.find_first_of(", \t\r", i);
    const std::string field = line.substr(i, end == std::string::npos ? std::string::npos : end - i);
    char* stop = nullptr;
    errno = 0;
    const float v = std::strtof(field.c_str(), &stop);
    if (stop == field.c_str() || *stop != '\0') fail(source, number, "'" + field.substr(0, 40) + "' is not a number");
    if (!std::isfinite(v) || errno == ERANGE) fail(source, number, "value '" + field.substr(0, 40) + "' is not a finite float");
    values.push_back(v);
    i = end == std::string::npos ? line.size() : end;
  }
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
  if (!std::filesystem::is_regular_file(path, error))
    fail(source, 0, std::filesystem::is_directory(path, error) ? "a folder, not a sequence file" : "no such file");
  if (std::filesystem::file_size(path, error) > kMaxSequenceFileBytes) fail(source, 0, "file is too large");
  std::ifstream in(path, std::ios::binary);
  if (!in.is_open()) fail(source, 0, "cannot open the file");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) fail(source, 0, "cannot read the file");
  return parse_sequence_text(text.str(), channels, source);
}

}  // namespace compressm::runtime
