#include "data/file_bytes.h"

#include <zlib.h>

#include <algorithm>
#include <fstream>
#include <string>

#include "data/dataset.h"

namespace compressm::data {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail(const fs::path& path, const std::string& problem) {
  throw DataError(path.string() + ": " + problem);
}

std::vector<uint8_t> read_raw(const fs::path& path, uint64_t max_bytes) {
  std::error_code error;
  const fs::file_status status = fs::status(path, error);
  if (!fs::exists(status)) {
    fail(path, error && error != std::errc::no_such_file_or_directory ? "cannot read (" + error.message() + ")"
                                                                       : "no such file");
  }
  if (!fs::is_regular_file(status)) fail(path, "not a regular file");
  const uintmax_t size = fs::file_size(path, error);
  if (error) fail(path, "cannot read size (" + error.message() + ")");
  if (size > max_bytes) fail(path, "file is larger than " + std::to_string(max_bytes) + " bytes");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open for reading");
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  if (in.gcount() != static_cast<std::streamsize>(size)) fail(path, "read fewer bytes than the file size");
  return bytes;
}

bool has_gzip_magic(const uint8_t* bytes, size_t size) {
  return size >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;
}

// RAII for a z_stream set up for gzip (windowBits 15 + 16).
class Inflater {
 public:
  explicit Inflater(const fs::path& path) {
    if (inflateInit2(&stream_, 15 + 16) != Z_OK) fail(path, "zlib inflateInit2 failed");
  }
  ~Inflater() { inflateEnd(&stream_); }
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;
  z_stream& stream() { return stream_; }

 private:
  z_stream stream_{};
};

// Inflates one or more concatenated gzip members covering all of `in`; stops
// one byte past the bound that `size` reads from the first bytes.
std::vector<uint8_t> gunzip(const fs::path& path, std::vector<uint8_t>& in, uint64_t max_bytes,
                            const SizeBound& size) {
  Inflater inflater(path);
  z_stream& s = inflater.stream();
  s.next_in = in.data();
  s.avail_in = static_cast<uInt>(in.size());  // <= 2 GiB (kMaxFileBytes)
  uint64_t stop = max_bytes + 1;  // inflating this many bytes means the data is too large
  bool bounded = !size.bound;     // true once the header's bound is applied (or there is none)
  std::vector<uint8_t> out(std::min<uint64_t>(in.size() * 4 + 1024, stop));
  size_t produced = 0;
  for (;;) {
    if (!bounded && produced >= size.header_bytes) {
      bounded = true;
      stop = std::min(stop, size.bound(out.data()) + 1);
      if (produced >= stop) break;
    }
    if (produced == std::min<uint64_t>(out.size(), stop)) {
      if (produced > max_bytes)
        fail(path, "gzip data decompresses to more than " + std::to_string(max_bytes) + " bytes");
      if (produced == stop) break;  // one byte past the header's bound: the reader sees the data is too long
      out.resize(std::min<uint64_t>(out.size() * 2, stop));
    }
    s.next_out = out.data() + produced;
    s.avail_out = static_cast<uInt>(std::min<uint64_t>(std::min<uint64_t>(out.size(), stop) - produced, 1u << 30));
    const uInt before = s.avail_out;
    const int rc = inflate(&s, Z_NO_FLUSH);
    produced += before - s.avail_out;
    if (rc == Z_STREAM_END) {
      if (s.avail_in == 0) break;
      if (!has_gzip_magic(s.next_in, s.avail_in)) fail(path, "unexpected bytes after the gzip stream");
      inflateReset(&s);  // next concatenated member
      continue;
    }
    if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT) {
      fail(path, std::string("corrupt gzip data (") + (s.msg ? s.msg : "invalid stream") + ")");
    }
    if (rc == Z_MEM_ERROR) fail(path, "out of memory while decompressing");
    // No progress with room left in the output: the input ended mid-stream.
    if (rc == Z_BUF_ERROR && s.avail_out > 0) fail(path, "truncated gzip data (stream ends early)");
    if (rc != Z_OK && rc != Z_BUF_ERROR) fail(path, "gzip error " + std::to_string(rc));
  }
  out.resize(produced);
  out.shrink_to_fit();
  return out;
}

}  // namespace

std::vector<uint8_t> read_file_bytes(const fs::path& path, uint64_t max_bytes, const SizeBound& size) {
  std::vector<uint8_t> bytes = read_raw(path, max_bytes);
  if (!has_gzip_magic(bytes.data(), bytes.size())) return bytes;
  return gunzip(path, bytes, max_bytes, size);
}

fs::path first_existing(const std::vector<fs::path>& candidates) {
  std::string tried;
  for (const fs::path& path : candidates) {
    std::error_code error;
    if (fs::exists(path, error)) return path;
    // Not "no such file" when the folder cannot be searched (permissions, a file in the path).
    if (error && error != std::errc::no_such_file_or_directory) {
      throw DataError(path.string() + ": cannot read (" + error.message() + ")");
    }
    tried += (tried.empty() ? "" : " or ") + path.string();
  }
  throw DataError(tried + ": no such file");
}

}  // namespace compressm::data
