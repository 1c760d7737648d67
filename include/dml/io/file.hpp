// dml/io/file.hpp: whole-file reads, bounded reads, and atomic file writes.
#pragma once

#include <dml/config.hpp>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#define DML_IO_POSIX 1
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#else
#define DML_IO_POSIX 0
#endif

namespace dml::io {

namespace detail {

// InputFile reads a binary file in pieces; every failure is a dml::Error that
// names the file.
class InputFile {
 public:
  explicit InputFile(const std::filesystem::path& path) : path_(path) {
    std::error_code ec;
    auto status = std::filesystem::status(path, ec);
    DML_CHECK(status.type() != std::filesystem::file_type::not_found, path.string(),
              ": file not found");
    DML_CHECK(!ec, path.string(), ": cannot stat: ", ec.message());
    DML_CHECK(!std::filesystem::is_directory(status), path.string(), ": is a directory, not a file");
    in_.open(path, std::ios::binary);
    DML_CHECK(in_.is_open(), path.string(), ": cannot open for reading: ", std::strerror(errno));
    in_.seekg(0, std::ios::end);
    auto end = in_.tellg();
    DML_CHECK(end >= 0, path.string(), ": cannot determine the file size");
    size_ = static_cast<std::uint64_t>(end);
    in_.seekg(0, std::ios::beg);
  }

  std::uint64_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

  // read copies n bytes starting at byte offset into out.
  void read(std::uint64_t offset, void* out, std::size_t n) {
    DML_CHECK(offset <= size_ && n <= size_ - offset, path_.string(), ": unexpected end of file reading ",
              n, " bytes at byte offset ", offset, " (file is ", size_, " bytes)");
    if (n == 0) return;
    in_.clear();
    in_.seekg(static_cast<std::streamoff>(offset), std::ios::beg);
    in_.read(static_cast<char*>(out), static_cast<std::streamsize>(n));
    DML_CHECK(in_.good() && static_cast<std::size_t>(in_.gcount()) == n, path_.string(),
              ": read failed at byte offset ", offset);
  }

 private:
  std::filesystem::path path_;
  std::ifstream in_;
  std::uint64_t size_ = 0;
};

#if DML_IO_POSIX
inline void write_all(int fd, const std::byte* data, std::size_t n, const std::string& name) {
  while (n > 0) {
    ssize_t w = ::write(fd, data, n);
    if (w < 0 && errno == EINTR) continue;
    DML_CHECK(w > 0, name, ": write failed: ", std::strerror(errno));
    data += w;
    n -= static_cast<std::size_t>(w);
  }
}

inline void fsync_directory(const std::filesystem::path& dir, const std::string& name) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DML_CHECK(fd >= 0, name, ": cannot open directory ", dir.string(), " to sync it: ", std::strerror(errno));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  // Some file systems cannot sync a directory; the rename is then as durable as it gets.
  DML_CHECK(rc == 0 || err == EINVAL || err == ENOTSUP, name, ": fsync of directory ",
            dir.string(), " failed: ", std::strerror(err));
}
#endif

}  // namespace detail

// read_file returns the whole file. Throws dml::Error naming the file when it
// is missing, a directory, or unreadable.
inline std::vector<std::byte> read_file(const std::filesystem::path& path) {
  detail::InputFile in(path);
  std::vector<std::byte> out(static_cast<std::size_t>(in.size()));
  in.read(0, out.data(), out.size());
  return out;
}

// write_file_atomic writes the concatenated pieces to path so that a reader
// sees the old file or the complete new one: it writes "<path>.tmp.<pid>",
// fsyncs it, renames it over path and fsyncs the directory. Throws dml::Error
// naming path on any failure (the temporary file is removed). Two threads of
// one process must not write the same path at once.
inline void write_file_atomic(const std::filesystem::path& path,
                              std::span<const std::span<const std::byte>> pieces) {
  const std::string name = path.string();
  DML_CHECK(!path.empty() && path.has_filename(), "write_file_atomic: bad path '", name, "'");
#if DML_IO_POSIX
  std::filesystem::path tmp = path;
  tmp += ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  DML_CHECK(fd >= 0, name, ": cannot create ", tmp.string(), ": ", std::strerror(errno));
  try {
    for (auto piece : pieces) detail::write_all(fd, piece.data(), piece.size(), name);
    DML_CHECK(::fsync(fd) == 0, name, ": fsync failed: ", std::strerror(errno));
    int rc = ::close(fd);
    fd = -1;
    DML_CHECK(rc == 0, name, ": close failed: ", std::strerror(errno));
    DML_CHECK(::rename(tmp.c_str(), path.c_str()) == 0, name, ": cannot rename ", tmp.string(),
              " over it: ", std::strerror(errno));
  } catch (...) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  auto dir = path.parent_path();
  detail::fsync_directory(dir.empty() ? std::filesystem::path(".") : dir, name);
#else
  // Portable fallback: write-then-rename without fsync (not crash-durable).
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    DML_CHECK(out.is_open(), name, ": cannot create ", tmp.string());
    for (auto piece : pieces)
      out.write(reinterpret_cast<const char*>(piece.data()), static_cast<std::streamsize>(piece.size()));
    out.flush();
    DML_CHECK(out.good(), name, ": write failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) std::filesystem::remove(tmp);
  DML_CHECK(!ec, name, ": cannot rename ", tmp.string(), " over it: ", ec.message());
#endif
}

// write_file_atomic writes one buffer atomically; see above.
inline void write_file_atomic(const std::filesystem::path& path, std::span<const std::byte> data) {
  std::span<const std::byte> pieces[] = {data};
  write_file_atomic(path, std::span<const std::span<const std::byte>>(pieces));
}

}  // namespace dml::io
