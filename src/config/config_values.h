// Internal to compressm_config: reading one YAML scalar into a typed field with
// YAML 1.2 core-schema rules, strictly (a quoted "10" is a string, not an integer;
// 3.5 is not an integer; .inf is not a finite number), and the enum spellings.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.h"

namespace compressm::config::detail {

// A YAML value as the reader sees it, without yaml-cpp types.
struct ScalarInput {
  enum class Kind { kNull, kScalar, kList, kMapping };
  Kind kind = Kind::kNull;
  std::string text;    // kScalar only
  bool plain = false;  // unquoted and untagged: subject to number/bool resolution
  std::string tag;     // yaml-cpp's: "?" plain, "!" quoted, else an explicit tag
};

// YAML spellings in enum order (value i is names[i]).
template <typename E>
struct EnumNames;
template <>
struct EnumNames<Dataset> {
  static constexpr std::array<std::string_view, 8> names = {
      "smnist", "sfmnist", "scifar", "digits", "listops", "imdb", "aan", "pathfinder"};
};
template <>
struct EnumNames<Device> {
  static constexpr std::array<std::string_view, 2> names = {"cpu", "cuda"};
};
template <>
struct EnumNames<Precision> {
  static constexpr std::array<std::string_view, 3> names = {"fp32", "tf32", "bf16"};
};
template <>
struct EnumNames<BlockOps> {
  static constexpr std::array<std::string_view, 3> names = {"auto", "fused", "composed"};
};
template <>
struct EnumNames<ReductionMode> {
  static constexpr std::array<std::string_view, 4> names = {"none", "tolerance", "fixed",
                                                            "pragmatic"};
};
template <>
struct EnumNames<Selection> {
  static constexpr std::array<std::string_view, 3> names = {"largest", "smallest", "random"};
};
template <>
struct EnumNames<OptimizerStatePolicy> {
  static constexpr std::array<std::string_view, 2> names = {"reset", "slice"};
};
template <>
struct EnumNames<TruncationMethod> {
  static constexpr std::array<std::string_view, 2> names = {"sqrtm", "chol"};
};

// Each returns the problem ("expected an integer, got \"ten\"") or nullopt and
// sets `out` on success.
std::optional<std::string> read_value(const ScalarInput& input, int& out);
std::optional<std::string> read_value(const ScalarInput& input, std::int64_t& out);
std::optional<std::string> read_value(const ScalarInput& input, double& out);
std::optional<std::string> read_value(const ScalarInput& input, bool& out);
std::optional<std::string> read_value(const ScalarInput& input, std::string& out);

// Why a string value cannot be kept (it must be UTF-8 without NUL: the
// effective config is written as YAML and JSON), or nullopt if it can.
std::optional<std::string> string_problem(const std::string& text);
std::optional<std::string> read_enum(const ScalarInput& input, std::string_view* names,
                                     std::size_t count, std::size_t& index);

template <typename E>
std::optional<std::string> read_value(const ScalarInput& input, E& out) {
  static_assert(std::is_enum_v<E>);
  auto names = EnumNames<E>::names;
  std::size_t index = 0;
  auto problem = read_enum(input, names.data(), names.size(), index);
  if (!problem) out = static_cast<E>(index);
  return problem;
}

}  // namespace compressm::config::detail
