// Config -> JSON (the `compressm config` output) and -> YAML (a run folder's
// config.yaml). Both keep the file's nesting and key order.
#include <sstream>
#include <type_traits>

#include "config/config.h"
#include "config/config_schema.h"

namespace compressm::config {
namespace {

template <typename T>
nlohmann::ordered_json json_value(const T& value) {
  if constexpr (std::is_enum_v<T>) {
    return std::string(to_string(value));
  } else {
    return value;
  }
}

// Shortest text that reads back bit-identical, always with a '.' so that YAML 1.1
// readers (PyYAML, which the reference uses) see a float too: 1e-07 -> 1.0e-07.
std::string yaml_double(double value) {
  std::string text = detail::format_double(value);
  if (text.find_first_of(".ni") != std::string::npos) return text;  // has '.', or inf/nan
  const auto exponent = text.find('e');
  text.insert(exponent == std::string::npos ? text.size() : exponent, ".0");
  return text;
}

template <typename T>
std::string yaml_value(const T& value) {
  if constexpr (std::is_enum_v<T>) {
    return std::string(to_string(value));
  } else if constexpr (std::is_same_v<T, bool>) {
    return value ? "true" : "false";
  } else if constexpr (std::is_same_v<T, double>) {
    return yaml_double(value);
  } else if constexpr (std::is_same_v<T, std::string>) {
    return nlohmann::json(value).dump();  // a JSON string is a valid YAML double-quoted scalar
  } else {
    return std::to_string(value);
  }
}

}  // namespace

nlohmann::ordered_json to_json(const Config& config) {
  nlohmann::ordered_json document = nlohmann::ordered_json::object();
  detail::for_each_field(config, [&](std::string_view section, std::string_view key,
                                     const auto& value) {
    if (section.empty()) {
      document[std::string(key)] = json_value(value);
    } else {
      document[std::string(section)][std::string(key)] = json_value(value);
    }
  });
  return document;
}

std::string to_yaml(const Config& config) {
  std::ostringstream out;
  out << "# compressm effective config (docs/design.md section 3)\n";
  std::string_view current_section;
  detail::for_each_field(config, [&](std::string_view section, std::string_view key,
                                     const auto& value) {
    if (section != current_section && !section.empty()) out << section << ":\n";
    current_section = section;
    out << (section.empty() ? "" : "  ") << key << ": " << yaml_value(value) << "\n";
  });
  return out.str();
}

// Field by field, through the JSON form: integers compare as integers and
// doubles bit for bit (up to -0 == 0), and no key can be forgotten.
bool operator==(const Config& a, const Config& b) { return to_json(a) == to_json(b); }
bool operator!=(const Config& a, const Config& b) { return !(a == b); }

}  // namespace compressm::config
