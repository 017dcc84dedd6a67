#include "io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>

#include "io/system_json.h"

namespace compressm::io {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail(const fs::path& path, const std::string& what, int error) {
  throw InputError(path.string() + ": cannot write file (" + what + ": " +
                   std::strerror(error) + ")");
}

fs::path folder_of(const fs::path& path) { return path.has_parent_path() ? path.parent_path() : fs::path("."); }

// Creates a fresh, hidden temporary file next to `path`; O_EXCL guarantees we
// never clobber another writer's temporary file. Mode 0666 minus the umask,
// as an ordinary new file would get.
int create_temporary(const fs::path& path, fs::path& temporary) {
  static std::atomic<unsigned> counter{0};
  const fs::path directory = folder_of(path);
  for (int attempt = 0; attempt < 100; ++attempt) {
    // At most 200 bytes of the name: the temporary's name must fit NAME_MAX (255) too.
    temporary = directory / ("." + path.filename().string().substr(0, 200) + ".tmp." +
                             std::to_string(::getpid()) + "." + std::to_string(counter++));
    const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0 || errno != EEXIST) return fd;
  }
  errno = EEXIST;
  return -1;
}

bool write_all(int fd, const std::string& contents) {
  const char* data = contents.data();
  size_t left = contents.size();
  while (left > 0) {
    const ssize_t written = ::write(fd, data, left);
    if (written < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += written;
    left -= static_cast<size_t>(written);
  }
  return true;
}

}  // namespace

void write_file_atomically(const fs::path& path, const std::string& contents) {
  if (path.empty() || !path.has_filename()) fail(path, "not a file name", EINVAL);
  fs::path temporary;
  const int fd = create_temporary(path, temporary);
  if (fd < 0) fail(path, "create temporary file", errno);

  // A file replaced keeps its permissions (the temporary one is 0666 less the
  // umask), not its setuid/setgid bits: the new contents are not that program.
  struct stat existing {};
  if (::lstat(path.c_str(), &existing) == 0 && S_ISREG(existing.st_mode)) ::fchmod(fd, existing.st_mode & 0777);

  // fsync before rename: otherwise a crash could leave the new name pointing
  // at an empty file on some file systems.
  const char* step = "write";
  bool ok = write_all(fd, contents) && ::fsync(fd) == 0;
  int error = errno;
  if (::close(fd) != 0 && ok) {
    ok = false;
    error = errno;
  }
  if (ok && ::rename(temporary.c_str(), path.c_str()) != 0) {
    ok = false;
    error = errno;
    step = "rename";
  }
  if (!ok) {
    ::unlink(temporary.c_str());
    fail(path, step, error);
  }
  sync_best_effort(folder_of(path));  // the rename itself survives a crash once the folder is synced
}

void sync_best_effort(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace compressm::io
