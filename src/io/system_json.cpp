#include "io/system_json.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/atomic_file.h"

namespace compressm::io {
namespace {

using linalg::Complex;
using linalg::DiagonalSystem;
using nlohmann::json;

std::string quoted(const char* key) { return std::string("\"") + key + "\""; }
std::string at(const std::string& where, size_t index) {
  return where + "[" + std::to_string(index) + "]";
}

// Validating reader of one document. Every failure names the source file and
// the offending key/index, e.g. `sys.json: "C"[1][0] real part is not a finite number`.
class SystemReader {
 public:
  explicit SystemReader(std::string source) : source_(std::move(source)) {}

  DiagonalSystem read(const json& root) const {
    if (!root.is_object()) fail("top level must be a JSON object, got " + describe(root));
    // Look up every key first so a missing key is reported before shape errors.
    const json& lambda = member(root, "lambda");
    const json& b = member(root, "B");
    const json& c = member(root, "C");
    const json& d = member(root, "D");

    DiagonalSystem system;
    system.lambda = read_lambda(lambda);
    const size_t n = static_cast<size_t>(system.lambda.size());
    system.B = read_b(b, n);
    const size_t h = static_cast<size_t>(system.B.cols());
    system.C = read_c(c, n, h);
    system.D = read_d(d, h);
    return system;
  }

 private:
  [[noreturn]] void fail(const std::string& problem) const {
    throw InputError(source_ + ": " + problem);
  }

  static std::string describe(const json& value) {
    if (value.is_array()) return "an array of " + std::to_string(value.size()) + " entries";
    return value.type_name();
  }

  const json& member(const json& root, const char* key) const {
    const auto it = root.find(key);
    if (it == root.end()) fail("missing key " + quoted(key));
    return *it;
  }

  void expect_array(const json& value, const std::string& where) const {
    if (!value.is_array()) fail(where + " must be an array, got " + describe(value));
  }

  // JSON has no NaN/Inf literals and json::parse already rejects 1e999 as an
  // overflow; the isfinite check guards documents built by other means. Strings
  // such as "nan", nulls and booleans are rejected by type.
  double finite_number(const json& value, const std::string& where) const {
    if (!value.is_number()) fail(where + " is not a finite number (got " + describe(value) + ")");
    const double x = value.get<double>();
    if (!std::isfinite(x)) fail(where + " is not a finite number (overflows to infinity)");
    return x;
  }

  Complex complex_entry(const json& value, const std::string& where) const {
    if (!value.is_array() || value.size() != 2) {
      fail(where + " must be a [re, im] pair, got " + describe(value));
    }
    return {finite_number(value[0], where + " real part"),
            finite_number(value[1], where + " imaginary part")};
  }

  linalg::VectorXc read_lambda(const json& lambda) const {
    const std::string where = quoted("lambda");
    expect_array(lambda, where);
    if (lambda.empty()) fail(where + " is empty (N = 0): the system needs at least one state");
    linalg::VectorXc out(static_cast<Eigen::Index>(lambda.size()));
    for (size_t i = 0; i < lambda.size(); ++i) {
      const Complex mu = complex_entry(lambda[i], at(where, i));
      // The system must be stable: Gramians (1 - |lambda|^2 denominators) and the
      // LRU parameterisation nu_log = log(-log|lambda|) both need |lambda| < 1.
      if (std::abs(mu) >= 1.0) {
        char modulus[64];
        std::snprintf(modulus, sizeof modulus, "%.6f", std::abs(mu));
        fail(at(where, i) + " has modulus " + modulus + " >= 1 (unstable)");
      }
      out(static_cast<Eigen::Index>(i)) = mu;
    }
    return out;
  }

  // A matrix stored row by row; every row must have `cols` entries.
  // Every row's length is checked before the matrix is allocated: the size
  // comes from the file, and only a file that holds all its entries may ask
  // for the memory.
  linalg::MatrixXc read_rows(const json& rows, const std::string& where, size_t cols,
                             const std::string& cols_origin) const {
    for (size_t i = 0; i < rows.size(); ++i) {
      const std::string row = at(where, i);
      expect_array(rows[i], row);
      if (rows[i].size() != cols) {
        fail(row + " has " + std::to_string(rows[i].size()) + " entries but " + cols_origin);
      }
    }
    linalg::MatrixXc out(static_cast<Eigen::Index>(rows.size()), static_cast<Eigen::Index>(cols));
    for (size_t i = 0; i < rows.size(); ++i) {
      const std::string row = at(where, i);
      for (size_t j = 0; j < cols; ++j) {
        out(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)) =
            complex_entry(rows[i][j], at(row, j));
      }
    }
    return out;
  }

  linalg::MatrixXc read_b(const json& b, size_t n) const {
    const std::string where = quoted("B");
    expect_array(b, where);
    if (b.size() != n) {
      fail(where + " has " + std::to_string(b.size()) + " rows but \"lambda\" has " +
           std::to_string(n) + " entries");
    }
    expect_array(b[0], at(where, 0));
    const size_t h = b[0].size();
    if (h == 0) fail(at(where, 0) + " is empty (H = 0): the system needs at least one input");
    return read_rows(b, where, h, "\"B\"[0] has " + std::to_string(h) + " (H)");
  }

  linalg::MatrixXc read_c(const json& c, size_t n, size_t h) const {
    const std::string where = quoted("C");
    expect_array(c, where);
    if (c.size() != h) {
      fail(where + " has " + std::to_string(c.size()) + " rows but \"B\" has " +
           std::to_string(h) + " columns (H)");
    }
    return read_rows(c, where, n, "\"lambda\" has " + std::to_string(n) + " (N)");
  }

  linalg::VectorXd read_d(const json& d, size_t h) const {
    const std::string where = quoted("D");
    expect_array(d, where);
    if (d.size() != h) {
      fail(where + " has " + std::to_string(d.size()) + " entries but \"B\" has " +
           std::to_string(h) + " columns (H)");
    }
    linalg::VectorXd out(static_cast<Eigen::Index>(h));
    for (size_t i = 0; i < h; ++i) out(static_cast<Eigen::Index>(i)) = finite_number(d[i], at(where, i));
    return out;
  }

  std::string source_;
};

// nlohmann's messages start with "[json.exception.parse_error.101] "; the
// position ("line 3, column 7") that follows is what the user needs.
std::string strip_exception_id(const std::string& message) {
  const size_t close = message.find("] ");
  return (message.rfind("[json.exception.", 0) == 0 && close != std::string::npos)
             ? message.substr(close + 2)
             : message;
}

json complex_json(const Complex& value) { return json::array({value.real(), value.imag()}); }

json matrix_json(const linalg::MatrixXc& m) {
  json rows = json::array();
  for (Eigen::Index i = 0; i < m.rows(); ++i) {
    json row = json::array();
    for (Eigen::Index j = 0; j < m.cols(); ++j) row.push_back(complex_json(m(i, j)));
    rows.push_back(std::move(row));
  }
  return rows;
}

// The writer refuses anything the reader would reject, so every file we write
// reads back; failing here means a bug upstream, not bad user input.
void check_writable(const DiagonalSystem& s) {
  const Eigen::Index n = s.state_dim(), h = s.input_dim();
  if (n == 0 || h == 0 || s.B.rows() != n || s.C.cols() != n || s.C.rows() != h ||
      s.D.size() != h) {
    throw std::logic_error("format_system_json: inconsistent system shapes");
  }
  if (!s.lambda.allFinite() || !s.B.allFinite() || !s.C.allFinite() || !s.D.allFinite()) {
    throw std::logic_error("format_system_json: system has non-finite values");
  }
  if ((s.lambda.cwiseAbs().array() >= 1.0).any()) {
    throw std::logic_error("format_system_json: system has |lambda| >= 1");
  }
}

}  // namespace

DiagonalSystem parse_system_json(const std::string& text, const std::string& source) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::parse_error& e) {
    throw InputError(source + ": malformed JSON: " + strip_exception_id(e.what()));
  } catch (const json::exception& e) {
    // e.g. out_of_range.406 for 1e999: valid JSON syntax, but no finite double.
    throw InputError(source + ": invalid JSON: " + strip_exception_id(e.what()));
  }
  return SystemReader(source).read(root);
}

DiagonalSystem read_system_json(const std::filesystem::path& path) {
  const std::string source = path.string();
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw InputError(source + ": is a directory, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(source + ": cannot open file (" + std::strerror(errno) + ")");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw InputError(source + ": cannot read file (" + std::strerror(errno) + ")");
  return parse_system_json(text.str(), source);
}

std::string format_system_json(const DiagonalSystem& system) {
  check_writable(system);
  json lambda = json::array();
  for (Eigen::Index i = 0; i < system.lambda.size(); ++i) lambda.push_back(complex_json(system.lambda(i)));
  json d = json::array();
  for (Eigen::Index i = 0; i < system.D.size(); ++i) d.push_back(system.D(i));
  // nlohmann prints doubles in the shortest form that round-trips exactly.
  // One key per line keeps the file diff-able without the bulk of full indentation.
  return "{\"lambda\": " + lambda.dump() + ",\n \"B\": " + matrix_json(system.B).dump() +
         ",\n \"C\": " + matrix_json(system.C).dump() + ",\n \"D\": " + d.dump() + "}\n";
}

void write_system_json(const DiagonalSystem& system, const std::filesystem::path& path) {
  write_file_atomically(path, format_system_json(system));
}

}  // namespace compressm::io
