// Typed scalars with YAML 1.2 core-schema rules (https://yaml.org/spec/1.2.2/#1032-tag-resolution),
// decimal integers only; and the enum spellings.
#include "config/config_values.h"

#include <charconv>
#include <limits>
#include <regex>

#include "config/config_schema.h"

namespace compressm::config {

namespace {
template <typename E>
std::string_view name_of(E value) {
  const auto& names = detail::EnumNames<E>::names;
  const auto index = static_cast<std::size_t>(value);
  return index < names.size() ? names[index] : std::string_view("?");
}
}  // namespace

std::string_view to_string(Dataset value) { return name_of(value); }
std::string_view to_string(Device value) { return name_of(value); }
std::string_view to_string(Precision value) { return name_of(value); }
std::string_view to_string(BlockOps value) { return name_of(value); }
std::string_view to_string(ReductionMode value) { return name_of(value); }
std::string_view to_string(Selection value) { return name_of(value); }
std::string_view to_string(TruncationMethod value) { return name_of(value); }
std::string_view to_string(OptimizerStatePolicy value) { return name_of(value); }

namespace detail {
namespace {

const std::regex& integer_pattern() {
  static const std::regex pattern("[-+]?[0-9]+");
  return pattern;
}
const std::regex& float_pattern() {
  static const std::regex pattern(R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)");
  return pattern;
}
const std::regex& special_float_pattern() {
  static const std::regex pattern(
      R"([-+]?\.(inf|Inf|INF)|\.nan|\.NaN|\.NAN)");
  return pattern;
}
bool is_boolean(const std::string& t) {
  return t == "true" || t == "True" || t == "TRUE" || t == "false" || t == "False" ||
         t == "FALSE";
}
bool is_null(const ScalarInput& input) {
  if (input.kind == ScalarInput::Kind::kNull) return true;
  const std::string& t = input.text;
  return input.plain && (t.empty() || t == "~" || t == "null" || t == "Null" || t == "NULL");
}

// How a rejected value is shown: numbers and booleans as written, other text quoted.
std::string describe(const ScalarInput& input) {
  switch (input.kind) {
    case ScalarInput::Kind::kNull: return "null (no value)";
    case ScalarInput::Kind::kList: return "a list";
    case ScalarInput::Kind::kMapping: return "a mapping";
    case ScalarInput::Kind::kScalar: break;
  }
  if (is_null(input)) return "null (no value)";
  if (!input.plain) {
    if (input.tag.empty() || input.tag == "!") return "the quoted string " + quote_untrusted(input.text);
    return "the string " + quote_untrusted(input.text) + " (tagged " + quote_untrusted(input.tag) + ")";
  }
  const std::string& t = input.text;
  if (std::regex_match(t, float_pattern()) || std::regex_match(t, special_float_pattern()) ||
      is_boolean(t)) {
    return t.size() <= 40 ? t : quote_untrusted(t);
  }
  return quote_untrusted(t);
}

std::string expected(const std::string& what, const ScalarInput& input) {
  return "expected " + what + ", got " + describe(input);
}

bool is_plain_scalar(const ScalarInput& input) {
  return input.kind == ScalarInput::Kind::kScalar && input.plain && !is_null(input);
}

template <typename Integer>
std::optional<std::string> read_integer(const ScalarInput& input, Integer& out) {
  if (!is_plain_scalar(input) || !std::regex_match(input.text, integer_pattern())) {
    return expected("an integer", input);
  }
  const char* first = input.text.data();
  const char* last = first + input.text.size();
  if (*first == '+') ++first;  // from_chars takes no '+'
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(first, last, value);
  if (error != std::errc() || end != last || value < std::numeric_limits<Integer>::min() ||
      value > std::numeric_limits<Integer>::max()) {
    return "integer " + describe(input) + " is out of range";
  }
  out = static_cast<Integer>(value);
  return std::nullopt;
}

}  // namespace

std::string quote_untrusted(std::string_view text, std::size_t max_chars) {
  const bool cut = text.size() > max_chars;
  std::string shown = nlohmann::json(std::string(text.substr(0, max_chars)))
                          .dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
  if (cut) shown.insert(shown.size() - 1, "...");
  return shown;
}

std::string format_double(double value) {
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, result.ptr);
}

std::optional<std::string> read_value(const ScalarInput& input, int& out) {
  return read_integer(input, out);
}

std::optional<std::string> read_value(const ScalarInput& input, std::int64_t& out) {
  return read_integer(input, out);
}

std::optional<std::string> read_value(const ScalarInput& input, double& out) {
  if (is_plain_scalar(input) && std::regex_match(input.text, special_float_pattern())) {
    return expected("a finite number", input);
  }
  if (!is_plain_scalar(input) || !std::regex_match(input.text, float_pattern())) {
    return expected("a number", input);
  }
  const char* first = input.text.data();
  const char* last = first + input.text.size();
  if (*first == '+') ++first;
  double value = 0.0;
  const auto [end, error] = std::from_chars(first, last, value);
  // Overflow (1e999) and underflow (1e-999) alike: no config value is that extreme.
  if (error != std::errc() || end != last) {
    return "number " + describe(input) + " is out of range";
  }
  out = value;
  return std::nullopt;
}

std::optional<std::string> read_value(const ScalarInput& input, bool& out) {
  if (!is_plain_scalar(input) || !is_boolean(input.text)) {
    return expected("true or false", input);
  }
  out = input.text[0] == 't' || input.text[0] == 'T';
  return std::nullopt;
}

std::optional<std::string> read_value(const ScalarInput& input, std::string& out) {
  if (input.kind != ScalarInput::Kind::kScalar || is_null(input)) {
    return expected("a string", input);
  }
  if (auto problem = string_problem(input.text)) return problem;
  out = input.text;
  return std::nullopt;
}

std::optional<std::string> string_problem(const std::string& text) {
  if (text.find('\0') != std::string::npos) return "must not contain a NUL character";
  // UTF-8: a lead byte and its continuation bytes; no overlong forms,
  // surrogates or code points above U+10FFFF.
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  for (std::size_t i = 0; i < n;) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t extra = 0;                  // continuation bytes after the lead byte
    unsigned char low = 0x80, high = 0xBF;  // the allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      extra = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      extra = 2;
      if (c == 0xE0) low = 0xA0;
      if (c == 0xED) high = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      extra = 3;
      if (c == 0xF0) low = 0x90;
      if (c == 0xF4) high = 0x8F;
    }
    bool valid = extra > 0 && i + extra < n && p[i + 1] >= low && p[i + 1] <= high;
    for (std::size_t k = 2; valid && k <= extra; ++k) valid = p[i + k] >= 0x80 && p[i + k] <= 0xBF;
    if (!valid) return "is not valid UTF-8 (byte " + std::to_string(i) + ")";
    i += extra + 1;
  }
  return std::nullopt;
}

std::optional<std::string> read_enum(const ScalarInput& input, std::string_view* names,
                                     std::size_t count, std::size_t& index) {
  std::string choices;
  for (std::size_t i = 0; i < count; ++i) {
    choices += (i == 0 ? "" : i + 1 == count ? " or " : ", ") + std::string(names[i]);
  }
  if (input.kind == ScalarInput::Kind::kScalar && !is_null(input)) {
    for (std::size_t i = 0; i < count; ++i) {
      if (input.text == names[i]) {
        index = i;
        return std::nullopt;
      }
    }
  }
  return "expected " + choices + ", got " + describe(input);
}

}  // namespace detail
}  // namespace compressm::config
