// The system file of `compressm hsv` / `compressm reduce` (docs/design.md §4):
//
//   {"lambda": [[re,im],...N],            // diagonal of A, |lambda| < 1
//    "B": [[[re,im],...H],...N],          // normalised input matrix Bt {N, H}
//    "C": [[[re,im],...N],...H],          // output matrix {H, N}
//    "D": [d,...H]}                       // real feed-through {H}
//
// The file is untrusted input: every problem is an InputError whose message
// starts with the file name and names the key and index at fault. Other keys
// (the golden files add hsv_sorted_desc, reductions, N, H, seed, ...) are ignored.
// No LibTorch and no command-line knowledge here.
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>

#include "linalg/types.h"

namespace compressm::io {

// Bad user input (missing or unreadable file, malformed or invalid content).
// The message is one line, e.g. `system.json: "B" has 3 rows but "lambda" has 4 entries`.
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Reads and validates a system file. Throws InputError.
linalg::DiagonalSystem read_system_json(const std::filesystem::path& path);

// Parses and validates the text of a system file; `source` (usually the file
// name) prefixes every error message. Throws InputError.
linalg::DiagonalSystem parse_system_json(const std::string& text, const std::string& source);

// The file's text for `system`: one top-level key per line, every double in the
// shortest form that reads back bit-identical. Throws std::logic_error if
// the shapes disagree or a value is not finite (that is a bug upstream: such a
// file could not be read back).
std::string format_system_json(const linalg::DiagonalSystem& system);

// Writes format_system_json(system) to `path` atomically (atomic_file.h):
// a failed write leaves any previous file untouched. Throws InputError naming
// `path` when it cannot be written.
void write_system_json(const linalg::DiagonalSystem& system, const std::filesystem::path& path);

}  // namespace compressm::io
